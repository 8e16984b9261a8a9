/**
 * High availability on a real three-node Swarm on this machine (test/support/multinode.ts): one
 * manager (10.231.0.2) and two workers (10.231.0.3, .4), each a dockerd in its own network and
 * mount namespace. The proxy runs as a global service (one task per node, published in host
 * mode, MODE=swarm, each task mounting its own node's engine socket, the image's HEALTHCHECK,
 * an API token), as in docs/swarm.md. Two backends answering their own host name run one replica
 * per node on the attachable overlay network `proxy`: `whoami`, routed by its labels, and
 * `greeter`, routed by hand.
 *
 * The tests run in order on the same cluster: discovered routes on every replica (workers
 * included), a hand-sent change on every replica, a replica cut off and back, a node's engine
 * stopped under load and started again (its new proxy task, with an empty state directory,
 * catches up before it is healthy), every proxy task replaced, and last, with the proxy as a
 * two-replica service, a task rescheduled to another node when its node is drained.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { flowProxyImage, startMultiNodeSwarm } from '../support/multinode.js';
import type { MultiNodeSwarm } from '../support/multinode.js';
import { fetchText } from '../support/rolling.js';
import { nodeScriptImage, waitFor } from '../support/swarm.js';

const HTTP_PORT = 18480;
const API_PORT = 18481;
const TOKEN = 'multinode-test-token-0123456789abcdef';
// Answers with its host name (the container's short ID); on SIGTERM it closes its server and its
// connections, so the process ends at once and removals are quick.
const BACKEND_SCRIPT = `const server = require('http').createServer((q, r) => r.end(require('os').hostname() + '\\n')).listen(8080);
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
});`;

let swarm: MultiNodeSwarm | undefined;
let proxyImageName = '';

/** `docker service create` arguments of the proxy as docs/swarm.md runs it (host-mode ports, its node's engine, an API token), after the mode. */
function proxyServiceArgs(): string[] {
  return [
    '--detach', '--no-resolve-image', '--name', 'proxy', '--network', 'proxy', '--stop-grace-period', '2s',
    '-e', 'MODE=swarm', '-e', 'DATA_PLANE=builtin', '-e', 'LOG_LEVEL=warn', '-e', `API_TOKEN=${TOKEN}`, '-e', 'TIMEOUT_CONNECT=1',
    '--health-interval', '1s', '--health-start-period', '30s',
    '--publish', `mode=host,target=80,published=${HTTP_PORT}`, '--publish', `mode=host,target=8080,published=${API_PORT}`,
    '--mount', 'type=bind,source=/var/run/fp-node/docker.sock,target=/var/run/docker.sock', proxyImageName,
  ];
}

function cluster(): MultiNodeSwarm {
  if (swarm === undefined) throw new Error('the multi-node Swarm did not start');
  return swarm;
}

/** `STATUS BODY`, or `unreachable (...)`, with the API token. */
const get = (url: string, timeoutMs = 3000) => fetchText(url, { headers: { authorization: `Bearer ${TOKEN}` }, timeoutMs });

const api = (k: number, endpoint: string, query: Record<string, string>) =>
  get(`http://${cluster().address(k)}:${API_PORT}/v1/docker-flow-proxy/${endpoint}?${new URLSearchParams(query).toString()}`);
const through = (k: number, path: string) => get(`http://${cluster().address(k)}:${HTTP_PORT}${path}`);
const statusThrough = async (k: number, path: string) => (await through(k, path)).split(' ')[0];

