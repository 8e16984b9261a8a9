/**
 * Group commit: changes that queue up while a version is being committed become the next
 * version together, checked by the data plane, saved (one fsync) and applied once, and every
 * caller still gets the outcome of its own change, as if the changes had been made one by one.
 * The data plane is a recording stand-in; the store is the real one, on a temporary directory.
 */
import type Docker from 'dockerode';
import { expect, test } from 'vitest';
import type { DataPlane } from '../../src/planes/plane.js';
import { PlaneRejection } from '../../src/planes/plane.js';
import type { RouteTableSnapshot, ServiceEntry } from '../../src/routes/model.js';
import { parseServiceParams } from '../../src/routes/params.js';
import { SwarmMirroredStore } from '../../src/sources/swarm/config-store.js';
import { TableStore } from '../../src/table/store.js';
import type { LoadedTable, RouteChange, RouteStore } from '../../src/table/store.js';
import { RouteTable } from '../../src/table/table.js';
import { createLogger } from '../../src/log.js';
import { tempDir } from '../support/proxy.js';

/** Records every call; validate() refuses any candidate holding a service named in `refuse`. */
class RecordingPlane implements DataPlane {
  readonly kind = 'builtin' as const;
  readonly validated: RouteTableSnapshot[] = [];
  readonly applied: RouteTableSnapshot[] = [];
  readonly calls: string[] = [];
  readonly refuse = new Set<string>();

  start = async () => undefined;
  validate = async (candidate: RouteTableSnapshot): Promise<void> => {
    this.validated.push(candidate);
    this.calls.push('validate');
    await new Promise((resolve) => setImmediate(resolve)); // a check takes time: changes pile up meanwhile
    const refused = [...this.refuse].find((name) => candidate.services.has(name));
    if (refused !== undefined) throw new PlaneRejection(`backend be_${refused}_0 cannot be served`);
  };
  apply = async (snapshot: RouteTableSnapshot): Promise<void> => {
    this.applied.push(snapshot);
    this.calls.push('apply');
  };
  applyCertificates = async () => undefined;
  setAcmeChallenge = async () => undefined;
  removeAcmeChallenge = async () => undefined;
  reload = async () => {
    this.calls.push('reload');
  };
  status = () => ({ kind: 'builtin' as const, ready: true, version: this.applied.at(-1)?.version ?? 0 });
  describe = async () => '';
  stop = async () => undefined;
}

/** Counts saves, around a real store. */
class CountingStore implements RouteStore {
  saves = 0;
  constructor(readonly inner: RouteStore) {}
  get file(): string {
    return this.inner.file;
  }
  load = (): Promise<LoadedTable> => this.inner.load();
  save = async (snapshot: RouteTableSnapshot, changes: readonly RouteChange[]): Promise<void> => {
    this.saves++;
    await this.inner.save(snapshot, changes);
  };
}

const silent = { info: () => undefined, error: () => undefined };

function entry(params: Record<string, string>, source: ServiceEntry['source'] = 'api'): ServiceEntry {
  const parsed = parseServiceParams(params);
  if (!parsed.ok) throw new Error(parsed.error.message);
  return { service: parsed.service, params: parsed.params, source };
}

const service = (name: string, path = `/${name}`) => entry({ serviceName: name, servicePath: path, port: '8080' });

async function setUp() {
  const dir = await tempDir('group-commit');
  const store = new CountingStore(new TableStore(dir));
  await store.load();
  const plane = new RecordingPlane();
  const table = new RouteTable({ version: 0, services: new Map() }, store, plane, silent);
  const versions: number[] = [];
  table.onChange((snapshot) => versions.push(snapshot.version));
  return { dir, store, plane, table, versions };
}

test('200 concurrent upserts: a few versions, each checked, saved and applied once; every caller ok; nothing lost', async () => {
  const { dir, store, plane, table, versions } = await setUp();
  const first = Array.from({ length: 100 }, (_, i) => table.upsert(service(`svc-${i}`)));
  await new Promise((resolve) => setImmediate(resolve)); // the first batch is being checked ...
  const second = Array.from({ length: 100 }, (_, i) => table.upsert(service(`svc-${100 + i}`))); // ... while these queue
  const outcomes = await Promise.all([...first, ...second]);

  expect(outcomes.every((o) => o.ok && o.changed)).toBe(true);
  expect(plane.validated.length).toBeGreaterThanOrEqual(2);
  expect(plane.validated.length).toBeLessThanOrEqual(10);
  expect(plane.applied).toHaveLength(plane.validated.length);
  expect(store.saves).toBe(plane.validated.length);
  expect(versions).toEqual(plane.applied.map((s) => s.version));
  expect(new Set(outcomes.map((o) => (o.ok ? o.version : -1)))).toEqual(new Set(versions));
  expect(table.snapshot().services.size).toBe(200);
  expect(table.snapshot().version).toBe(versions.length);

  const reloaded = await new TableStore(dir).load();
  expect(reloaded.version).toBe(table.snapshot().version);
  expect(reloaded.services).toHaveLength(200);
});

