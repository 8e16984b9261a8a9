/**
 * ACME with several replicas (issue 14): one replica orders, every replica answers its HTTP-01
 * challenge, and the certificate reaches every replica. Two real proxies on loopback addresses
 * stand for two Swarm tasks (tasks.<SERVICE_NAME> lists both): A (127.0.0.2, built-in plane)
 * comes first by address and orders; the domain resolves to B (127.0.0.3, HAProxy plane), so
 * Pebble's validation request reaches the replica that did not order. When A stops, B takes the
 * orders over, without ordering again a certificate it already serves.
 */
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { TestDnsServer } from '../support/dns-server.js';
import { eventually } from '../support/http-client.js';
import { presentedCertificate } from '../support/https-client.js';
import { startPebble } from '../support/pebble.js';
import type { Pebble } from '../support/pebble.js';
import { freePort, startTestProxy, testSettings } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

interface AcmeEntry {
  Service: string;
  State: string;
}

const dns = new TestDnsServer();
let pebble: Pebble;
let a: TestProxy;
let b: TestProxy;

const acmeOf = async (proxy: TestProxy) => ((await proxy.api('certs')).body as { Acme: AcmeEntry[] }).Acme;
const fingerprintAt = (proxy: TestProxy) => presentedCertificate(proxy.settings.httpsPort, 'shop.ha.test', proxy.settings.bindAddress).then((c) => c.fingerprint256);

beforeAll(async () => {
  const dnsAddress = await dns.start();
  dns.set('tasks.fp-acme', ['127.0.0.2', '127.0.0.3']);
  dns.set('shop.ha.test', ['127.0.0.3']);
  const [httpPort, httpsPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  pebble = await startPebble({ dnsServer: dnsAddress, httpPort });
  const replica = async (address: string, plane: 'builtin' | 'haproxy') =>
    startTestProxy(
      { plane, dnsServer: dnsAddress },
      await testSettings({
        plane,
        dnsServer: dnsAddress,
        extraArgs: [
          '--http-port', String(httpPort), '--https-port', String(httpsPort), '--api-port', String(apiPort),
          '--bind-address', address, '--api-address', address, '--service-name', 'fp-acme', '--peer-sync-interval', '1',
        ],
        env: { ACME_DIRECTORY: pebble.directoryUrl, ACME_CA_FILE: pebble.caFile, ACME_EMAIL: 'ops@ha.test' },
      }),
    );
  [a, b] = await Promise.all([replica('127.0.0.2', 'builtin'), replica('127.0.0.3', 'haproxy')]);
  for (const proxy of [a, b]) await eventually(() => proxy.api('status').then((r) => r.status), (s) => s === 200, 10_000);
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await pebble?.stop();
  await dns.stop();
});

test('the first replica orders, the validation reaching the other one succeeds, and both serve the certificate', async () => {
  const reply = await a.api('reconfigure', { serviceName: 'shop', serviceDomain: 'shop.ha.test', port: '8080', letsencrypt: 'true' });
  expect(reply.status, reply.text).toBe(200);
  const ordered = await eventually(() => acmeOf(a), (list) => list.some((e) => e.Service === 'shop' && e.State === 'valid'), 40_000);
  expect(ordered.find((e) => e.Service === 'shop')?.State).toBe('valid');
  // B gets the route within a round (the order may be faster) but orders nothing: one account, one order.
  expect(await eventually(async () => b.proxy.table.snapshot().services.has('shop'), (has) => has, 5000)).toBe(true);
  expect(await acmeOf(b)).toEqual([]);

  const issued = a.proxy.certificates.snapshot().certificates.get('acme-shop.ha.test');
  expect(issued?.source).toBe('acme');
  const root = new X509Certificate(await pebble.root());
  expect(issued?.issuer).not.toBe(root.subject);
  expect(await fingerprintAt(a)).toBe(issued?.fingerprint256);
  // B's table holds a certificate once its plane serves it (applied, then saved, then held).
  const atB = () => b.proxy.certificates.snapshot().certificates.get('acme-shop.ha.test');
  await eventually(async () => atB()?.fingerprint256, (f) => f === issued?.fingerprint256, 10_000);
  expect(atB()?.source).toBe('acme');
  expect(await fingerprintAt(b)).toBe(issued?.fingerprint256);
}, 90_000);

test('when the ordering replica stops, the other takes the orders over and keeps the certificate it serves', async () => {
  const served = b.proxy.certificates.snapshot().certificates.get('acme-shop.ha.test')?.fingerprint256;
  expect(served).toBeDefined();
  await a.stop();
  dns.set('tasks.fp-acme', ['127.0.0.3']);
  const taken = await eventually(() => acmeOf(b), (list) => list.some((e) => e.Service === 'shop' && e.State === 'valid'), 15_000);
  expect(taken.find((e) => e.Service === 'shop')?.State).toBe('valid');
  expect(b.proxy.certificates.snapshot().certificates.get('acme-shop.ha.test')?.fingerprint256).toBe(served);
}, 30_000);
