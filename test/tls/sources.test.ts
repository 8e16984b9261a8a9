/**
 * Certificates from every source a real proxy reads at start-up, served by the HAProxy plane
 * (the production plane): the certificates directory, Docker secrets named cert-* / cert_*,
 * certificates sent through the API (durable across a restart), and the generated default,
 * which is kept. A broken file is skipped without stopping start-up.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { makeCertificate } from '../support/certs.js';
import type { TestCertificate } from '../support/certs.js';
import { TestDnsServer } from '../support/dns-server.js';
import { presentedCertificate } from '../support/https-client.js';
import { startTestProxy, tempDir } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

const dns = new TestDnsServer();
let dnsAddress: string;
let certsDir: string;
let secretsDir: string;
let stateDir: string;
let shop: TestCertificate;
let operatorDefault: TestCertificate;
let fromSecret: TestCertificate;
let fromOtherSecret: TestCertificate;
const running: TestProxy[] = [];

const start = async () => {
  const proxy = await startTestProxy({ plane: 'haproxy', dnsServer: dnsAddress, stateDir, extraArgs: ['--certs-dir', certsDir, '--secrets-dir', secretsDir] });
  running.push(proxy);
  return proxy;
};
const served = async (proxy: TestProxy, servername: string | undefined) => (await presentedCertificate(proxy.settings.httpsPort, servername)).fingerprint256;

/** Fresh directories for each test: a certificates directory, a secrets directory and a state directory. */
async function prepare(): Promise<void> {
  [certsDir, secretsDir, stateDir] = await Promise.all([tempDir('certs'), tempDir('secrets'), tempDir('state')]);
  [shop, operatorDefault, fromSecret, fromOtherSecret] = await Promise.all([
    makeCertificate(['shop.test']),
    makeCertificate(['default.test']),
    makeCertificate(['secret.test']),
    makeCertificate(['other-secret.test']),
  ]);
  await writeFile(path.join(certsDir, 'shop.pem'), shop.bundle);
  await writeFile(path.join(certsDir, 'broken.pem'), 'not a certificate');
  await writeFile(path.join(secretsDir, 'cert-secret'), fromSecret.bundle);
  await writeFile(path.join(secretsDir, 'cert_other.pem'), fromOtherSecret.bundle);
  await writeFile(path.join(secretsDir, 'dfp_users_admin'), 'admin:secret');
  await mkdir(path.join(secretsDir, 'cert-a-directory'));
}

beforeAll(async () => {
  dnsAddress = await dns.start();
});

afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
  await dns.stop();
});

test('files and secrets are served by SNI; a broken file is skipped; the generated default is kept across a restart', async () => {
  await prepare();
  const proxy = await start();
  expect(await served(proxy, 'shop.test')).toBe(shop.fingerprint256);
  expect(await served(proxy, 'secret.test')).toBe(fromSecret.fingerprint256);
  expect(await served(proxy, 'other-secret.test')).toBe(fromOtherSecret.fingerprint256);
  const generated = await served(proxy, undefined);
  const listed = (await proxy.api('certs')).body as { Certs: { ServiceName: string; Source: string }[] };
  expect(listed.Certs.map((c) => `${c.ServiceName}:${c.Source}`).sort()).toEqual(['default:generated', 'other:secret', 'secret:secret', 'shop:dir']);

  const api = await makeCertificate(['api.test']);
  const put = await fetch(`${proxy.apiUrl}/v1/docker-flow-proxy/cert?certName=api`, { method: 'PUT', body: api.bundle });
  expect(put.status).toBe(200);
  const refused = await fetch(`${proxy.apiUrl}/v1/docker-flow-proxy/cert?certName=shop`, { method: 'DELETE' });
  expect(refused.status).toBe(409);
  expect(((await refused.json()) as { Message: string }).Message).toMatch(/file/);
  await proxy.stop();
  running.pop();

  const again = await start();
  expect(await served(again, 'api.test')).toBe(api.fingerprint256);
  expect(await served(again, undefined)).toBe(generated);
  expect(await served(again, 'shop.test')).toBe(shop.fingerprint256);
  await again.stop();
  running.pop();
});

test("the operator's certificate named default replaces the generated one", async () => {
  await prepare();
  await writeFile(path.join(certsDir, 'default.pem'), operatorDefault.bundle);
  const proxy = await start();
  expect(await served(proxy, undefined)).toBe(operatorDefault.fingerprint256);
  expect(await served(proxy, 'unknown.test')).toBe(operatorDefault.fingerprint256);
  expect(await served(proxy, 'shop.test')).toBe(shop.fingerprint256);
});
