import { afterAll, beforeAll, expect, test } from 'vitest';
import { startBackend } from '../support/backends.js';
import type { Backend } from '../support/backends.js';
import { TestDnsServer } from '../support/dns-server.js';
import { startTestProxy } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

let dns: TestDnsServer;
let proxy: TestProxy;
let backend: Backend;

beforeAll(async () => {
  dns = new TestDnsServer();
  const dnsAddress = await dns.start();
  backend = await startBackend('go-demo');
  dns.set('go-demo', ['127.0.0.1']);
  proxy = await startTestProxy({ plane: 'haproxy', dnsServer: dnsAddress });
});

afterAll(async () => {
  await proxy?.stop();
  await backend?.close();
  await dns?.stop();
});

test('tutorial: reconfigure then /demo/hello answers hello, world', async () => {
  const reply = await proxy.api('reconfigure', { serviceName: 'go-demo', servicePath: '/demo', port: String(backend.port) });
  expect(reply.status).toBe(200);
  let response: Response | undefined;
  for (let i = 0; i < 50; i++) {
    response = await fetch(`${proxy.httpUrl}/demo/hello`);
    if (response.status === 200) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(response?.status).toBe(200);
  expect(await response?.text()).toBe('hello, world!\n');
});
