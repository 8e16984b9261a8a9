/**
 * Docker Flow Proxy's tutorial on a real single-node Swarm, with Flow Proxy itself running as a
 * Swarm service (the flow-proxy:local image, HAProxy plane, MODE=swarm, published in host mode on
 * free ports picked at start, so a port held by anything else on the machine cannot fail the set-up).
 * Each test sends the routes it relies on itself (reconfigure is idempotent), so any one of them
 * can run alone.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeCertificate } from '../support/certs.js';
import type { TestCertificate } from '../support/certs.js';
import { eventually, request } from '../support/http-client.js';
import { presentedCertificate } from '../support/https-client.js';
import { freePort, tempDir } from '../support/proxy.js';
import { containerRunning, docker, ensureSwarm, fetchInside, nodeScriptImage, runningTasks, waitFor } from '../support/swarm.js';

const run = promisify(execFile);
const SECRET = 'cert-fp-tutorial';
let HTTP: string;
let HTTPS_PORT: number;
let API: string;
const SERVICES = ['proxy', 'go-demo', 'labelled'];
const NETWORKS = ['proxy', 'go-demo'];
const GO_DEMO = `require('http').createServer((q, r) => r.end(q.url.endsWith('/hello') ? 'hello, world!\\n' : require('os').hostname() + '\\n')).listen(8080);`;

async function cleanUp(): Promise<void> {
  await docker('service', 'rm', ...SERVICES).catch(() => '');
  for (const label of ['com.flow-proxy.routes=proxy', 'com.flow-proxy.cert=proxy']) {
    const copies = await docker('config', 'ls', '-q', '--filter', `label=${label}`);
    if (copies !== '') await docker('config', 'rm', ...copies.split('\n')).catch(() => '');
  }
  await docker('secret', 'rm', SECRET).catch(() => '');
  for (let i = 0; i < 30; i++) {
    const left = await docker('network', 'rm', ...NETWORKS).then(() => '', (error: Error) => error.message);
    if (left === '' || left.includes('not found')) return;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

const text = async (url: string) => {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(3000) });
    return `${response.status} ${await response.text()}`;
  } catch {
    return 'unreachable';
  }
};

let fromSecret: TestCertificate;

/** The tutorial's own step, sent again by each test that needs it (unchanged when already there). */
async function sendDemoRoute(): Promise<void> {
  const reply = await text(`${API}/reconfigure?serviceName=go-demo&servicePath=/demo&port=8080`);
  expect(reply).toMatch(/^200 .*"Status":"OK"/);
  await waitFor('/demo/hello to answer through the proxy', () => text(`${HTTP}/demo/hello`), (t) => t === '200 hello, world!\n', 30_000);
}

beforeAll(async () => {
  await ensureSwarm();
  await cleanUp();
  const ports = new Set<number>();
  while (ports.size < 3) ports.add(await freePort());
  const [httpPort, apiPort, httpsPort] = [...ports] as [number, number, number];
  HTTP = `http://127.0.0.1:${httpPort}`;
  API = `http://127.0.0.1:${apiPort}/v1/docker-flow-proxy`;
  HTTPS_PORT = httpsPort;
  fromSecret = await makeCertificate(['secret.fp.test']);
  const secretFile = path.join(await tempDir('secret'), 'bundle.pem');
  await writeFile(secretFile, fromSecret.bundle);
  await docker('secret', 'create', SECRET, secretFile);
  await run('sh', ['scripts/image-local.sh'], { timeout: 300_000 });
  const image = await nodeScriptImage('go-demo-test:1', GO_DEMO);
  for (const network of NETWORKS) await docker('network', 'create', '--driver', 'overlay', '--attachable', network);
  // Node as PID 1 ignores SIGTERM: a short grace period keeps removals (and clean-up) quick.
  await docker('service', 'create', '--detach', '--no-resolve-image', '--name', 'go-demo', '--stop-grace-period', '1s', '--network', 'go-demo', '--network', 'proxy', image);
  await docker(
    'service', 'create', '--detach', '--no-resolve-image', '--name', 'proxy', '--network', 'proxy', '-e', 'MODE=swarm', '-e', 'LOG_LEVEL=warn',
    '--publish', `mode=host,target=80,published=${httpPort}`, '--publish', `mode=host,target=8080,published=${apiPort}`,
    '--publish', `mode=host,target=443,published=${HTTPS_PORT}`, '--secret', SECRET,
    '--mount', 'type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock', 'flow-proxy:local',
  );
  const ping = await eventually(() => text(`${API}/ping`), (t) => t.startsWith('200'), 60_000);
  if (!ping.startsWith('200')) {
    const tasks = await docker('service', 'ps', 'proxy', '--no-trunc', '--format', '{{.CurrentState}} {{.Error}}').catch((e: Error) => e.message);
    throw new Error(`the proxy service's API did not answer within 60 s (${ping}); its tasks:\n${tasks}`);
  }
}, 600_000);

