/**
 * Replicas catch up with each other (issue 14): three real proxies on loopback addresses stand
 * for three Swarm tasks (one API port, peers found as tasks.<SERVICE_NAME> in DNS). A change sent
 * to one replica, without distribute, reaches the others within the sync interval; a replica
 * that cannot find its peers for a while catches up once it can; a new replica with an empty
 * state directory reports ready only once it holds the routes and certificates sent by hand;
 * concurrent changes to one service end the same way on every replica.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startBackend } from '../support/backends.js';
import type { Backend } from '../support/backends.js';
import { makeCertificate } from '../support/certs.js';
import { TestDnsServer } from '../support/dns-server.js';
import { eventually, request } from '../support/http-client.js';
import { freePort, startTestProxy, tempDir } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

const SERVICE = 'fp-sync';
const TOKEN = 'replication-test-token-0123456789';
const shared = new TestDnsServer();
/** Replica C's own DNS: while it lists C alone, C cannot find its peers (cut off). */
const cDns = new TestDnsServer();
let backend: Backend;
let apiPort: string;
let sharedServer: string;
let a: TestProxy;
let b: TestProxy;
let c: TestProxy;

const ADDRESSES = { a: '127.0.0.2', b: '127.0.0.3', c: '127.0.0.4', late: '127.0.0.5' };

function replica(address: string, dnsServer: string, stateDir?: string): Promise<TestProxy> {
  return startTestProxy({
    plane: 'builtin',
    dnsServer,
    ...(stateDir === undefined ? {} : { stateDir }),
    extraArgs: ['--service-name', SERVICE, '--api-port', apiPort, '--api-address', address, '--bind-address', address, '--peer-sync-interval', '1', '--api-token', TOKEN],
  });
}

async function api(proxy: TestProxy, endpoint: string, query: Record<string, string>, init: RequestInit = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${proxy.apiUrl}/v1/docker-flow-proxy/${endpoint}?${new URLSearchParams(query).toString()}`, {
    ...init,
    headers: { authorization: `Bearer ${TOKEN}`, ...(init.headers as Record<string, string> | undefined) },
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const status = (proxy: TestProxy, path: string) => request(proxy.httpUrl, path).then((response) => response.status);
const route = (name: string, path: string) => ({ serviceName: name, servicePath: path, port: String(backend.port), outboundHostname: '127.0.0.1' });

beforeAll(async () => {
  backend = await startBackend('sync-backend');
  sharedServer = await shared.start();
  const cServer = await cDns.start();
  shared.set(`tasks.${SERVICE}`, [ADDRESSES.a, ADDRESSES.b, ADDRESSES.c]);
  cDns.set(`tasks.${SERVICE}`, [ADDRESSES.a, ADDRESSES.b, ADDRESSES.c]);
  apiPort = String(await freePort());
  [a, b, c] = await Promise.all([replica(ADDRESSES.a, sharedServer), replica(ADDRESSES.b, sharedServer), replica(ADDRESSES.c, cServer)]);
}, 30_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop(), c?.stop()]);
  await backend?.close();
  await shared.stop();
  await cDns.stop();
});

test('a change sent to one replica without distribute reaches the others; so does its removal', async () => {
  expect((await api(a, 'reconfigure', route('spread', '/spread'))).status).toBe(200);
  for (const other of [b, c]) expect(await eventually(() => status(other, '/spread/x'), (s) => s === 200, 5000)).toBe(200);
  expect((await api(b, 'remove', { serviceName: 'spread' })).status).toBe(200);
  for (const other of [a, c]) expect(await eventually(() => status(other, '/spread/x'), (s) => s === 404, 5000)).toBe(404);
  const metrics = await (await fetch(`${c.apiUrl}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
  expect(metrics).toMatch(/^flow_proxy_peer_replicas\{state="reached"\} 2$/m);
  expect(metrics).toMatch(/^flow_proxy_peer_changes_total\{kind="route",result="applied"\} [1-9]/m);
}, 20_000);