test('changes in one batch are decided in arrival order, each with its own outcome', async () => {
  const { table } = await setUp();
  await table.upsert(service('held', '/held'));
  const [taken, conflicting, unchanged, replaced, removed, ignored] = await Promise.all([
    table.upsert(service('a', '/x')),
    table.upsert(service('b', '/x')), // /x was given to a just before, in the same batch
    table.upsert(service('held', '/held')),
    table.upsert(service('a', '/y')),
    table.remove('held'),
    table.upsert(entry({ serviceName: 'a', servicePath: '/z', port: '8080' }, 'swarm')), // API wins over labels
  ]);
  expect(taken).toMatchObject({ ok: true, changed: true, version: 2 });
  expect(conflicting).toEqual({
    ok: false,
    status: 409,
    message: 'servicePath /x is already routed to service a; remove it from a first or choose another path or domain',
  });
  expect(unchanged).toEqual({ ok: true, changed: false, version: 2 });
  expect(replaced).toMatchObject({ ok: true, changed: true, version: 2 });
  expect(removed).toMatchObject({ ok: true, changed: true, version: 2 });
  expect(ignored).toEqual({ ok: true, changed: false, version: 2 });
  expect([...table.snapshot().services.keys()]).toEqual(['a']);
  expect(table.snapshot().services.get('a')?.service.destinations[0]?.paths).toEqual(['/y']);
});

test('a batch the data plane refuses is committed change by change: only the culprit gets the 400', async () => {
  const { plane, table } = await setUp();
  plane.refuse.add('bad');
  const outcomes = await Promise.all(['one', 'bad', 'two', 'three'].map((name) => table.upsert(service(name))));
  expect(outcomes[1]).toEqual({ ok: false, status: 400, message: 'the builtin data plane refused this configuration: backend be_bad_0 cannot be served' });
  for (const at of [0, 2, 3]) expect(outcomes[at]).toMatchObject({ ok: true, changed: true });
  expect([...table.snapshot().services.keys()].sort()).toEqual(['one', 'three', 'two']);
});

test('a failed save fails every change of the batch that changes something (503), and nothing changes', async () => {
  const plane = new RecordingPlane();
  const failing: RouteStore = { file: '/state/routes.json', load: async () => ({ version: 0, services: [] }), save: async () => Promise.reject(new Error('ENOSPC')) };
  const table = new RouteTable({ version: 0, services: new Map() }, failing, plane, silent);
  const outcomes = await Promise.all([table.remove('absent'), table.upsert(service('a')), table.upsert(service('b'))]);
  expect(outcomes[0]).toEqual({ ok: true, changed: false, version: 0 });
  for (const outcome of outcomes.slice(1)) {
    expect(outcome).toMatchObject({ ok: false, status: 503 });
    expect(outcome.ok ? '' : outcome.message).toBe(
      'the change could not be saved to /state/routes.json (ENOSPC); nothing was changed and the previous routing keeps serving',
    );
  }
  expect(table.snapshot().services.size).toBe(0);
  expect(plane.applied).toHaveLength(0);
});

test('a reload waits for the changes before it and is not merged with them', async () => {
  const { plane, table } = await setUp();
  const done = await Promise.all([table.upsert(service('a')), table.reloadPlane(), table.upsert(service('b'))]);
  expect(done[1]).toEqual({ ok: true, changed: false, version: 1 });
  expect(plane.calls).toEqual(['validate', 'apply', 'reload', 'validate', 'apply']);
});

test('upsertMany is one version, all or nothing, naming every refused entry', async () => {
  const { plane, table, versions } = await setUp();
  await table.upsert(service('existing', '/taken'));
  const refused = await table.upsertMany([
    service('fine'),
    service('thief', '/taken'),
    service('dup-a', '/same'),
    service('dup-b', '/same'),
    service('fine', '/again'),
  ]);
  expect(refused).toMatchObject({ ok: false, status: 400 });
  expect(refused.ok ? [] : refused.refused).toEqual([
    { index: 1, name: 'thief', status: 409, message: expect.stringContaining('already routed to service existing') },
    { index: 3, name: 'dup-b', status: 409, message: expect.stringContaining('also given to service dup-a (entry 2) in this request') },
    { index: 4, name: 'fine', status: 400, message: expect.stringContaining('serviceName fine is given again (first as entry 0)') },
  ]);
  expect([...table.snapshot().services.keys()]).toEqual(['existing']);

  const validatedBefore = plane.validated.length;
  const added = await table.upsertMany(Array.from({ length: 50 }, (_, i) => service(`bulk-${i}`)));
  expect(added).toEqual({ ok: true, changed: 50, version: 2 });
  expect(plane.validated.length - validatedBefore).toBe(1);
  expect(versions).toEqual([1, 2]);
  expect(table.snapshot().services.size).toBe(51);
});

