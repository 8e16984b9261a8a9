/**
 * The built-in plane updates its route index in place, touching only the services that changed.
 * Property: after any sequence of changes, the updated index answers every lookup exactly as an
 * index built from scratch for the same table, and holds the same number of routes.
 */
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { RouteIndex } from '../../src/routes/match.js';
import type { RouteTableSnapshot, ServiceEntry } from '../../src/routes/model.js';
import { parseServiceParams } from '../../src/routes/params.js';

const names = ['a', 'b', 'c', 'd'];
const paths = ['/', '/a', '/a/b', '/ab', '/b', '/a/b/c'];
const domains = ['x.io', '*.x.io', 'y.x.io', '*.y.x.io'];

const serviceArbitrary = fc.record({
  name: fc.constantFrom(...names),
  paths: fc.subarray(paths, { minLength: 0, maxLength: 3 }),
  domains: fc.subarray(domains, { minLength: 0, maxLength: 2 }),
});
const changeArbitrary = fc.oneof(
  serviceArbitrary.map((service) => ({ kind: 'upsert' as const, service })),
  fc.constantFrom(...names).map((name) => ({ kind: 'remove' as const, name })),
);

function entryOf(service: { name: string; paths: string[]; domains: string[] }): ServiceEntry | undefined {
  if (service.paths.length === 0 && service.domains.length === 0) return undefined;
  const params: Record<string, string> = { serviceName: service.name, port: '80' };
  if (service.paths.length > 0) params.servicePath = service.paths.join(',');
  if (service.domains.length > 0) params.serviceDomain = service.domains.join(',');
  const parsed = parseServiceParams(params);
  if (!parsed.ok) throw new Error(parsed.error.message);
  return { service: parsed.service, params: parsed.params, source: 'api' };
}

test('an index updated in place answers as one built from scratch', () => {
  fc.assert(
    fc.property(fc.array(changeArbitrary, { minLength: 1, maxLength: 30 }), (changes) => {
      let snapshot: RouteTableSnapshot = { version: 0, services: new Map() };
      const index = new RouteIndex(snapshot);
      for (const change of changes) {
        const services = new Map(snapshot.services);
        if (change.kind === 'remove') services.delete(change.name);
        else {
          const entry = entryOf(change.service);
          if (entry === undefined) continue;
          const claimed = new Set([...services.values()].filter((e) => e.service.name !== change.service.name).flatMap((e) => keysOf(e)));
          if (keysOf(entry).some((key) => claimed.has(key))) continue;
          services.set(change.service.name, entry);
        }
        const next = { version: snapshot.version + 1, services };
        index.update(snapshot, next);
        snapshot = next;
        const fresh = new RouteIndex(snapshot);
        expect(index.size).toBe(fresh.size);
        for (const host of ['x.io', 'y.x.io', 'z.y.x.io', 'w.x.io', 'other.io']) {
          for (const path of ['/', '/a', '/a/b/c/d', '/abc', '/b/x', '/c']) {
            expect(index.match(host, path)?.service.name).toBe(fresh.match(host, path)?.service.name);
            expect(index.match(host, path)?.destination).toBe(fresh.match(host, path)?.destination);
          }
        }
      }
    }),
    { numRuns: 300 },
  );
});

function keysOf(entry: ServiceEntry): string[] {
  return entry.service.destinations.flatMap((d) =>
    (d.domains.length > 0 ? d.domains : ['*']).flatMap((domain) => (d.paths.length > 0 ? d.paths : ['/']).map((path) => `${domain} ${path}`)),
  );
}
