/**
 * `flow-proxy listener` against a real Swarm: notifies proxies as Docker Flow Swarm Listener
 * does (create/update/remove, retries), serves get-services, and a proxy started with
 * LISTENER_ADDRESS pulls every service from it.
 *
 * The service is created once for the file; each test waits for the state it starts from
 * (the listener has seen the service, the proxy routes it) instead of relying on the tests
 * before it, so any one of them can run alone.
 */
import http from 'node:http';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createLogger } from '../../src/log.js';
import { listenerSettings, SwarmListener } from '../../src/sources/listener/listener.js';
import { startBackend } from '../support/backends.js';
import type { Backend, BackendReply } from '../support/backends.js';
import { TestDnsServer } from '../support/dns-server.js';
import { eventually, request } from '../support/http-client.js';
import { freePort, startTestProxy } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';
import { docker, emptyImage, ensureSwarm, waitFor } from '../support/swarm.js';

const notifyLabel = `com.df.notifyListenerTest${process.pid}`;
const name = `fp-listener-${process.pid}`;
const dns = new TestDnsServer();
let dnsAddress: string;
let backend: Backend;
let proxy: TestProxy;
let listener: SwarmListener;
let listenerPort: number;
let latePort: number;
const lateNotifications: string[] = [];
let lateServer: http.Server | undefined;

beforeAll(async () => {
  await ensureSwarm();
  dnsAddress = await dns.start();
  backend = await startBackend('notified');
  dns.set(name, ['127.0.0.1']);
  proxy = await startTestProxy({ plane: 'builtin', dnsServer: dnsAddress });
  listenerPort = await freePort();
  latePort = await freePort();
  listener = new SwarmListener(
    listenerSettings({
      DF_NOTIFY_CREATE_SERVICE_URL: `${proxy.apiUrl}/v1/docker-flow-proxy/reconfigure,http://127.0.0.1:${latePort}/late`,
      DF_NOTIFY_REMOVE_SERVICE_URL: `${proxy.apiUrl}/v1/docker-flow-proxy/remove`,
      DF_NOTIFY_LABEL: notifyLabel,
      DF_RETRY_INTERVAL: '1',
      LISTENER_PORT: String(listenerPort),
      LISTENER_BIND_ADDRESS: '127.0.0.1',
    }),
    createLogger('silent'),
  );
  await listener.start();
  await docker(
    'service', 'create', '--detach', '--no-resolve-image', '--name', name, '--restart-condition', 'none',
    '--label', `${notifyLabel}=true`, '--label', 'com.df.servicePath=/notified', '--label', `com.df.port=${backend.port}`,
    await emptyImage(), '/nothing',
  );
}, 600_000);

afterAll(async () => {
  await docker('service', 'rm', name).catch(() => '');
  await listener?.stop();
  await proxy?.stop();
  await backend?.close();
  lateServer?.close();
  await dns.stop();
});

const served = async (target: TestProxy, path: string) => {
  const response = await request(target.httpUrl, path);
  return response.status === 200 ? response.json<BackendReply>().backend : response.status;
};
const listed = async () => (await (await fetch(`http://127.0.0.1:${listenerPort}/v1/docker-flow-swarm-listener/get-services`)).json()) as Record<string, string>[];
/** The listener has seen the service (it lists it): the starting point of the tests that read from it. */
const listenerKnowsService = () => waitFor('the listener to list the service', listed, (services) => services.some((s) => s.serviceName === name), 10_000);

test('a created service is notified to the proxy and routed within 2 s', async () => {
  expect(await eventually(() => served(proxy, '/notified'), (v) => v === 'notified', 2000)).toBe('notified');
});

test('get-services lists the services with their label parameters', async () => {
  const services = await listenerKnowsService();
  expect(services).toContainEqual({ serviceName: name, servicePath: '/notified', port: String(backend.port) });
});