/** The containers of `service`, per node (each a short ID, the host name the backend answers with). */
async function containersPerNode(service: string): Promise<string[][]> {
  const s = cluster();
  return Promise.all(
    s.nodes.map((k) => s.docker(k, 'ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`).then((ids) => ids.split('\n').filter((id) => id !== ''))),
  );
}

/** Host names answering `path` through node k's proxy, over `requests` requests. */
async function answering(k: number, path: string, requests: number): Promise<string[]> {
  const names = new Set<string>();
  for (let i = 0; i < requests; i++) {
    const answer = await through(k, path);
    names.add(answer.startsWith('200 ') ? answer.slice(4).trim() : answer);
  }
  return [...names].sort();
}

const proxyReady = (k: number) => waitFor(`node ${k}'s proxy to report ready`, () => get(`http://${cluster().address(k)}:${API_PORT}/v1/docker-flow-proxy/status`), (t) => t.startsWith('200'), 90_000);

beforeAll(async () => {
  const started = Date.now();
  const log = (line: string) => console.log(`[multinode] ${line} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  const [proxyImage, backendImage] = await Promise.all([flowProxyImage(), nodeScriptImage('fp-multinode/whoami:1', BACKEND_SCRIPT)]);
  log('images ready on the host engine');
  swarm = await startMultiNodeSwarm({ nodes: 3, images: [proxyImage, backendImage], log });
  const s = swarm;
  const m = s.manager;
  await s.docker(m, 'network', 'create', '--driver', 'overlay', '--attachable', 'proxy');
  proxyImageName = proxyImage;
  await s.docker(m, 'service', 'create', '--mode', 'global', ...proxyServiceArgs());
  const backend = (name: string, ...labels: string[]) =>
    s.docker(m, 'service', 'create', '--detach', '--no-resolve-image', '--name', name, '--network', 'proxy', '--replicas', '3', '--replicas-max-per-node', '1', '--stop-grace-period', '1s', ...labels, backendImage);
  await backend('whoami', '--label', 'com.df.notify=true', '--label', 'com.df.servicePath=/who', '--label', 'com.df.port=8080');
  await backend('greeter');
  await Promise.all(s.nodes.map(proxyReady));
  // Swarm lists a task in tasks.proxy (how replicas find each other) once its health check
  // passed: wait until every replica reached the two others in its last round.
  await Promise.all(
    s.nodes.map((k) =>
      waitFor(`node ${k}'s proxy to reach its two peers`, () => get(`http://${s.address(k)}:${API_PORT}/metrics`), (t) => /^flow_proxy_peer_replicas\{state="reached"\} 2$/m.test(t), 60_000),
    ),
  );
  log('every replica of the proxy reaches the two others');
}, 600_000);

afterAll(async () => {
  await swarm?.teardown();
}, 120_000);

test('a worker node cannot read Swarm services; the manager sees three Ready nodes', async () => {
  const s = cluster();
  await expect(s.docker(s.workers[0] as number, 'service', 'ls')).rejects.toThrow(/not a swarm manager/);
  expect((await s.docker(s.manager, 'node', 'ls', '--format', '{{.Status}}')).split('\n')).toEqual(['Ready', 'Ready', 'Ready']);
});

test('a route discovered from labels by the manager\'s replica is served by every replica, and each reaches the backend replicas on all three nodes', async () => {
  const s = cluster();
  const perNode = await waitFor('one running whoami container on every node', () => containersPerNode('whoami'), (lists) => lists.every((ids) => ids.length === 1), 60_000);
  const expected = perNode.map((ids) => ids[0] as string).sort();
  for (const k of s.nodes) {
    const names = await waitFor(`node ${k}'s proxy to reach whoami on all three nodes`, () => answering(k, '/who/', 15), (n) => n.join() === expected.join(), 30_000);
    expect(names).toEqual(expected);
  }
}, 120_000);

test('a change sent to a worker\'s replica reaches all three: at once with distribute=true, within the sync interval without', async () => {
  const s = cluster();
  const [first, second] = s.workers as [number, number];
  const reply = await api(first, 'reconfigure', { serviceName: 'greeter', servicePath: '/hand', port: '8080', distribute: 'true' });
  expect(reply).toMatch(/^200 /);
  const replicas = (JSON.parse(reply.slice(4)) as { Replicas: { Status: string }[] }).Replicas;
  expect(replicas.map((r) => r.Status)).toEqual(['OK', 'OK']);
  // The reply came once the others applied it: every replica serves it within a second.
  for (const k of s.nodes) expect(await waitFor(`node ${k} to serve /hand`, () => statusThrough(k, '/hand/'), (c) => c === '200', 1000)).toBe('200');

  expect(await api(second, 'reconfigure', { serviceName: 'greeter', servicePath: '/hand,/quiet', port: '8080' })).toMatch(/^200 /);
  for (const k of s.nodes) expect(await waitFor(`node ${k} to serve /quiet`, () => statusThrough(k, '/quiet/'), (c) => c === '200', 5000)).toBe('200');
}, 60_000);

test('a replica whose node is cut off catches up when the node is back, without a restart', async () => {
  const s = cluster();
  const cut = s.workers[1] as number;
  const [before] = (await containersPerNode('proxy'))[s.nodes.indexOf(cut)] ?? [];
  await s.cutNode(cut);
  try {
    expect(await api(s.manager, 'reconfigure', { serviceName: 'greeter', servicePath: '/hand,/quiet,/during-cut', port: '8080' })).toMatch(/^200 /);
    const others = s.nodes.filter((k) => k !== cut);
    for (const k of others) expect(await waitFor(`node ${k} to serve /during-cut`, () => statusThrough(k, '/during-cut/'), (c) => c === '200', 5000)).toBe('200');
  } finally {
    await s.restoreNode(cut);
  }
  expect(await waitFor(`node ${cut}, back, to serve /during-cut`, () => statusThrough(cut, '/during-cut/'), (c) => c === '200', 30_000)).toBe('200');
  expect((await containersPerNode('proxy'))[s.nodes.indexOf(cut)]).toEqual([before]);
}, 90_000);

test('stopping a node\'s engine fails no request sent to the other nodes\' proxies; the node\'s new proxy task catches up before it is ready', async () => {
  const s = cluster();
  const stopped = s.workers[1] as number;
  const serving = s.nodes.filter((k) => k !== stopped);
  const outcomes: string[] = [];
  let loading = true;
  const client = async (k: number, path: string) => {
    while (loading) outcomes.push(`${k}${path} ${(await get(`http://${s.address(k)}:${HTTP_PORT}${path}`, 20_000)).split('\n')[0]}`);
  };
  const load = serving.flatMap((k) => [client(k, '/who/'), client(k, '/hand/')]);
  const [oldProxy] = (await containersPerNode('proxy'))[s.nodes.indexOf(stopped)] ?? [];
  try {
    await waitFor('requests to flow', async () => outcomes.length, (n) => n >= 40, 20_000);
    await s.stopNode(stopped);
    const atStop = outcomes.length;
    await waitFor('requests to flow with the node down', async () => outcomes.length, (n) => n >= atStop + 200, 60_000);
    await s.startNode(stopped);
    const atStart = outcomes.length;
    await waitFor('requests to flow with the node back', async () => outcomes.length, (n) => n >= atStart + 100, 60_000);
  } finally {
    loading = false;
    await Promise.all(load);
  }
  const failed = outcomes.filter((line) => !/ 200 /.test(`${line} `));
  expect(failed.slice(0, 5), `${failed.length} of ${outcomes.length} requests failed`).toEqual([]);

  // Back on its node, the proxy is a new task with an empty state directory: ready means it holds the hand-sent route.
  await waitFor(`a new proxy task on node ${stopped}`, async () => (await containersPerNode('proxy'))[s.nodes.indexOf(stopped)] ?? [], (ids) => ids.length === 1 && ids[0] !== oldProxy, 60_000);
  await proxyReady(stopped);
  expect(await statusThrough(stopped, '/during-cut/')).toBe('200');
}, 240_000);

test('every proxy task replaced (docker service update --force) keeps the routes sent by hand', async () => {
  const s = cluster();
  const before = (await containersPerNode('proxy')).flat();
  await s.docker(s.manager, 'service', 'update', '--detach', '--no-resolve-image', '--force', 'proxy');
  await waitFor('three new proxy tasks', async () => (await containersPerNode('proxy')).flat(), (ids) => ids.length === 3 && ids.every((id) => !before.includes(id)), 120_000);
  for (const k of s.nodes) {
    await proxyReady(k);
    expect(await statusThrough(k, '/during-cut/')).toBe('200');
    expect(await statusThrough(k, '/who/')).toBe('200');
  }
}, 180_000);

test('a replicated proxy task rescheduled to another node (its node drained) serves the routes sent by hand there', async () => {
  const s = cluster();
  const m = s.manager;
  await s.docker(m, 'service', 'rm', 'proxy');
  await waitFor('the global proxy to be gone', async () => (await containersPerNode('proxy')).flat(), (ids) => ids.length === 0, 60_000);
  await s.docker(m, 'service', 'create', '--replicas', '2', '--replicas-max-per-node', '1', ...proxyServiceArgs());
  const placed = await waitFor('two proxy tasks on two nodes', () => containersPerNode('proxy'), (lists) => lists.filter((ids) => ids.length === 1).length === 2, 60_000);
  const hosting = s.nodes.filter((_, i) => placed[i]?.length === 1);
  const free = s.nodes.find((k) => !hosting.includes(k)) as number;
  // Drain a worker if one hosts a replica: its replacement then has no Swarm copy to start from, only its peer.
  const drained = hosting.find((k) => s.workers.includes(k)) ?? (hosting[0] as number);
  for (const k of hosting) await proxyReady(k);
  expect(await api(drained, 'reconfigure', { serviceName: 'greeter', servicePath: '/hand,/moved', port: '8080', distribute: 'true' })).toMatch(/^200 /);
  // Held by both replicas before one goes (a new task may not be listed in tasks.proxy yet when distribute looks).
  for (const k of hosting) expect(await waitFor(`node ${k} to serve /moved`, () => statusThrough(k, '/moved/'), (c) => c === '200', 10_000)).toBe('200');

  const drainedId = await s.docker(drained, 'info', '--format', '{{.Swarm.NodeID}}');
  await s.docker(m, 'node', 'update', '--availability', 'drain', drainedId);
  await waitFor(`the proxy task rescheduled to node ${free}`, async () => (await containersPerNode('proxy'))[s.nodes.indexOf(free)] ?? [], (ids) => ids.length === 1, 60_000);
  await proxyReady(free);
  expect(await statusThrough(free, '/moved/')).toBe('200');
}, 180_000);