afterAll(cleanUp, 120_000);

test('the tutorial: reconfigure, then /demo/hello answers hello, world!', async () => {
  const reply = await text(`${API}/reconfigure?serviceName=go-demo&servicePath=/demo&port=8080`);
  expect(reply).toMatch(/^200 .*"Status":"OK"/);
  expect(await eventually(() => text(`${HTTP}/demo/hello`), (t) => t === '200 hello, world!\n', 20_000)).toBe('200 hello, world!\n');
}, 60_000);

test('scaled to 5 replicas, 500 requests spread over all 5 with no reconfiguration', async () => {
  await sendDemoRoute();
  await docker('service', 'scale', '--detach', 'go-demo=5');
  const spread = async () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 500; i++) {
      const response = await request(HTTP, '/demo/whoami');
      const key = response.status === 200 ? response.text().trim() : String(response.status);
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return counts;
  };
  // Replicas start one by one: wait for a round of 500 where all five are up and share the load.
  const balanced = (c: Map<string, number>) => c.size === 5 && [...c.keys()].every((k) => !/^\d{3}$/.test(k)) && Math.min(...c.values()) > 50;
  const counts = await eventually(spread, balanced, 60_000);
  expect(counts.size).toBe(5);
  for (const served of counts.values()) expect(served).toBeGreaterThan(50);
}, 180_000);

test('a replica that starts is served within a second of running, one that is removed stops receiving requests, with no reload', async () => {
  await sendDemoRoute();
  await docker('service', 'scale', '--detach', 'go-demo=2');
  const hostnames = async (tasks: readonly { container: string }[]) => new Set(tasks.map((t) => t.container.slice(0, 12)));
  const whoServes = async (rounds: number) => {
    const seen = new Set<string>();
    for (let i = 0; i < rounds; i++) {
      const response = await request(HTTP, '/demo/whoami');
      seen.add(response.status === 200 ? response.text().trim() : String(response.status));
    }
    return seen;
  };
  const two = await waitFor('two go-demo replicas running', () => runningTasks('go-demo'), (tasks) => tasks.length === 2, 60_000);
  await waitFor('both replicas to be served', () => whoServes(20), (seen) => seen.size === 2, 20_000);
  const reloads = async () => ((JSON.parse((await text(`${API}/status`)).slice(4)) as { Plane: { details: { reloads: number } } }).Plane.details.reloads);
  const reloadsBefore = await reloads();

  await docker('service', 'scale', '--detach', 'go-demo=3');
  const three = await waitFor('a third replica running', () => runningTasks('go-demo'), (tasks) => tasks.length === 3, 60_000);
  const before = await hostnames(two);
  const added = [...(await hostnames(three))].find((name) => !before.has(name)) ?? '';
  // Measured from when the test saw the task running, which is after it started running.
  const runningSeen = Date.now();
  await waitFor('the new replica to be served', () => whoServes(6), (seen) => seen.has(added), 10_000);
  const inRotationMs = Date.now() - runningSeen;
  expect(inRotationMs).toBeLessThan(1000);

  await docker('service', 'scale', '--detach', 'go-demo=2');
  const remaining = await waitFor('one replica to be removed', () => runningTasks('go-demo'), (tasks) => tasks.length === 2, 60_000);
  const kept = await hostnames(remaining);
  const removed = [...(await hostnames(three))].find((name) => !kept.has(name)) ?? '';
  // Round-robin over three replicas reaches each within 30 requests: a round without the removed
  // one shows it is out of rotation; a second round shows it stays out.
  const exactlyKept = (seen: Set<string>) => seen.size === kept.size && [...kept].every((k) => seen.has(k));
  const outWithinMs = Date.now();
  await waitFor('only the remaining replicas to be served', () => whoServes(30), exactlyKept, 10_000);
  expect(Date.now() - outWithinMs).toBeLessThan(2000);
  const again = await whoServes(30);
  expect(again.has(removed)).toBe(false);
  expect(exactlyKept(again)).toBe(true);
  expect(await reloads()).toBe(reloadsBefore);
}, 240_000);