test('a certificate sent to one replica is served by the others', async () => {
  const certificate = await makeCertificate(['sync.example.test']);
  const put = await fetch(`${a.apiUrl}/v1/docker-flow-proxy/cert?certName=sync-cert`, { method: 'PUT', body: certificate.bundle, headers: { authorization: `Bearer ${TOKEN}` } });
  expect(put.status).toBe(200);
  const names = async (proxy: TestProxy) => ((await api(proxy, 'certs', {})).body.Certs as { ServiceName: string }[]).map((cert) => cert.ServiceName);
  for (const other of [b, c]) expect(await eventually(() => names(other), (list) => list.includes('sync-cert'), 5000)).toContain('sync-cert');
  const removed = await fetch(`${c.apiUrl}/v1/docker-flow-proxy/cert?certName=sync-cert`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
  expect(removed.status).toBe(200);
  for (const other of [a, b]) expect(await eventually(() => names(other), (list) => !list.includes('sync-cert'), 5000)).not.toContain('sync-cert');
}, 20_000);

test('a replica cut off from its peers catches up when it can reach them again, without a restart', async () => {
  expect((await api(a, 'reconfigure', route('before-cut', '/before-cut'))).status).toBe(200);
  expect(await eventually(() => status(c, '/before-cut/x'), (s) => s === 200, 5000)).toBe(200);
  cDns.set(`tasks.${SERVICE}`, [ADDRESSES.c]);
  // Rounds run one at a time: once this one found no peer, no round that could still reach them is left.
  expect((await c.proxy.replication.round()).peers).toBe(0);
  const version = c.proxy.table.snapshot().version;
  expect((await api(a, 'reconfigure', route('during-cut', '/during-cut'))).status).toBe(200);
  expect((await api(b, 'remove', { serviceName: 'before-cut' })).status).toBe(200);
  expect(await eventually(() => status(a, '/before-cut/x'), (s) => s === 404, 5000)).toBe(404);
  expect((await c.proxy.replication.round()).peers).toBe(0);
  expect(c.proxy.table.snapshot().version).toBe(version);
  expect(await status(c, '/during-cut/x')).toBe(404);
  expect(await status(c, '/before-cut/x')).toBe(200);

  cDns.set(`tasks.${SERVICE}`, [ADDRESSES.a, ADDRESSES.b, ADDRESSES.c]);
  expect(await eventually(() => status(c, '/during-cut/x'), (s) => s === 200, 5000)).toBe(200);
  expect(await eventually(() => status(c, '/before-cut/x'), (s) => s === 404, 5000)).toBe(404);
}, 30_000);

test('a new replica with an empty state directory reports ready only once it holds what was sent by hand', async () => {
  expect((await api(b, 'reconfigure', route('for-newcomer', '/for-newcomer'))).status).toBe(200);
  const certificate = await makeCertificate(['newcomer.example.test']);
  const put = await fetch(`${b.apiUrl}/v1/docker-flow-proxy/cert?certName=newcomer-cert`, { method: 'PUT', body: certificate.bundle, headers: { authorization: `Bearer ${TOKEN}` } });
  expect(put.status).toBe(200);
  shared.set(`tasks.${SERVICE}`, [ADDRESSES.a, ADDRESSES.b, ADDRESSES.c, ADDRESSES.late]);
  const late = await replica(ADDRESSES.late, sharedServer, await tempDir('late-state'));
  try {
    const ready = await eventually(() => fetch(`${late.apiUrl}/v1/docker-flow-proxy/status`).then((r) => r.status), (s) => s === 200, 10_000);
    expect(ready).toBe(200);
    // Ready means caught up: no further wait.
    expect(await status(late, '/for-newcomer/x')).toBe(200);
    expect(late.proxy.certificates.snapshot().certificates.has('newcomer-cert')).toBe(true);
  } finally {
    await late.stop();
    shared.set(`tasks.${SERVICE}`, [ADDRESSES.a, ADDRESSES.b, ADDRESSES.c]);
  }
}, 30_000);

test('concurrent changes to one service end the same way on every replica', async () => {
  const [first, second] = await Promise.all([
    api(a, 'reconfigure', { ...route('contested', '/contested'), servicePath: '/contested-a' }),
    api(b, 'reconfigure', { ...route('contested', '/contested'), servicePath: '/contested-b' }),
  ]);
  expect([first.status, second.status]).toEqual([200, 200]);
  const paths = async () => Promise.all([a, b, c].map((proxy) => proxy.proxy.table.snapshot().services.get('contested')?.params.servicePath));
  const settled = await eventually(paths, (list) => list.every((path) => path !== undefined && path === list[0]), 5000);
  expect(new Set(settled).size).toBe(1);
  expect(['/contested-a', '/contested-b']).toContain(settled[0]);
}, 20_000);

test('a change passed on by a peer with an older stamp than the one held is ignored; a malformed stamp is refused', async () => {
  expect((await api(a, 'reconfigure', route('stamped', '/stamped-new'))).status).toBe(200);
  const old = await api(a, 'reconfigure', route('stamped', '/stamped-old'), { headers: { 'flow-proxy-stamp': '1@old-replica' } });
  expect(old.status).toBe(200);
  expect(a.proxy.table.snapshot().services.get('stamped')?.params.servicePath).toBe('/stamped-new');
  const malformed = await api(a, 'reconfigure', route('stamped', '/stamped-x'), { headers: { 'flow-proxy-stamp': 'yesterday' } });
  expect(malformed.status).toBe(400);
  expect(malformed.body.Message).toMatch(/flow-proxy-stamp header must be/);
});

test('what a replica holds is served to authenticated callers only', async () => {
  const url = `${a.apiUrl}/v1/flow-proxy/replication`;
  expect((await fetch(url)).status).toBe(401);
  const answer = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(answer.status).toBe(200);
  const etag = answer.headers.get('etag') ?? '';
  expect((await fetch(url, { headers: { authorization: `Bearer ${TOKEN}`, 'if-none-match': etag } })).status).toBe(304);
});

test('a replica whose credentials its peers refuse gets nothing from them, and says so in its metrics', async () => {
  shared.set(`tasks.${SERVICE}`, [ADDRESSES.a, ADDRESSES.b, ADDRESSES.c, ADDRESSES.late]);
  const stranger = await startTestProxy({
    plane: 'builtin',
    dnsServer: sharedServer,
    extraArgs: ['--service-name', SERVICE, '--api-port', apiPort, '--api-address', ADDRESSES.late, '--bind-address', ADDRESSES.late, '--peer-sync-interval', '1', '--api-token', 'another-token-0123456789abcdef'],
  });
  try {
    expect((await api(a, 'reconfigure', route('not-for-strangers', '/not-for-strangers'))).status).toBe(200);
    expect((await stranger.proxy.replication.round()).peers).toBe(3);
    const metrics = await (await fetch(`${stranger.apiUrl}/metrics`, { headers: { authorization: 'Bearer another-token-0123456789abcdef' } })).text();
    expect(metrics).toMatch(/^flow_proxy_peer_replicas\{state="unreached"\} 3$/m);
    expect(await status(stranger, '/not-for-strangers/x')).toBe(404);
  } finally {
    await stranger.stop();
    shared.set(`tasks.${SERVICE}`, [ADDRESSES.a, ADDRESSES.b, ADDRESSES.c]);
  }
}, 20_000);

test('without API credentials, only the replicas themselves may read it', async () => {
  const port = String(await freePort());
  const open = (address: string) =>
    startTestProxy({ plane: 'builtin', dnsServer: sharedServer, extraArgs: ['--service-name', 'fp-open', '--api-port', port, '--api-address', address, '--bind-address', address, '--peer-sync-interval', '1'] });
  shared.set('tasks.fp-open', ['127.0.0.6', '127.0.0.7']);
  const [x, y] = await Promise.all([open('127.0.0.6'), open('127.0.0.7')]);
  try {
    const refused = await fetch(`${x.apiUrl}/v1/flow-proxy/replication`);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { Message: string }).Message).toMatch(/only the proxy's own replicas/);
    expect((await x.api('reconfigure', route('open-route', '/open-route'))).status).toBe(200);
    expect(await eventually(() => status(y, '/open-route/x'), (s) => s === 200, 5000)).toBe(200);
  } finally {
    await Promise.all([x.stop(), y.stop()]);
  }
}, 20_000);