test('a notification URL that is down is retried until it answers', async () => {
  lateServer = http.createServer((req, res) => {
    lateNotifications.push(req.url ?? '');
    res.end('ok');
  });
  await new Promise<void>((resolve) => lateServer?.listen(latePort, '127.0.0.1', resolve));
  const seen = await eventually(async () => [...lateNotifications], (list) => list.some((url) => url.includes(`serviceName=${name}`)), 5000);
  const notification = seen.find((url) => url.includes(`serviceName=${name}`));
  expect(notification).toBeDefined();
  expect(notification).toContain('servicePath=%2Fnotified');
});

test('a proxy started with LISTENER_ADDRESS pulls every service at start-up', async () => {
  // The pull happens once, at start-up: start the proxy after the listener has the service.
  await listenerKnowsService();
  const second = await startTestProxy({ plane: 'builtin', dnsServer: dnsAddress, extraArgs: ['--listener-address', `127.0.0.1:${listenerPort}`] });
  try {
    expect(await eventually(() => served(second, '/notified'), (v) => v === 'notified', 5000)).toBe('notified');
  } finally {
    await second.stop();
  }
});

test('a removed service is notified and unrouted', async () => {
  // Routed first, so the 404 below shows the removal and not a route that never was.
  await waitFor('the service to be routed before its removal', () => served(proxy, '/notified'), (v) => v === 'notified', 10_000);
  await docker('service', 'rm', name);
  expect(await eventually(() => served(proxy, '/notified'), (v) => v === 404, 3000)).toBe(404);
});

test('with two replicas fed by one listener, a removal notified to one of them reaches the other, which had the service from its pull at start', async () => {
  const pairName = `${name}-pair`;
  const pairLabel = `${notifyLabel}Pair`;
  dns.set(pairName, ['127.0.0.1']);
  dns.set('tasks.fp-listened', ['127.0.0.2', '127.0.0.3']);
  await docker(
    'service', 'create', '--detach', '--no-resolve-image', '--name', pairName, '--restart-condition', 'none',
    '--label', `${pairLabel}=true`, '--label', 'com.df.servicePath=/paired', '--label', `com.df.port=${backend.port}`,
    await emptyImage(), '/nothing',
  );
  const [apiPort, pairPort, nowhere] = [await freePort(), await freePort(), await freePort()];
  const pairListener = new SwarmListener(
    listenerSettings({
      // Creations reach no replica: both know the service only from their pull at start, as after a redeploy of the proxy.
      DF_NOTIFY_CREATE_SERVICE_URL: `http://127.0.0.1:${nowhere}/nobody`,
      // Removals reach one replica, as through the proxy service's virtual IP.
      DF_NOTIFY_REMOVE_SERVICE_URL: `http://127.0.0.2:${apiPort}/v1/docker-flow-proxy/remove`,
      DF_NOTIFY_LABEL: pairLabel,
      DF_RETRY: '1',
      DF_RETRY_INTERVAL: '1',
      LISTENER_PORT: String(pairPort),
      LISTENER_BIND_ADDRESS: '127.0.0.1',
    }),
    createLogger('silent'),
  );
  await pairListener.start();
  const replicas: TestProxy[] = [];
  try {
    const pairListed = async () => (await (await fetch(`http://127.0.0.1:${pairPort}/v1/docker-flow-swarm-listener/get-services`)).json()) as Record<string, string>[];
    await waitFor('the listener to list the service', pairListed, (services) => services.some((s) => s.serviceName === pairName), 10_000);
    for (const address of ['127.0.0.2', '127.0.0.3']) {
      const args = ['--listener-address', `127.0.0.1:${pairPort}`, '--service-name', 'fp-listened', '--api-port', String(apiPort), '--api-address', address, '--bind-address', address, '--peer-sync-interval', '1'];
      replicas.push(await startTestProxy({ plane: 'builtin', dnsServer: dnsAddress, extraArgs: args }));
    }
    for (const replica of replicas) expect(await eventually(() => served(replica, '/paired'), (v) => v === 'notified', 5000)).toBe('notified');
    await docker('service', 'rm', pairName);
    for (const replica of replicas) expect(await eventually(() => served(replica, '/paired'), (v) => v === 404, 10_000)).toBe(404);
  } finally {
    await Promise.all(replicas.map((replica) => replica.stop()));
    await pairListener.stop();
    await docker('service', 'rm', pairName).catch(() => '');
  }
}, 60_000);
