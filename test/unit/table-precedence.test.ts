/**
 * "API wins over labels", enforced by the route table itself: an entry discovered from labels
 * (source 'swarm') never replaces one sent by hand (source 'api'), checked inside the table's
 * serialized queue, so a label update racing a hand-sent reconfigure cannot overwrite it. A
 * hand-sent entry still replaces a discovered one. The store and the data plane are in-memory
 * stand-ins; the plane's validate() can be held open to line changes up in the queue.
 */
import { expect, test } from 'vitest';
import type { DataPlane } from '../../src/planes/plane.js';
import type { RouteSource, RouteTableSnapshot, ServiceEntry } from '../../src/routes/model.js';
import { parseServiceParams } from '../../src/routes/params.js';
import type { LoadedTable, RouteStore } from '../../src/table/store.js';
import { RouteTable } from '../../src/table/table.js';

class MemoryStore implements RouteStore {
  readonly file = '/memory/routes.json';
  readonly saved: RouteTableSnapshot[] = [];
  load = async (): Promise<LoadedTable> => ({ version: 0, services: [] });
  save = async (snapshot: RouteTableSnapshot): Promise<void> => {
    this.saved.push(snapshot);
  };
}

/** A plane that records what it applies; while `hold` is set, validate() waits for release(). */
class StandInPlane implements DataPlane {
  readonly kind = 'builtin' as const;
  readonly applied: RouteTableSnapshot[] = [];
  readonly validated: RouteTableSnapshot[] = [];
  private held: (() => void)[] = [];
  hold = false;

  start = async () => undefined;
  validate = async (candidate: RouteTableSnapshot): Promise<void> => {
    this.validated.push(candidate);
    if (this.hold) await new Promise<void>((resolve) => this.held.push(resolve));
  };
  apply = async (snapshot: RouteTableSnapshot): Promise<void> => {
    this.applied.push(snapshot);
  };
  applyCertificates = async () => undefined;
  setAcmeChallenge = async () => undefined;
  removeAcmeChallenge = async () => undefined;
  reload = async () => undefined;
  status = () => ({ kind: 'builtin' as const, ready: true, version: this.applied.at(-1)?.version ?? 0 });
  describe = async () => '';
  stop = async () => undefined;

  /** Resolves once a validate() call is waiting. */
  async waitingValidations(count: number): Promise<void> {
    for (let i = 0; i < 1000 && this.held.length < count; i++) await new Promise((resolve) => setImmediate(resolve));
    if (this.held.length < count) throw new Error(`expected ${count} held validations, got ${this.held.length}`);
  }

  release(): void {
    this.hold = false;
    for (const resolve of this.held.splice(0)) resolve();
  }
}

const silent = { info: () => undefined, error: () => undefined };

function entry(source: RouteSource, params: Record<string, string>): ServiceEntry {
  const parsed = parseServiceParams(params);
  if (!parsed.ok) throw new Error(parsed.error.message);
  return { service: parsed.service, params: parsed.params, source };
}

const handSent = () => entry('api', { serviceName: 'go-demo', servicePath: '/by-hand', port: '8080' });
const labelled = (path = '/from-labels') => entry('swarm', { serviceName: 'go-demo', servicePath: path, port: '8080' });

function setUp() {
  const store = new MemoryStore();
  const plane = new StandInPlane();
  const table = new RouteTable({ version: 0, services: new Map() }, store, plane, silent);
  return { store, plane, table };
}

const held = (table: RouteTable) => {
  const current = table.snapshot().services.get('go-demo');
  return { source: current?.source, paths: current?.service.destinations.flatMap((d) => d.paths) };
};

