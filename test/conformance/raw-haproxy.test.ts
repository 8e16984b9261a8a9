/**
 * Raw HAProxy text (backendExtra, EXTRA_GLOBAL, EXTRA_FRONTEND) is refused unless the operator
 * sets ALLOW_RAW_HAPROXY; with it, the HAProxy plane runs it after `haproxy -c` accepts it, and
 * the built-in plane refuses it with a clear message.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadSettings } from '../../src/settings/settings.js';
import { echoHandler, startBackend } from '../support/backends.js';
import type { Backend, BackendReply } from '../support/backends.js';
import { request } from '../support/http-client.js';
import { startTestProxy } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

const RAW_ENV = { ALLOW_RAW_HAPROXY: 'true', EXTRA_GLOBAL: 'tune.bufsize 32768', EXTRA_FRONTEND: 'http-response set-header X-Frontend-Extra yes' };

let backend: Backend;
const started: TestProxy[] = [];

beforeAll(async () => {
  backend = await startBackend('raw', { handler: echoHandler });
});

afterAll(async () => {
  await Promise.all(started.map((proxy) => proxy.stop()));
  await backend?.close();
});

async function proxyOn(plane: 'haproxy' | 'builtin', env: Record<string, string>): Promise<TestProxy> {
  const proxy = await startTestProxy({ plane, dnsServer: undefined, env });
  started.push(proxy);
  return proxy;
}

const route = (extra: Record<string, string>) => ({ serviceName: 'raw', servicePath: '/raw', port: String(backend.port), outboundHostname: '127.0.0.1', ...extra });

test('without ALLOW_RAW_HAPROXY, backendExtra and EXTRA_* are refused naming the setting; templates are always refused', async () => {
  const proxy = await proxyOn('haproxy', {});
  const refused = await proxy.api('reconfigure', route({ backendExtra: 'http-response set-header X-Raw one' }));
  expect(refused.status).toBe(400);
  expect(refused.text).toContain('backendExtra');
  expect(refused.text).toContain('ALLOW_RAW_HAPROXY');
  for (const template of ['templateFePath', 'templateBePath']) {
    const reply = await proxy.api('reconfigure', route({ [template]: '/templates/x.tmpl' }));
    expect(reply.status).toBe(400);
    expect(reply.text).toContain(template);
  }
  expect(() => loadSettings([], { EXTRA_GLOBAL: 'tune.bufsize 32768' })).toThrow(/EXTRA_GLOBAL.*ALLOW_RAW_HAPROXY/);
});

describe('HAProxy plane with ALLOW_RAW_HAPROXY', () => {
  test('backendExtra, EXTRA_GLOBAL and EXTRA_FRONTEND reach the configuration; what haproxy -c rejects is refused and the routing kept', async () => {
    const proxy = await proxyOn('haproxy', RAW_ENV);
    const ok = await proxy.api('reconfigure', route({ backendExtra: 'http-response set-header X-Raw one\nhttp-request set-header X-Raw-Req two' }));
    expect(ok.status, ok.text).toBe(200);
    const response = await request(proxy.httpUrl, '/raw/x');
    expect(response.status).toBe(200);
    expect(response.headers['x-raw']).toBe('one');
    expect(response.headers['x-frontend-extra']).toBe('yes');
    expect(response.json<BackendReply>().headers['x-raw-req']).toBe('two');
    expect((await proxy.api('config')).text).toContain('tune.bufsize 32768');

    const invalid = await proxy.api('reconfigure', route({ backendExtra: 'no-such-directive at all' }));
    expect(invalid.status).toBe(400);
    expect(invalid.text).toContain('haproxy -c');
    const section = await proxy.api('reconfigure', route({ backendExtra: 'backend evil' }));
    expect(section.status).toBe(400);
    expect(section.text).toContain('new section');
    // The refused changes left the working route in place.
    expect((await request(proxy.httpUrl, '/raw/x')).headers['x-raw']).toBe('one');
  });

  test('an EXTRA_GLOBAL that haproxy -c rejects stops the start with its message', async () => {
    await expect(proxyOn('haproxy', { ...RAW_ENV, EXTRA_GLOBAL: 'no-such-global-directive 1' })).rejects.toThrow(/haproxy -c/);
  });
});

describe('built-in plane with ALLOW_RAW_HAPROXY', () => {
  test('backendExtra is refused with a message naming the plane; EXTRA_* stop the start', async () => {
    const proxy = await proxyOn('builtin', { ALLOW_RAW_HAPROXY: 'true' });
    const refused = await proxy.api('reconfigure', route({ backendExtra: 'http-response set-header X-Raw one' }));
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('built-in plane');
    expect((await request(proxy.httpUrl, '/raw/x')).status).toBe(404);
    await expect(proxyOn('builtin', RAW_ENV)).rejects.toThrow(/EXTRA_GLOBAL and EXTRA_FRONTEND/);
  });
});
