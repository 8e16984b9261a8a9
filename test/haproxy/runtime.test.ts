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

test('new services, removals and path changes are runtime updates; the first domain needs one reload, later ones none', async () => {
  const before = await planeDetails();
  // Both services were added after start-up, each into a spare backend.
  expect(before.reloads).toBe(0);
  const changed = await proxy.api('reconfigure', { serviceName: 'a', servicePath: '/a,/alpha', port: String(a.port) });
  expect(changed.status).toBe(200);
  // Served at once: the map entry is added in the running worker, no reload.
  expect((await request(proxy.httpUrl, '/alpha/x')).json<BackendReply>().backend).toBe('a');
  expect((await proxy.api('remove', { serviceName: 'b' })).status).toBe(200);
  expect((await request(proxy.httpUrl, '/b')).status).toBe(404);
  expect((await proxy.api('reconfigure', { serviceName: 'b', servicePath: '/b', port: String(b.port) })).status).toBe(200);
  expect((await request(proxy.httpUrl, '/b')).json<BackendReply>().backend).toBe('b');
  expect((await planeDetails()).reloads).toBe(0);
  // The frontend makes domain lookups only once some route has a domain.
  expect((await proxy.api('reconfigure', { serviceName: 'a', serviceDomain: 'a.test,*.wild.test', port: String(a.port) })).status).toBe(200);
  expect((await planeDetails()).reloads).toBe(1);
  expect((await request(proxy.httpUrl, '/', { host: 'a.test' })).json<BackendReply>().backend).toBe('a');
  expect((await request(proxy.httpUrl, '/', { host: 'x.wild.test' })).json<BackendReply>().backend).toBe('a');
  expect((await request(proxy.httpUrl, '/alpha/x')).status).toBe(404);
  expect((await proxy.api('reconfigure', { serviceName: 'b', serviceDomain: 'b.test', port: String(b.port) })).status).toBe(200);
  expect((await request(proxy.httpUrl, '/', { host: 'b.test' })).json<BackendReply>().backend).toBe('b');
  const after = await planeDetails();
  expect(after.reloads).toBe(1);
  expect(after.runtimeUpdates).toBe(Number(before.runtimeUpdates) + 4);
});

test('a service with a directive of its own gets its own backend by one reload; its later changes are runtime updates', async () => {
  const before = await planeDetails();
  expect((await proxy.api('reconfigure', { serviceName: 'slow', servicePath: '/slow', port: String(a.port), outboundHostname: '127.0.0.1', timeoutServer: '120' })).status).toBe(200);
  expect((await request(proxy.httpUrl, '/slow')).json<BackendReply>().backend).toBe('a');
  expect((await planeDetails()).reloads).toBe(Number(before.reloads) + 1);
  expect((await proxy.api('config')).text).toMatch(/^backend be_slow_0\n {2}timeout server 120s\n {2}server s1 127\.0\.0\.1:\d+$/m);
  expect((await proxy.api('reconfigure', { serviceName: 'slow', servicePath: '/slow,/slower', port: String(a.port), outboundHostname: '127.0.0.1', timeoutServer: '120' })).status).toBe(200);
  expect((await request(proxy.httpUrl, '/slower')).json<BackendReply>().backend).toBe('a');
  expect((await planeDetails()).reloads).toBe(Number(before.reloads) + 1);
});

test('spare backends are added in the background before they run out', async () => {
  const before = await planeDetails();
  const spares = Number(before.spareBackends);
  // Leave fewer free spares than the low-water mark (32 at this size).
  const count = spares - 10;
  for (let i = 0; i < count; i++) {
    const reply = await proxy.api('reconfigure', { serviceName: `many-${i}`, servicePath: `/many-${i}`, port: String(a.port), outboundHostname: '127.0.0.1' });
    expect(reply.status, reply.text).toBe(200);
  }
  const grown = await eventually(planeDetails, (d) => d.reloads === Number(before.reloads) + 1, 15_000);
  expect(grown.reloads).toBe(Number(before.reloads) + 1);
  // Without the background growth only 10 would be left.
  expect(Number(grown.spareBackends)).toBeGreaterThan(32);
  expect((await request(proxy.httpUrl, `/many-${count - 1}`)).json<BackendReply>().backend).toBe('a');
}, 60_000);

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
  expect(Object.keys((await proxy.api('config', { type: 'json' })).body as object)).not.toContain('broken');
  expect((await request(proxy.httpUrl, '/', { host: 'b.test' })).json<BackendReply>().backend).toBe('b');
});
