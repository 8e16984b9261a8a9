/** Search and server-side paging of the route table, and how a row describes a service. */
import { expect, test } from 'vitest';
import { describeRoute, matchesSearch, parseRouteQuery, selectPage, sortedNames } from '../../src/dashboard/routes-page.js';
import type { RouteTableSnapshot, ServiceEntry } from '../../src/routes/model.js';
import { parseServiceParams } from '../../src/routes/params.js';

function entry(params: Record<string, string>, source: 'api' | 'swarm' = 'api'): ServiceEntry {
  const parsed = parseServiceParams(params);
  if (!parsed.ok) throw new Error(parsed.error.message);
  return { service: parsed.service, params: parsed.params, source };
}

function table(entries: readonly ServiceEntry[], version = 1): RouteTableSnapshot {
  return { version, services: new Map(entries.map((e) => [e.service.name, e])) };
}

const many = (count: number) =>
  table(Array.from({ length: count }, (_, i) => entry({ serviceName: `svc-${String(i).padStart(5, '0')}`, servicePath: `/p${i}`, port: '80' })));

test('query: defaults, bounds, and malformed values ignored', () => {
  expect(parseRouteQuery({})).toEqual({ offset: 0, limit: 50, q: '' });
  expect(parseRouteQuery({ offset: '100', limit: '20', q: '  Shop ' })).toEqual({ offset: 100, limit: 20, q: 'shop' });
  expect(parseRouteQuery({ offset: '-5', limit: '100000', q: ['a', 'b'] })).toEqual({ offset: 0, limit: 100, q: '' });
  expect(parseRouteQuery({ offset: '1e3', limit: '0' })).toEqual({ offset: 0, limit: 1, q: '' });
  expect(parseRouteQuery({ q: 'x'.repeat(1000) }).q).toHaveLength(200);
});

test('search matches the name, a path or a domain, case-insensitively', () => {
  const shop = entry({ serviceName: 'shop', servicePath: '/Cart', serviceDomain: 'shop.example.com', port: '80' });
  expect(matchesSearch(shop, '')).toBe(true);
  expect(matchesSearch(shop, 'sho')).toBe(true);
  expect(matchesSearch(shop, '/cart')).toBe(true);
  expect(matchesSearch(shop, 'example.com')).toBe(true);
  expect(matchesSearch(shop, 'nothing')).toBe(false);
});

test('pages of a 10,000-service table, sorted by name', () => {
  const snapshot = many(10_000);
  const first = selectPage(snapshot, { offset: 0, limit: 50, q: '' });
  expect(first.total).toBe(10_000);
  expect(first.entries).toHaveLength(50);
  expect(first.entries[0]?.service.name).toBe('svc-00000');
  const later = selectPage(snapshot, { offset: 9_950, limit: 50, q: '' });
  expect(later.entries.map((e) => e.service.name).at(-1)).toBe('svc-09999');
  // The sorted order is computed once per version.
  expect(sortedNames(snapshot)).toBe(sortedNames(snapshot));
});

test('search narrows the pages; an offset past the end gives the last page', () => {
  const snapshot = many(1_200);
  const found = selectPage(snapshot, { offset: 0, limit: 50, q: 'svc-0004' });
  expect(found.total).toBe(10); // svc-00040 .. svc-00049
  expect(found.entries.map((e) => e.service.name)).toContain('svc-00042');
  const byPath = selectPage(snapshot, { offset: 0, limit: 50, q: '/p1199' });
  expect(byPath.entries.map((e) => e.service.name)).toEqual(['svc-01199']);
  const past = selectPage(snapshot, { offset: 5_000, limit: 50, q: '' });
  expect(past.offset).toBe(1_150);
  expect(past.entries).toHaveLength(50);
  const none = selectPage(snapshot, { offset: 100, limit: 50, q: 'no such service' });
  expect(none).toEqual({ total: 0, offset: 0, entries: [] });
});

test('a row: paths, domains, ports, source, address mode and replicas in rotation', () => {
  const settings = { addressMode: 'vip' as const, maxTasks: 2 };
  const addresses = new Map([['tasks.app', ['10.0.0.1', '10.0.0.2', '10.0.0.3']], ['app', ['10.0.9.9']]]);
  const app = entry({ serviceName: 'app', servicePath: '/api', port: '8080', 'servicePath.1': '/admin', 'port.1': '9090', addressMode: 'tasks' }, 'swarm');
  expect(describeRoute(app, settings, (host) => addresses.get(host))).toEqual({
    service: 'app',
    source: 'swarm',
    paths: ['/api', '/admin'],
    domains: [],
    ports: [8080, 9090],
    addressMode: 'tasks',
    backend: 'tasks.app',
    replicas: ['10.0.0.1', '10.0.0.2'], // maxTasks
    replicaCount: 2,
  });
  const vip = describeRoute(entry({ serviceName: 'app', serviceDomain: 'app.example.com', port: '80' }), settings, (host) => addresses.get(host));
  expect(vip).toMatchObject({ addressMode: 'vip', backend: 'app', replicas: ['10.0.9.9'], replicaCount: 1, domains: ['app.example.com'] });
  const outside = describeRoute(entry({ serviceName: 'legacy', servicePath: '/old', port: '80', outboundHostname: 'legacy.internal' }), settings, () => undefined);
  expect(outside).toMatchObject({ addressMode: 'outbound', backend: 'legacy.internal', replicas: null, replicaCount: null });
});