test('a discovered entry is ignored (ok, unchanged) when the name holds a hand-sent one: nothing validated, saved or applied', async () => {
  const { store, plane, table } = setUp();
  expect(await table.upsert(handSent())).toEqual({ ok: true, version: 1, changed: true });
  expect(await table.upsert(labelled())).toEqual({ ok: true, version: 1, changed: false });
  expect(held(table)).toEqual({ source: 'api', paths: ['/by-hand'] });
  expect(table.snapshot().version).toBe(1);
  expect(store.saved).toHaveLength(1);
  expect(plane.validated).toHaveLength(1);
  expect(plane.applied).toHaveLength(1);
});

test('a hand-sent entry replaces a discovered one (API wins), and later label changes leave it alone', async () => {
  const { table } = setUp();
  expect(await table.upsert(labelled())).toMatchObject({ ok: true, changed: true });
  expect(held(table)).toEqual({ source: 'swarm', paths: ['/from-labels'] });
  expect(await table.upsert(handSent())).toMatchObject({ ok: true, changed: true });
  expect(held(table)).toEqual({ source: 'api', paths: ['/by-hand'] });
  expect(await table.upsert(labelled('/relabelled'))).toMatchObject({ ok: true, changed: false });
  expect(held(table)).toEqual({ source: 'api', paths: ['/by-hand'] });
});

test('discovered entries still replace discovered ones, and hand-sent ones replace hand-sent ones', async () => {
  const { table } = setUp();
  await table.upsert(labelled());
  expect(await table.upsert(labelled('/relabelled'))).toMatchObject({ ok: true, changed: true });
  expect(held(table)).toEqual({ source: 'swarm', paths: ['/relabelled'] });
  await table.upsert(handSent());
  expect(await table.upsert(entry('api', { serviceName: 'go-demo', servicePath: '/again', port: '8080' }))).toMatchObject({ ok: true, changed: true });
  expect(held(table)).toEqual({ source: 'api', paths: ['/again'] });
});

test('a label update queued behind a hand-sent reconfigure still in flight does not overwrite it', async () => {
  const { plane, table } = setUp();
  await table.upsert(labelled());
  plane.hold = true;
  const reconfigure = table.upsert(handSent());
  await plane.waitingValidations(1);
  // What the discovery used to do: check the served table, then write. The check sees the
  // discovered entry (the hand-sent one is not committed yet), so the write is sent.
  expect(table.snapshot().services.get('go-demo')?.source).toBe('swarm');
  const labelUpdate = table.upsert(labelled('/relabelled'));
  plane.release();
  expect(await reconfigure).toMatchObject({ ok: true, changed: true });
  expect(await labelUpdate).toMatchObject({ ok: true, changed: false });
  expect(held(table)).toEqual({ source: 'api', paths: ['/by-hand'] });
  expect(plane.applied.at(-1)?.services.get('go-demo')?.source).toBe('api');
});

test('a hand-sent reconfigure queued behind a label update in flight replaces it', async () => {
  const { plane, table } = setUp();
  plane.hold = true;
  const labelUpdate = table.upsert(labelled());
  await plane.waitingValidations(1);
  const reconfigure = table.upsert(handSent());
  plane.release();
  expect(await labelUpdate).toMatchObject({ ok: true, changed: true });
  expect(await reconfigure).toMatchObject({ ok: true, changed: true });
  expect(held(table)).toEqual({ source: 'api', paths: ['/by-hand'] });
});

test('an ignored discovered entry is not checked for conflicts: its labels cannot produce an error', async () => {
  const { table } = setUp();
  await table.upsert(handSent());
  await table.upsert(entry('api', { serviceName: 'other', servicePath: '/taken', port: '8080' }));
  expect(await table.upsert(labelled('/taken'))).toMatchObject({ ok: true, changed: false });
  expect(held(table)).toEqual({ source: 'api', paths: ['/by-hand'] });
});

test('removals by the discovery leave hand-sent entries alone', async () => {
  const { table } = setUp();
  await table.upsert(handSent());
  expect(await table.remove('go-demo', 'swarm')).toMatchObject({ ok: true, changed: false });
  expect(held(table).source).toBe('api');
});
