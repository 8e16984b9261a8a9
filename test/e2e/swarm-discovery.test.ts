/**
 * Swarm discovery against a real Docker engine: services labelled com.df.notify=true are routed
 * without any API call, follow label updates and removals within 2 seconds, coexist with routes
 * sent by hand (which win over labels), and are rebuilt from Swarm at start-up.
 *
 * Every test uses its own services, names and paths (prefixed with this process's id, so other
 * test files on the same Swarm cannot collide with them). Assertions that something is NOT routed
 * run only after swarmChangesProcessed() proved that the discovery has processed every change made
 * before it, so they cannot pass merely because no reconciliation ran yet.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startBackend } from '../support/backends.js';
import type { Backend, BackendReply } from '../support/backends.js';
import { TestDnsServer } from '../support/dns-server.js';
import { eventually, request } from '../support/http-client.js';
import { startTestProxy, tempDir, testSettings } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';
import { docker, emptyImage, ensureSwarm, waitFor } from '../support/swarm.js';

const prefix = `fp-e2e-${process.pid}`;
/** Paths are prefixed too: another proxy on this Swarm (the tutorial's) discovers these services. */
const pathOf = (name: string) => `/${prefix}-${name}`;
const barrier = `${prefix}-barrier`;
let barrierRound = 0;
const dns = new TestDnsServer();
let dnsAddress: string;
let image: string;
let backend: Backend;
let proxy: TestProxy;
let stateDir: string;
const created: string[] = [];

async function createService(name: string, labels: Record<string, string>): Promise<void> {
  const labelArgs = Object.entries(labels).flatMap(([key, value]) => ['--label', `${key}=${value}`]);
  await docker('service', 'create', '--detach', '--no-resolve-image', '--name', name, '--restart-condition', 'none', ...labelArgs, image, '/nothing');
  created.push(name);
  dns.set(name, ['127.0.0.1']);
}

const proxyOptions = () => ({ plane: 'builtin' as const, dnsServer: dnsAddress, stateDir, extraArgs: ['--mode', 'swarm', '--address-mode', 'vip', '--service-name', prefix] });
const served = async (path: string) => {
  const response = await request(proxy.httpUrl, path);
  return response.status === 200 ? response.json<BackendReply>().backend : response.status;
};
const routeTable = async () => (await proxy.api('config', { type: 'json' })).body as Record<string, { Source: string; ServiceDest: { ServicePath: string[] }[] }>;
/** Swarm changes must be routed within 2 s. */
const within2s = <T>(produce: () => Promise<T>, check: (value: T) => boolean) => eventually(produce, check, 2000);

/**
 * Proof that the discovery has processed every Swarm change made before this call: a "barrier"
 * service gets a new path, twice, each time awaited until served. The first new path being served
 * shows a reconciliation pass that listed every earlier change has run, but not that it finished
 * (it may still be working through other services). The second can only be served by a later
 * pass, and passes run one at a time, so by then the first one has finished.
 */
async function swarmChangesProcessed(): Promise<void> {
  for (let i = 0; i < 2; i++) {
    const path = pathOf(`barrier-${++barrierRound}`);
    await docker('service', 'update', '--detach', '--no-resolve-image', '--label-add', `com.df.servicePath=${path}`, barrier);
    await waitFor(`the barrier change to ${path} to be routed`, () => served(path), (v) => v === 'labelled', 10_000);
  }
}

beforeAll(async () => {
  await ensureSwarm();
  image = await emptyImage();
  dnsAddress = await dns.start();
  backend = await startBackend('labelled');
  stateDir = await tempDir('swarm');
  proxy = await startTestProxy(proxyOptions());
  await createService(barrier, { 'com.df.notify': 'true', 'com.df.servicePath': pathOf('barrier-0'), 'com.df.port': String(backend.port) });
  await waitFor('the barrier service to be routed', () => served(pathOf('barrier-0')), (v) => v === 'labelled', 10_000);
}, 600_000);

afterAll(async () => {
  await proxy?.stop();
  await backend?.close();
  await dns.stop();
  if (created.length > 0) await docker('service', 'rm', ...created).catch(() => '');
  const copies = await docker('config', 'ls', '-q', '--filter', `label=com.flow-proxy.routes=${prefix}`);
  if (copies !== '') await docker('config', 'rm', ...copies.split('\n'));
});

test('a labelled service is routed without any API call, follows updates and removal', async () => {
  const name = `${prefix}-web`;
  await createService(name, { 'com.df.notify': 'true', 'com.df.servicePath': pathOf('labelled'), 'com.df.port': String(backend.port) });
  expect(await within2s(() => served(`${pathOf('labelled')}/x`), (v) => v === 'labelled')).toBe('labelled');
  expect((await routeTable())[name]?.Source).toBe('swarm');

  await docker('service', 'update', '--detach', '--no-resolve-image', '--label-add', `com.df.servicePath=${pathOf('relabelled')}`, name);
  expect(await within2s(() => served(pathOf('relabelled')), (v) => v === 'labelled')).toBe('labelled');
  // The same table version replaced the service's routes: the old path is gone with it.
  expect(await served(`${pathOf('labelled')}/x`)).toBe(404);
  expect((await routeTable())[name]?.ServiceDest.flatMap((d) => d.ServicePath)).toEqual([pathOf('relabelled')]);

  await docker('service', 'rm', name);
  created.splice(created.indexOf(name), 1);
  expect(await within2s(() => served(pathOf('relabelled')), (v) => v === 404)).toBe(404);
  expect((await routeTable())[name]).toBeUndefined();
});

