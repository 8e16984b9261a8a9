/**
 * Built-in plane bookkeeping: pooled backend connections are forgotten when the backend closes
 * them (and with them the addresses of tasks that are gone), and request counts on the
 * statistics page survive route changes.
 */
import http from 'node:http';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startBackend } from '../support/backends.js';
import { TestDnsServer } from '../support/dns-server.js';
import { eventually, request } from '../support/http-client.js';
import { startTestProxy } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

const dns = new TestDnsServer();
let proxy: TestProxy;
const credentials = `Basic ${Buffer.from('ops:stats-secret').toString('base64')}`;

beforeAll(async () => {
  proxy = await startTestProxy({ plane: 'builtin', dnsServer: await dns.start(), env: { STATS_USER: 'ops', STATS_PASS: 'stats-secret' } });
});

afterAll(async () => {
  await proxy?.stop();
  await dns.stop();
});

const idle = () => Number(proxy.proxy.plane.status().details?.idleUpstreamConnections);

test('pooled connections a backend closed are forgotten', async () => {
  const backend = await startBackend('pooled');
  backend.server.keepAliveTimeout = 60_000;
  dns.set('pooled', ['127.0.0.1']);
  expect((await proxy.api('reconfigure', { serviceName: 'pooled', servicePath: '/pooled', port: String(backend.port) })).status).toBe(200);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  await Promise.all(Array.from({ length: 8 }, () => request(proxy.httpUrl, '/pooled/hello', { agent })));
  agent.destroy();
  expect(idle()).toBeGreaterThan(0);
  await backend.close(); // closes every connection: the replica is gone
  expect(await eventually(async () => idle(), (n) => n === 0)).toBe(0);
});

test('request counts on the statistics page survive a route change', async () => {
  const backend = await startBackend('counted');
  dns.set('counted', ['127.0.0.1']);
  expect((await proxy.api('reconfigure', { serviceName: 'counted', servicePath: '/counted', port: String(backend.port) })).status).toBe(200);
  for (let i = 0; i < 5; i++) expect((await request(proxy.httpUrl, '/counted/hello')).status).toBe(200);
  const countOf = async () => /^counted 0 \d+ (\d+)$/m.exec((await request(proxy.httpUrl, '/admin?stats', { headers: { authorization: credentials } })).text())?.[1];
  expect(await countOf()).toBe('5');
  expect((await proxy.api('reconfigure', { serviceName: 'other', servicePath: '/other', port: '1' })).status).toBe(200);
  expect(await countOf()).toBe('5');
  await backend.close();
});
