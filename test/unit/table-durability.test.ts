/**
 * A save whose directory fsync failed after the rename: the new table is on disk and would be
 * served after a restart, so it is served now too, and the answer says durability is unconfirmed
 * (rather than "nothing was changed"). A disk cannot fail fsync on demand: the store is a stand-in.
 */
import { expect, test } from 'vitest';
import type { DataPlane } from '../../src/planes/plane.js';
import type { RouteTableSnapshot } from '../../src/routes/model.js';
import type { LoadedTable, RouteStore } from '../../src/table/store.js';
import { RouteTable } from '../../src/table/table.js';
import { NotConfirmedDurable } from '../../src/util/atomic-file.js';
import { snapshotOf } from '../support/snapshot.js';

function planeRecording(applied: RouteTableSnapshot[]): DataPlane {
  return {
    kind: 'builtin',
    start: async () => undefined,
    validate: async () => undefined,
    apply: async (snapshot) => {
      applied.push(snapshot);
    },
    applyCertificates: async () => undefined,
    setAcmeChallenge: async () => undefined,
    removeAcmeChallenge: async () => undefined,
    reload: async () => undefined,
    status: () => ({ kind: 'builtin', ready: true, version: 0 }),
    describe: async () => '',
    stop: async () => undefined,
  };
}

function storeFailing(error: Error): RouteStore {
  return { file: '/state/routes.json', load: async (): Promise<LoadedTable> => ({ version: 0, services: [] }), save: async () => Promise.reject(error) };
}

const silent = { info: () => undefined, error: () => undefined };
const entry = () => {
  const service = snapshotOf({ serviceName: 'go-demo', servicePath: '/demo', port: '8080' }).services.get('go-demo');
  if (service === undefined) throw new Error('unreachable');
  return service;
};

test('an unconfirmed fsync keeps and serves the change, and says so with a 500', async () => {
  const applied: RouteTableSnapshot[] = [];
  const table = new RouteTable({ version: 0, services: new Map() }, storeFailing(new NotConfirmedDurable('fsync of /state failed: EIO')), planeRecording(applied), silent);
  const outcome = await table.upsert(entry());
  expect(outcome).toMatchObject({ ok: false, status: 500 });
  expect(outcome.ok ? '' : outcome.message).toMatch(/saved in \/state\/routes\.json and served.*EIO/);
  expect(table.snapshot().services.has('go-demo')).toBe(true);
  expect(applied).toHaveLength(1);
});

test('a save that failed before the rename changes nothing (503)', async () => {
  const applied: RouteTableSnapshot[] = [];
  const table = new RouteTable({ version: 0, services: new Map() }, storeFailing(new Error('ENOSPC')), planeRecording(applied), silent);
  const outcome = await table.upsert(entry());
  expect(outcome).toMatchObject({ ok: false, status: 503 });
  expect(table.snapshot().services.size).toBe(0);
  expect(applied).toHaveLength(0);
});