test('routes sent by hand coexist with discovered ones and are never removed by discovery', async () => {
  const byHand = `${prefix}-by-hand`;
  dns.set(byHand, ['127.0.0.1']);
  expect((await proxy.api('reconfigure', { serviceName: byHand, servicePath: pathOf('by-hand'), port: String(backend.port) })).status).toBe(200);
  const name = `${prefix}-second`;
  await createService(name, { 'com.df.notify': 'true', 'com.df.servicePath': pathOf('second'), 'com.df.port': String(backend.port) });
  expect(await within2s(() => served(pathOf('second')), (v) => v === 'labelled')).toBe('labelled');
  // Another change, hence a reconciliation (which removes discovered routes Swarm no longer
  // declares): once it was processed, the hand-sent route is still there.
  await docker('service', 'update', '--detach', '--no-resolve-image', '--label-add', `com.df.servicePath=${pathOf('second-moved')}`, name);
  await swarmChangesProcessed();
  expect(await served(pathOf('second-moved'))).toBe('labelled');
  expect(await served(pathOf('by-hand'))).toBe('labelled');
  const table = await routeTable();
  expect(table[byHand]?.Source).toBe('api');
  expect(table[name]?.Source).toBe('swarm');
});

test('a route sent by hand wins over the labels of a service of the same name, label changes included', async () => {
  const name = `${prefix}-both`;
  await createService(name, { 'com.df.notify': 'true', 'com.df.servicePath': pathOf('both-labels'), 'com.df.port': String(backend.port) });
  expect(await within2s(() => served(pathOf('both-labels')), (v) => v === 'labelled')).toBe('labelled');
  expect((await routeTable())[name]?.Source).toBe('swarm');

  // Sent by hand: replaces the discovered route at once (API wins).
  expect((await proxy.api('reconfigure', { serviceName: name, servicePath: pathOf('both-api'), port: String(backend.port) })).status).toBe(200);
  expect(await served(pathOf('both-api'))).toBe('labelled');
  expect(await served(pathOf('both-labels'))).toBe(404);

  // The labels change afterwards: the discovery processes it, and the hand-sent route stays.
  await docker('service', 'update', '--detach', '--no-resolve-image', '--label-add', `com.df.servicePath=${pathOf('both-relabelled')}`, name);
  await swarmChangesProcessed();
  expect(await served(pathOf('both-api'))).toBe('labelled');
  expect(await served(pathOf('both-relabelled'))).toBe(404);
  const entry = (await routeTable())[name];
  expect(entry?.Source).toBe('api');
  expect(entry?.ServiceDest.flatMap((d) => d.ServicePath)).toEqual([pathOf('both-api')]);
});

test('a service with invalid labels is not routed and does not disturb the others', async () => {
  const name = `${prefix}-bad`;
  const good = `${prefix}-good`;
  await createService(good, { 'com.df.notify': 'true', 'com.df.servicePath': pathOf('good'), 'com.df.port': String(backend.port) });
  expect(await within2s(() => served(pathOf('good')), (v) => v === 'labelled')).toBe('labelled');
  await createService(name, { 'com.df.notify': 'true', 'com.df.servicePath': 'no-slash', 'com.df.port': String(backend.port) });
  // The barrier is itself another service routed after the bad one appeared.
  await swarmChangesProcessed();
  const table = await routeTable();
  expect(table[name]).toBeUndefined();
  expect(table[good]?.Source).toBe('swarm');
  expect(await served(pathOf('good'))).toBe('labelled');
});

test('at start-up every labelled route is rebuilt from Swarm, and routes sent by hand come back from Swarm', async () => {
  const kept = `${prefix}-kept`;
  dns.set(kept, ['127.0.0.1']);
  expect((await proxy.api('reconfigure', { serviceName: kept, servicePath: pathOf('kept'), port: String(backend.port) })).status).toBe(200);
  await proxy.stop();
  stateDir = await tempDir('swarm-fresh'); // a rescheduled task: nothing on local disk
  const name = `${prefix}-while-down`;
  await createService(name, { 'com.df.notify': 'true', 'com.df.servicePath': pathOf('while-down'), 'com.df.port': String(backend.port) });
  // Start-up returns only after the first discovery pass: the table is complete from the start.
  proxy = await startTestProxy(proxyOptions(), await testSettings(proxyOptions()));
  const table = await routeTable();
  expect(table[name]?.Source).toBe('swarm');
  expect(table[kept]?.Source).toBe('api');
  expect(await within2s(() => served(pathOf('while-down')), (v) => v === 'labelled')).toBe('labelled');
  expect(await served(pathOf('kept'))).toBe('labelled');
});
