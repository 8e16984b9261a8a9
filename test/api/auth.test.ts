import { afterAll, beforeAll, expect, test } from 'vitest';
import { TestDnsServer } from '../support/dns-server.js';
import { startTestProxy } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

const TOKEN = 'a-long-enough-test-token-0123456789';
const dns = new TestDnsServer();
let proxy: TestProxy;

beforeAll(async () => {
  proxy = await startTestProxy({
    plane: 'haproxy',
    dnsServer: await dns.start(),
    extraArgs: ['--api-token', TOKEN],
    env: { API_USER: 'ops', API_PASS: 'pa:ss word' },
  });
});

afterAll(async () => {
  await proxy?.stop();
  await dns.stop();
});

const call = (path: string, authorization?: string) =>
  fetch(`${proxy.apiUrl}/v1/docker-flow-proxy/${path}`, authorization === undefined ? {} : { headers: { authorization } });

test.each(['reconfigure?serviceName=a&servicePath=/a&port=80', 'remove?serviceName=a', 'reload', 'config', 'config?type=json', 'nope'])(
  '%s needs credentials',
  async (path) => {
    const missing = await call(path);
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toContain('Bearer');
    expect(((await missing.json()) as { Message: string }).Message).toContain('API_TOKEN');
    expect((await call(path, `Bearer ${TOKEN}x`)).status).toBe(401);
    expect((await call(path, 'Bearer')).status).toBe(401);
    expect((await call(path, `Basic ${Buffer.from('ops:wrong').toString('base64')}`)).status).toBe(401);
  },
);

test('the token and the basic credentials are accepted', async () => {
  const withToken = await call('reconfigure?serviceName=a&servicePath=/a&port=80', `Bearer ${TOKEN}`);
  expect(withToken.status).toBe(200);
  const withBasic = await call('config?type=json', `Basic ${Buffer.from('ops:pa:ss word').toString('base64')}`);
  expect(withBasic.status).toBe(200);
  expect(Object.keys((await withBasic.json()) as object)).toEqual(['a']);
});

test('ping and status stay open for health checks', async () => {
  expect((await call('ping')).status).toBe(200);
  expect((await call('status')).status).toBe(200);
});
