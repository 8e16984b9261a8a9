/**
 * HAProxy-specific behaviour: runtime-API updates instead of reloads, and a configuration
 * HAProxy rejects leaves every other route serving.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { PlaneStatus } from '../../src/planes/plane.js';
import type { Service } from '../../src/routes/model.js';
import { startBackend } from '../support/backends.js';
import type { Backend, BackendReply } from '../support/backends.js';
import { TestDnsServer } from '../support/dns-server.js';
import { eventually, request } from '../support/http-client.js';
import { startTestProxy } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

const dns = new TestDnsServer();
let proxy: TestProxy;
let a: Backend;
let b: Backend;

const planeDetails = async () => ((await proxy.api('status')).body as { Plane: PlaneStatus }).Plane.details ?? {};

beforeAll(async () => {
  const dnsAddress = await dns.start();
  a = await startBackend('a');
  b = await startBackend('b');
  dns.set('a', ['127.0.0.1']);
  dns.set('b', ['127.0.0.1']);
  proxy = await startTestProxy({ plane: 'haproxy', dnsServer: dnsAddress });
  expect((await proxy.api('reconfigure', { serviceName: 'a', servicePath: '/a', port: String(a.port) })).status).toBe(200);
  expect((await proxy.api('reconfigure', { serviceName: 'b', servicePath: '/b', port: String(b.port) })).status).toBe(200);
  await eventually(() => request(proxy.httpUrl, '/b'), (r) => r.status === 200);
});

afterAll(async () => {
  await proxy?.stop();
  await a?.close();
  await b?.close();
  await dns.stop();
});

test('new services reload; path and domain changes of known backends are runtime map updates', async () => {
  const before = await planeDetails();
  expect(before.reloads).toBe(2);
  const changed = await proxy.api('reconfigure', { serviceName: 'a', servicePath: '/a,/alpha', port: String(a.port) });
  expect(changed.status).toBe(200);
  // Served at once: the map is swapped in the running worker, no DNS wait, no reload.
  expect((await request(proxy.httpUrl, '/alpha/x')).json<BackendReply>().backend).toBe('a');
  expect((await proxy.api('remove', { serviceName: 'b' })).status).toBe(200);
  expect((await request(proxy.httpUrl, '/b')).status).toBe(404);
  expect((await proxy.api('reconfigure', { serviceName: 'b', servicePath: '/b', port: String(b.port) })).status).toBe(200);
  expect((await request(proxy.httpUrl, '/b')).json<BackendReply>().backend).toBe('b');
  const after = await planeDetails();
  expect(after.reloads).toBe(2);
  expect(after.runtimeUpdates).toBe(Number(before.runtimeUpdates) + 3);
});

test('a domain route changes the frontend once (reload), then domains are runtime updates', async () => {
  const before = await planeDetails();
  expect((await proxy.api('reconfigure', { serviceName: 'a', serviceDomain: 'a.test', port: String(a.port) })).status).toBe(200);
  expect((await request(proxy.httpUrl, '/', { host: 'a.test' })).json<BackendReply>().backend).toBe('a');
  expect((await proxy.api('reconfigure', { serviceName: 'b', serviceDomain: 'b.test', port: String(b.port) })).status).toBe(200);
  expect((await request(proxy.httpUrl, '/', { host: 'b.test' })).json<BackendReply>().backend).toBe('b');
  const after = await planeDetails();
  expect(after.reloads).toBe(Number(before.reloads) + 1);
});

test('a configuration HAProxy rejects is refused with its reason and changes nothing', async () => {
  const configBefore = (await proxy.api('config')).text;
  // The route grammar caps timeouts at a day; bypass it to get a value only HAProxy refuses.
  const service: Service = {
    name: 'broken',
    reqMode: 'http',
    timeoutServer: 99_999_999,
    destinations: [{ index: 0, port: 80, paths: ['/broken'], domains: [] }],
  };
  const outcome = await proxy.proxy.table.upsert({ service, params: { serviceName: 'broken' }, source: 'api' });
  expect(outcome.ok).toBe(false);
  if (!outcome.ok) {
    expect(outcome.status).toBe(400);
    expect(outcome.message).toContain('haproxy -c');
    expect(outcome.message).toContain('timeout');
  }
  expect((await proxy.api('config')).text).toBe(configBefore);
  expect(Object.keys((await proxy.api('config', { type: 'json' })).body as object)).toEqual(['a', 'b']);
  expect((await request(proxy.httpUrl, '/', { host: 'b.test' })).json<BackendReply>().backend).toBe('b');
});
