/**
 * distribute=true (issue 14): a reconfigure, remove or certificate sent to one replica reaches the others,
 * found as tasks.<SERVICE_NAME> in DNS; the reply says which replicas applied it, and a replica
 * that does not answer is reported after its retries. Two real proxies on loopback addresses
 * stand for two Swarm tasks (same API port, as in a Swarm), a third address answers nothing.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startBackend } from '../support/backends.js';
import type { Backend } from '../support/backends.js';
import { makeCertificate } from '../support/certs.js';
import { TestDnsServer } from '../support/dns-server.js';
import { request } from '../support/http-client.js';
import { freePort, startTestProxy } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

const dns = new TestDnsServer();
let backend: Backend;
let a: TestProxy;
let b: TestProxy;

interface Replica {
  readonly Address: string;
  readonly Status: string;
  readonly Message: string;
}

beforeAll(async () => {
  backend = await startBackend('peer-backend');
  const dnsServer = await dns.start();
  dns.set('tasks.fp-peers', ['127.0.0.2', '127.0.0.3', '127.0.0.9']);
  const apiPort = String(await freePort());
  const replica = (address: string) =>
    startTestProxy({ plane: 'builtin', dnsServer, extraArgs: ['--service-name', 'fp-peers', '--api-port', apiPort, '--api-address', address, '--bind-address', address] });
  [a, b] = await Promise.all([replica('127.0.0.2'), replica('127.0.0.3')]);
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await backend?.close();
  await dns.stop();
});

test('a change with distribute=true is applied by every replica that answers; the reply names each one', async () => {
  const route = { serviceName: 'shared', servicePath: '/shared', port: String(backend.port), outboundHostname: '127.0.0.1' };
  const reply = await a.api('reconfigure', { ...route, distribute: 'true' });
  expect(reply.status, reply.text).toBe(200);
  const replicas = (reply.body as { Replicas: Replica[] }).Replicas;
  expect(replicas.map((r) => [r.Address, r.Status])).toEqual([
    ['127.0.0.3', 'OK'],
    ['127.0.0.9', 'NOK'],
  ]);
  expect(replicas[1]?.Message).toMatch(/unreachable after 4 attempts/);
  // The reply comes once the peers answered: B serves the route already.
  expect((await request(b.httpUrl, '/shared/x')).status).toBe(200);
  expect((await request(a.httpUrl, '/shared/x')).status).toBe(200);

  const removed = await b.api('remove', { serviceName: 'shared', distribute: 'true' });
  expect((removed.body as { Replicas: Replica[] }).Replicas[0]).toMatchObject({ Address: '127.0.0.2', Status: 'OK' });
  expect((await request(a.httpUrl, '/shared/x')).status).toBe(404);
  expect((await request(b.httpUrl, '/shared/x')).status).toBe(404);
}, 30_000);

test('with catching up off (PEER_SYNC_INTERVAL=0, outside swarm mode), a change without distribute stays on the replica that received it; a refused change is not distributed', async () => {
  const route = { serviceName: 'local', servicePath: '/local', port: String(backend.port), outboundHostname: '127.0.0.1' };
  const reply = await a.api('reconfigure', route);
  expect(reply.body).not.toHaveProperty('Replicas');
  expect((await request(a.httpUrl, '/local/x')).status).toBe(200);
  expect((await request(b.httpUrl, '/local/x')).status).toBe(404);
  const refused = await a.api('reconfigure', { serviceName: 'bad', servicePath: 'no-slash', port: '1', distribute: 'true' });
  expect(refused.status).toBe(400);
  expect(refused.body).not.toHaveProperty('Replicas');
}, 30_000);

test('a certificate put or removed with distribute=true is applied by every replica that answers', async () => {
  const certificate = await makeCertificate(['distributed.example.test']);
  const put = await fetch(`${a.apiUrl}/v1/docker-flow-proxy/cert?certName=distributed&distribute=true`, { method: 'PUT', body: certificate.bundle });
  expect(put.status).toBe(200);
  const replicas = ((await put.json()) as { Replicas: Replica[] }).Replicas;
  expect(replicas.map((r) => [r.Address, r.Status])).toEqual([
    ['127.0.0.3', 'OK'],
    ['127.0.0.9', 'NOK'],
  ]);
  expect(b.proxy.certificates.snapshot().certificates.get('distributed')?.fingerprint256).toBe(certificate.fingerprint256);

  const removed = await fetch(`${b.apiUrl}/v1/docker-flow-proxy/cert?certName=distributed&distribute=true`, { method: 'DELETE' });
  expect(((await removed.json()) as { Replicas: Replica[] }).Replicas[0]).toMatchObject({ Address: '127.0.0.2', Status: 'OK' });
  expect(a.proxy.certificates.snapshot().certificates.has('distributed')).toBe(false);
}, 30_000);

test('cert refuses a parameter it does not take rather than ignoring it', async () => {
  const reply = await fetch(`${a.apiUrl}/v1/docker-flow-proxy/cert?certName=x&distrbute=true`, { method: 'DELETE' });
  expect(reply.status).toBe(400);
  expect(((await reply.json()) as { Message: string }).Message).toBe('DELETE cert accepts certName (and distribute) only; unexpected parameter "distrbute"');
});
