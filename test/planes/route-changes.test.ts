/**
 * Route and replica changes reach a running HAProxy through its runtime API, at 1,000 services:
 * no reload for an add, a remove or a replica change, at most one for a burst of 200 concurrent
 * new services. Real HAProxy, real API, real backends; replicas come from a real DNS server.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startBackend } from '../support/backends.js';
import type { Backend, BackendReply } from '../support/backends.js';
import { TestDnsServer } from '../support/dns-server.js';
import { eventually, request } from '../support/http-client.js';
import { startTestProxy, tempDir } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

const SERVICES = 1000;
const dns = new TestDnsServer();
let stable: Backend;
let replicaA: Backend;
let replicaB: Backend;
let proxy: TestProxy;

const servedBy = async (path: string) => {
  const response = await request(proxy.httpUrl, path);
  return response.status === 200 ? response.json<BackendReply>().backend : response.status;
};
const details = async () => ((await proxy.api('status')).body as { Plane: { details: Record<string, number> } }).Plane.details;

beforeAll(async () => {
  stable = await startBackend('stable');
  replicaA = await startBackend('replica-a', { address: '127.0.0.2' });
  replicaB = await startBackend('replica-b', { address: '127.0.0.3', port: replicaA.port });
  dns.set('tasks.replicas', ['127.0.0.2']);
  // 1,000 services stored before start-up, as a proxy restarting with a large table finds them.
  const stateDir = await tempDir('route-changes');
  const services = Array.from({ length: SERVICES }, (_, i) => ({
    source: 'api',
    params: { serviceName: `svc-${i}`, servicePath: `/svc-${i}`, port: String(stable.port), outboundHostname: '127.0.0.1' },
  }));
  services.push({ source: 'api', params: { serviceName: 'replicas', servicePath: '/replicas', port: String(replicaA.port), addressMode: 'tasks' } as never });
  await mkdir(stateDir, { recursive: true });
  await writeFile(path.join(stateDir, 'routes.json'), JSON.stringify({ format: 1, version: 1, services }));
  proxy = await startTestProxy({ plane: 'haproxy', dnsServer: await dns.start(), stateDir });
}, 120_000);

afterAll(async () => {
  await proxy?.stop();
  await Promise.all([stable?.close(), replicaA?.close(), replicaB?.close()]);
  await dns.stop();
});

test('1,000 services stored are served after start-up', async () => {
  expect(await servedBy('/svc-0')).toBe('stable');
  expect(await servedBy(`/svc-${SERVICES - 1}`)).toBe('stable');
  expect(await servedBy('/replicas')).toBe('replica-a');
});

test('an add, a remove and a replica change at 1,000 services cause no reload', async () => {
  const before = await details();
  const added = await proxy.api('reconfigure', { serviceName: 'added', servicePath: '/added', port: String(stable.port), outboundHostname: '127.0.0.1' });
  expect(added.status, added.text).toBe(200);
  expect(await servedBy('/added')).toBe('stable');

  expect(await servedBy('/svc-7')).toBe('stable');
  const removed = await proxy.api('remove', { serviceName: 'svc-7' });
  expect(removed.status, removed.text).toBe(200);
  expect(await servedBy('/svc-7')).toBe(404);

  // A second replica starts: within a second both answer; then the first stops: only the second.
  dns.set('tasks.replicas', ['127.0.0.2', '127.0.0.3']);
  const seen = new Set<unknown>();
  await eventually(
    async () => seen.add(await servedBy('/replicas')),
    (set) => set.has('replica-a') && set.has('replica-b'),
    10_000,
  );
  expect([...seen].sort()).toEqual(['replica-a', 'replica-b']);
  dns.set('tasks.replicas', ['127.0.0.3']);
  const lastTen = await eventually(
    async () => Promise.all(Array.from({ length: 10 }, () => servedBy('/replicas'))),
    (answers) => answers.every((answer) => answer === 'replica-b'),
    10_000,
  );
  expect(lastTen.every((answer) => answer === 'replica-b')).toBe(true);

  const after = await details();
  expect(after.reloads).toBe(before.reloads);
  expect(after.runtimeUpdates).toBeGreaterThanOrEqual((before.runtimeUpdates ?? 0) + 2);
  expect(after.serverUpdates).toBeGreaterThanOrEqual((before.serverUpdates ?? 0) + 2);
}, 60_000);

test('a burst of 200 concurrent new services causes at most one reload, and all are served', async () => {
  const before = await details();
  const replies = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      proxy.api('reconfigure', { serviceName: `burst-${i}`, servicePath: `/burst-${i}`, port: String(stable.port), outboundHostname: '127.0.0.1' }),
    ),
  );
  expect(replies.filter((reply) => reply.status !== 200).map((reply) => reply.text)).toEqual([]);
  const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => servedBy(`/burst-${i}`)));
  expect(answers.filter((answer) => answer !== 'stable')).toEqual([]);
  const after = await details();
  expect((after.reloads ?? NaN) - (before.reloads ?? NaN)).toBeLessThanOrEqual(1);
}, 60_000);
