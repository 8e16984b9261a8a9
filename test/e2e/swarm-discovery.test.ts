/**
 * Swarm discovery against a real Docker engine: services labelled com.df.notify=true are routed
 * without any API call, follow label updates and removals within 2 seconds, coexist with routes
 * sent by hand, and are rebuilt from Swarm at start-up.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startBackend } from '../support/backends.js';
import type { Backend, BackendReply } from '../support/backends.js';
import { TestDnsServer } from '../support/dns-server.js';
import { eventually, request } from '../support/http-client.js';
import { startTestProxy, tempDir, testSettings } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';
import { docker, emptyImage, ensureSwarm } from '../support/swarm.js';

const prefix = `fp-e2e-${process.pid}`;
const dns = new TestDnsServer();
let dnsAddress: string;
let image: string;
let backend: Backend;
let proxy: TestProxy;
let stateDir: string;
const created: string[] = [];

async function createService(name: string, labels: Record<string, string>): Promise<void> {
  const labelArgs = Object.entries(labels).flatMap(([key, value]) => ['--label', `${key}=${value}`]);
  await docker('service', 'create', '--detach', '--name', name, '--restart-condition', 'none', ...labelArgs, image, '/nothing');
  created.push(name);
  dns.set(name, ['127.0.0.1']);
}

const proxyOptions = () => ({ plane: 'builtin' as const, dnsServer: dnsAddress, stateDir, extraArgs: ['--mode', 'swarm', '--address-mode', 'vip', '--service-name', prefix] });
const served = async (path: string) => {
  const response = await request(proxy.httpUrl, path);
  return response.status === 200 ? response.json<BackendReply>().backend : response.status;
};
/** Swarm changes must be routed within 2 s. */
const within2s = <T>(produce: () => Promise<T>, check: (value: T) => boolean) => eventually(produce, check, 2000);

beforeAll(async () => {
  await ensureSwarm();
  image = await emptyImage();
  dnsAddress = await dns.start();
  backend = await startBackend('labelled');
  stateDir = await tempDir('swarm');
  proxy = await startTestProxy(proxyOptions());
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
  await createService(name, { 'com.df.notify': 'true', 'com.df.servicePath': '/labelled', 'com.df.port': String(backend.port) });
  expect(await within2s(() => served('/labelled/x'), (v) => v === 'labelled')).toBe('labelled');
  const table = (await proxy.api('config', { type: 'json' })).body as Record<string, { Source: string }>;
  expect(table[name]?.Source).toBe('swarm');

  await docker('service', 'update', '--detach', '--label-add', 'com.df.servicePath=/relabelled', name);
  expect(await within2s(() => served('/relabelled'), (v) => v === 'labelled')).toBe('labelled');
  expect(await served('/labelled/x')).toBe(404);

  await docker('service', 'rm', name);
  created.splice(created.indexOf(name), 1);
  expect(await within2s(() => served('/relabelled'), (v) => v === 404)).toBe(404);
});

test('routes sent by hand coexist with discovered ones and are never removed by discovery', async () => {
  dns.set('by-hand', ['127.0.0.1']);
  expect((await proxy.api('reconfigure', { serviceName: 'by-hand', servicePath: '/by-hand', port: String(backend.port) })).status).toBe(200);
  const name = `${prefix}-second`;
  await createService(name, { 'com.df.notify': 'true', 'com.df.servicePath': '/second', 'com.df.port': String(backend.port) });
  expect(await within2s(() => served('/second'), (v) => v === 'labelled')).toBe('labelled');
  // Another event, hence a reconciliation: the hand-sent route stays.
  await docker('service', 'update', '--detach', '--label-add', 'com.df.distribute=true', name);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  expect(await served('/by-hand')).toBe('labelled');
  expect(await served('/second')).toBe('labelled');
  const table = (await proxy.api('config', { type: 'json' })).body as Record<string, { Source: string }>;
  expect(table['by-hand']?.Source).toBe('api');
});

test('a service with invalid labels is not routed and does not disturb the others', async () => {
  const name = `${prefix}-bad`;
  await createService(name, { 'com.df.notify': 'true', 'com.df.servicePath': 'no-slash', 'com.df.port': String(backend.port) });
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const table = (await proxy.api('config', { type: 'json' })).body as Record<string, unknown>;
  expect(table[name]).toBeUndefined();
  expect(await served('/second')).toBe('labelled');
});

test('at start-up every labelled route is rebuilt from Swarm, and routes sent by hand come back from Swarm', async () => {
  await proxy.stop();
  stateDir = await tempDir('swarm-fresh'); // a rescheduled task: nothing on local disk
  const name = `${prefix}-while-down`;
  await createService(name, { 'com.df.notify': 'true', 'com.df.servicePath': '/while-down', 'com.df.port': String(backend.port) });
  proxy = await startTestProxy(proxyOptions(), await testSettings(proxyOptions()));
  const table = (await proxy.api('config', { type: 'json' })).body as Record<string, { Source: string }>;
  expect(table[name]?.Source).toBe('swarm');
  expect(table['by-hand']?.Source).toBe('api');
  expect(await within2s(() => served('/while-down'), (v) => v === 'labelled')).toBe('labelled');
});