test('a service with only labels is routed without any API call, and unrouted when removed', async () => {
  await docker(
    'service', 'create', '--detach', '--no-resolve-image', '--name', 'labelled', '--stop-grace-period', '1s', '--network', 'proxy',
    '--label', 'com.df.notify=true', '--label', 'com.df.servicePath=/labelled', '--label', 'com.df.port=8080', 'go-demo-test:1',
  );
  expect(await eventually(() => text(`${HTTP}/labelled/hello`), (t) => t === '200 hello, world!\n', 30_000)).toBe('200 hello, world!\n');
  await docker('service', 'rm', 'labelled');
  expect(await eventually(() => text(`${HTTP}/labelled/hello`), (t) => t.startsWith('404'), 10_000)).toMatch(/^404/);
}, 60_000);

test('docker service update --force proxy comes back with every route and certificate sent by hand (no volume)', async () => {
  await sendDemoRoute();
  const sent = await makeCertificate(['demo.fp.test']);
  const put = await fetch(`${API}/cert?certName=demo`, { method: 'PUT', body: sent.bundle });
  expect(put.status).toBe(200);
  expect((await presentedCertificate(HTTPS_PORT, 'demo.fp.test')).fingerprint256).toBe(sent.fingerprint256);
  expect((await presentedCertificate(HTTPS_PORT, 'secret.fp.test')).fingerprint256).toBe(fromSecret.fingerprint256);
  // The image's HEALTHCHECK keeps a new task 'starting' for a few seconds after its API answers.
  const before = await waitFor('the proxy task to be running (healthy)', () => runningTasks('proxy'), (tasks) => tasks.length === 1, 60_000);
  const [old] = before as [{ id: string; container: string }];

  await docker('service', 'update', '--detach', '--no-resolve-image', '--force', 'proxy');
  // The replacement: a new task (another ID, another container) that Swarm reports running ...
  const [replacement] = await waitFor(
    'Swarm to report a new proxy task running',
    () => runningTasks('proxy'),
    (tasks) => tasks.length === 1 && tasks[0]?.id !== old.id && tasks[0]?.container !== old.container,
    60_000,
  );
  if (replacement === undefined) throw new Error('unreachable');
  // ... the old one stopped, so only the new task's container holds the published ports ...
  await waitFor('the old proxy container to stop', () => containerRunning(old.container), (running) => !running, 30_000);
  // ... and the new task's own API answers (asked inside its container, not through a port).
  const inside = 'http://127.0.0.1:8080/v1/docker-flow-proxy';
  await waitFor('the new task to answer /ping', () => fetchInside(replacement.container, `${inside}/ping`), (t) => t.startsWith('200'), 60_000);
  const table = await fetchInside(replacement.container, `${inside}/config?type=json`);
  expect(table).toMatch(/^200 /);
  expect((JSON.parse(table.slice(4)) as Record<string, { Source: string }>)['go-demo']?.Source).toBe('api');
  await waitFor('the published API port to answer', () => text(`${API}/ping`), (t) => t.startsWith('200'), 30_000);

  expect(await eventually(() => text(`${HTTP}/demo/hello`), (t) => t === '200 hello, world!\n', 30_000)).toBe('200 hello, world!\n');
  expect((await presentedCertificate(HTTPS_PORT, 'demo.fp.test')).fingerprint256).toBe(sent.fingerprint256);
  expect((await presentedCertificate(HTTPS_PORT, 'secret.fp.test')).fingerprint256).toBe(fromSecret.fingerprint256);
  expect(await runningTasks('proxy')).toEqual([replacement]);
}, 180_000);