test('upsertMany may swap routes between services, and reports unchanged entries as such', async () => {
  const { table } = await setUp();
  await table.upsertMany([service('a', '/x'), service('b', '/y')]);
  expect(await table.upsertMany([service('a', '/y'), service('b', '/x')])).toEqual({ ok: true, changed: 2, version: 2 });
  expect(await table.upsertMany([service('a', '/y'), service('b', '/x')])).toEqual({ ok: true, changed: 0, version: 2 });
  expect(table.snapshot().services.get('a')?.service.destinations[0]?.paths).toEqual(['/y']);
});

test('upsertMany refused by the data plane names the culprit among many, with a bounded number of checks', async () => {
  const { plane, table } = await setUp();
  plane.refuse.add('bulk-37');
  const outcome = await table.upsertMany(Array.from({ length: 64 }, (_, i) => service(`bulk-${i}`)));
  expect(outcome).toMatchObject({ ok: false, status: 400 });
  expect(outcome.ok ? [] : outcome.refused).toEqual([
    { index: 37, name: 'bulk-37', status: 400, message: 'the builtin data plane refused this configuration: backend be_bulk-37_0 cannot be served' },
  ]);
  expect(plane.validated.length).toBeLessThanOrEqual(1 + 2 * 6 + 2);
  expect(table.snapshot().services.size).toBe(0);
});

test('removeMany removes in one version; names not in the table are unchanged', async () => {
  const { table } = await setUp();
  await table.upsertMany([service('a'), service('b'), service('c')]);
  expect(await table.removeMany(['a', 'c', 'absent'])).toEqual({ ok: true, changed: 2, version: 2 });
  expect([...table.snapshot().services.keys()]).toEqual(['b']);
});

/** Just enough of the Engine API for the Swarm copy of hand-sent routes; createConfig waits while `held`. */
function fakeDocker() {
  const created: { name: string; version: string }[] = [];
  let release: () => void = () => undefined;
  let gate = Promise.resolve();
  const docker = {
    listConfigs: async () => [],
    createConfig: async (spec: { Name: string; Labels: Record<string, string> }) => {
      await gate;
      created.push({ name: spec.Name, version: spec.Labels['com.flow-proxy.version'] ?? '' });
    },
    getConfig: () => ({ remove: async () => undefined }),
  };
  return {
    docker: docker as unknown as Docker,
    created,
    hold: () => {
      gate = new Promise((resolve) => (release = resolve));
    },
    release: () => release(),
  };
}

test('the Swarm copy follows the local save in the background, only for versions that change a hand-sent route', async () => {
  const dir = await tempDir('group-commit-swarm');
  const fake = fakeDocker();
  const mirrored = new SwarmMirroredStore(new TableStore(dir), fake.docker, 'proxy', createLogger('silent'));
  await mirrored.load();
  const table = new RouteTable({ version: 0, services: new Map() }, mirrored, new RecordingPlane(), silent);
  await table.upsert(entry({ serviceName: 'labelled', servicePath: '/l', port: '80' }, 'swarm'));
  await mirrored.copied();
  expect(fake.created).toEqual([]);

  // Docker is slow: the change is acknowledged once saved locally, the copy comes after.
  fake.hold();
  expect(await table.upsert(service('by-hand'))).toMatchObject({ ok: true, version: 2 });
  expect(fake.created).toEqual([]);
  // Versions saved meanwhile are copied as one: the newest.
  await table.upsert(service('by-hand-too'));
  await table.upsert(service('by-hand-three'));
  fake.release();
  await mirrored.copied();
  expect(fake.created.map((c) => c.version)).toEqual(['2', '4']);

  await table.remove('labelled', 'swarm');
  await mirrored.copied();
  expect(fake.created).toHaveLength(2);
  await table.remove('by-hand');
  await mirrored.copied();
  expect(fake.created.map((c) => c.version)).toEqual(['2', '4', '6']);
  expect((await new TableStore(dir).load()).services.map((s) => s.params.serviceName).sort()).toEqual(['by-hand-three', 'by-hand-too']);
});
