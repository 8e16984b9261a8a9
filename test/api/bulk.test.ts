/**
 * The bulk endpoints, on a real proxy (built-in plane) over real HTTP: POST reconfigure with many
 * services is one table version and every route is served; a body with any refused entry
 * changes nothing and names every refused entry; POST remove likewise. What was configured
 * before is never lost.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startBackend } from '../support/backends.js';
import type { Backend, BackendReply } from '../support/backends.js';
import { TestDnsServer } from '../support/dns-server.js';
import { eventually, request } from '../support/http-client.js';
import { startTestProxy } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

const dns = new TestDnsServer();
let proxy: TestProxy;
let backend: Backend;
let port: string;

interface BulkReply {
  Status: string;
  Message: string;
  Services?: number;
  Changed?: number;
  Version?: number;
  Refused?: { Index: number; ServiceName: string; Status: number; Message: string }[];
}

async function post(endpoint: string, body: string | object, contentType = 'application/json'): Promise<{ status: number; body: BulkReply }> {
  const response = await fetch(`${proxy.apiUrl}/v1/docker-flow-proxy/${endpoint}`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as BulkReply };
}

async function tableNames(): Promise<string[]> {
  return Object.keys((await proxy.api('config', { type: 'json' })).body as object).sort();
}

const served = async (path: string) => {
  const response = await request(proxy.httpUrl, path);
  return response.status === 200 ? response.json<BackendReply>().backend : response.status;
};

beforeAll(async () => {
  const dnsAddress = await dns.start();
  backend = await startBackend('bulk-backend');
  port = String(backend.port);
  dns.set('go-demo', ['127.0.0.1']);
  proxy = await startTestProxy({ plane: 'builtin', dnsServer: dnsAddress });
  expect((await proxy.api('reconfigure', { serviceName: 'go-demo', servicePath: '/demo', port })).status).toBe(200);
  expect(await eventually(() => served('/demo/x'), (v) => v === 'bulk-backend')).toBe('bulk-backend');
});

afterAll(async () => {
  await proxy?.stop();
  await backend?.close();
  await dns.stop();
});

const COUNT = 1000; // a body of some 80 KB: more than the 64 KiB the other endpoints accept

test('POST reconfigure: many services in one version, every one served, nothing configured before lost', async () => {
  for (const i of [0, 499, COUNT - 1]) dns.set(`bulk-${i}`, ['127.0.0.1']);
  const services = Array.from({ length: COUNT }, (_, i) => ({ serviceName: `bulk-${i}`, servicePath: `/bulk-${i}`, port: Number(port) }));
  const before = (await proxy.api('reconfigure', { serviceName: 'go-demo', servicePath: '/demo', port })).body as { Status: string };
  expect(before.Status).toBe('OK');
  const reply = await post('reconfigure', { services });
  expect(reply.status, JSON.stringify(reply.body)).toBe(200);
  expect(reply.body).toEqual({ Status: 'OK', Message: '', Services: COUNT, Changed: COUNT, Version: 2 });
  expect(proxy.proxy.table.snapshot().version).toBe(2);

  for (const i of [0, 499, COUNT - 1]) expect(await eventually(() => served(`/bulk-${i}/x`), (v) => v === 'bulk-backend')).toBe('bulk-backend');
  expect(await served('/demo/x')).toBe('bulk-backend');
  expect(await tableNames()).toHaveLength(COUNT + 1);

  // The same body again changes nothing: no new version.
  expect((await post('reconfigure', { services })).body).toEqual({ Status: 'OK', Message: '', Services: COUNT, Changed: 0, Version: 2 });
});

test('JSON numbers and booleans are taken as the strings the query string would carry', async () => {
  dns.set('typed', ['127.0.0.1']);
  const reply = await post('reconfigure', { services: [{ serviceName: 'typed', servicePath: '/typed', port: Number(port), httpsOnly: false, timeoutServer: 30 }] });
  expect(reply.status, JSON.stringify(reply.body)).toBe(200);
  const typed = ((await proxy.api('config', { type: 'json' })).body as Record<string, { TimeoutServer: string; ServiceDest: { HttpsOnly: boolean }[] }>).typed;
  expect(typed?.TimeoutServer).toBe('30');
  expect(typed?.ServiceDest[0]?.HttpsOnly).toBe(false);
  expect(await eventually(() => served('/typed/x'), (v) => v === 'bulk-backend')).toBe('bulk-backend');
});

test('any refused entry refuses the whole body, naming every refused entry; nothing changes', async () => {
  const namesBefore = await tableNames();
  const versionBefore = proxy.proxy.table.snapshot().version;
  const reply = await post('reconfigure', {
    services: [
      { serviceName: 'new-1', servicePath: '/new-1', port },
      { serviceName: 'new-2', servicePath: 'no-slash', port },
      { serviceName: 'new-3', servicePath: '/demo', port },
      { serviceName: 'new-4', servicePath: '/new-4', port, verifyClientSsl: 'true' },
      { serviceName: 'new-1', servicePath: '/new-1b', port },
      { serviceName: 'new-5', servicePath: ['/a', '/b'], port },
      'not an object',
      { serviceName: 'new-6', servicePath: '/new-1', port },
    ],
  });
  expect(reply.status).toBe(400);
  expect(reply.body.Status).toBe('NOK');
  expect(reply.body.Message).toMatch(/^7 of 8 services refused, so nothing was changed: entry 1 \(new-2\): servicePath: must start with '\/'/);
  expect(reply.body.Refused?.map((r) => [r.Index, r.ServiceName, r.Status])).toEqual([
    [1, 'new-2', 400],
    [2, 'new-3', 409],
    [3, 'new-4', 400],
    [4, 'new-1', 400],
    [5, 'new-5', 400],
    [6, '', 400],
    [7, 'new-6', 409],
  ]);
  const messages = reply.body.Refused?.map((r) => r.Message) ?? [];
  expect(messages[1]).toContain('servicePath /demo is already routed to service go-demo');
  expect(messages[2]).toContain('verifyClientSsl');
  expect(messages[3]).toContain('given again (first as entry 0)');
  expect(messages[4]).toContain('servicePath must be a string, number or boolean, got an array');
  expect(messages[5]).toContain('must be an object of reconfigure parameters');
  expect(messages[6]).toContain('also given to service new-1 (entry 0) in this request');

  expect(await tableNames()).toEqual(namesBefore);
  expect(proxy.proxy.table.snapshot().version).toBe(versionBefore);
  expect(await served('/new-1/x')).toBe(404);
  expect(await served('/demo/x')).toBe('bulk-backend');
});

test('a body refused for conflicts only is a 409', async () => {
  const reply = await post('reconfigure', { services: [{ serviceName: 'thief', servicePath: '/demo', port }] });
  expect(reply.status).toBe(409);
  expect(reply.body.Refused).toEqual([{ Index: 0, ServiceName: 'thief', Status: 409, Message: expect.stringContaining('already routed to service go-demo') }]);
});

test('a body that is not JSON, or not of the expected shape, gets a 400 saying what is expected', async () => {
  for (const [body, contentType] of [
    ['{"services": [', 'application/json'],
    ['', 'application/json'],
    ['{"service": []}', 'application/json'],
    ['[{"serviceName":"a"}]', 'application/json'],
    ['{"services": {"serviceName":"a"}}', 'text/plain'],
    ['{"services": [], "extra": 1}', 'application/x-www-form-urlencoded'],
  ] as const) {
    const reply = await post('reconfigure', body, contentType);
    expect(reply.status, body).toBe(400);
    expect(reply.body.Message, body).toContain('{"services":[{"serviceName":"a","servicePath":"/a","port":"8080"}, ...]}');
  }
  const remove = await post('remove', '{"serviceName":"a"}');
  expect(remove.status).toBe(400);
  expect(remove.body.Message).toContain('{"serviceNames":["a","b"]}');
});

test('POST remove: one version, names not in the table unchanged, invalid names refuse the whole body', async () => {
  const refused = await post('remove', { serviceNames: ['bulk-0', 'a b', 5] });
  expect(refused.status).toBe(400);
  expect(refused.body.Refused?.map((r) => [r.Index, r.ServiceName])).toEqual([
    [1, 'a b'],
    [2, ''],
  ]);
  expect(await tableNames()).toContain('bulk-0');

  const version = proxy.proxy.table.snapshot().version;
  const removed = await post('remove', { serviceNames: ['bulk-0', 'bulk-1', 'never-there'] });
  expect(removed.body).toEqual({ Status: 'OK', Message: '', Services: 3, Changed: 2, Version: version + 1 });
  expect(await tableNames()).not.toContain('bulk-0');
  expect(await eventually(() => served('/bulk-0/x'), (v) => v === 404)).toBe(404);
  expect(await served('/bulk-499/x')).toBe('bulk-backend');
  expect(await served('/demo/x')).toBe('bulk-backend');
});

test('a body over the 32 MiB limit is refused with a message saying so', async () => {
  const huge = JSON.stringify({ services: [{ serviceName: 'x', servicePath: `/${'a'.repeat(33 * 1024 * 1024)}`, port }] });
  const response = await fetch(`${proxy.apiUrl}/v1/docker-flow-proxy/reconfigure`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: huge });
  expect(response.status).toBe(413);
  expect(((await response.json()) as BulkReply).Message).toMatch(/larger than 33554432 bytes.*several requests/);
}, 60_000);
