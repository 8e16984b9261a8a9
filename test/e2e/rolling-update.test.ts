/**
 * Issue 11, zero-failure rolling updates, on a real single-node Swarm: a 3-replica backend (a
 * Node server that shuts down gracefully on SIGTERM and answers "VERSION HOSTNAME") routed through
 * Flow Proxy running as a Swarm service in swarm mode (task addresses from the Engine API), on
 * each data plane. While 8 keep-alive connections send requests through the proxy as fast as it
 * answers, the backend goes through `docker service update --force`, `docker service update
 * --image` (the same files imported again under the other tag: the answers must show its
 * version), `docker service scale NAME=1` and `=3`: first with Swarm's default update order,
 * stop-first, then with start-first, one task at a time, 1 s apart (test/support/rolling.ts has
 * the settings and what Swarm does). Every answer other than a 200 and every socket error counts
 * as a failed request; none may fail, and after each phase the answers must show what Swarm
 * runs (every replica in rotation, the new version only).
 *
 * Each phase ends on what Swarm reports (tasks converged, the old containers gone) and on the
 * answers through the proxy showing it, within deadlines. On a failure, the failed requests, the
 * backend's container events and log lines and the proxy's replica addresses are printed on one
 * time line, with the proxy's logs (and HAProxy's servers). Names are prefixed with this
 * process's id; everything created is removed at the end.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  EventRecorder,
  NodeLoad,
  ReplicaRecorder,
  addressOwners,
  backendImages,
  backendLogEntries,
  createBackend,
  createProxy,
  fetchText,
  haproxyServers,
  phaseTable,
  prepareBackend,
  proxyImage,
  removeAll,
  rollingSequence,
  routeService,
  runningContainers,
  serviceImage,
  serviceLogs,
  timeline,
} from '../support/rolling.js';
import type { BackendImages, PhaseCount, ProxyService, SequenceResult, UpdateOrder } from '../support/rolling.js';
import { docker, ensureSwarm, waitFor } from '../support/swarm.js';

const prefix = `fp-rolling-${process.pid}`;
const proxyTag = `${prefix}/proxy:local`;
const CONNECTIONS = 8;
let images: BackendImages;
const services: string[] = [];
const networks: string[] = [];

beforeAll(async () => {
  await ensureSwarm();
  [images] = await Promise.all([backendImages(), proxyImage(proxyTag)]);
}, 600_000);

afterAll(() => removeAll(services, networks, [proxyTag]), 120_000);

describe.each(['haproxy', 'builtin'] as const)('%s plane', (plane) => {
  const network = `${prefix}-${plane}`;
  const backend = `${prefix}-${plane}-web`;
  const proxyName = `${prefix}-${plane}-proxy`;
  let proxy: ProxyService;

  beforeAll(async () => {
    await docker('network', 'create', '--driver', 'overlay', '--attachable', network);
    networks.push(network);
    services.push(backend, proxyName);
    [proxy] = await Promise.all([createProxy(proxyName, network, proxyTag, plane, 'engine'), createBackend(backend, network, images.v1, 'stop-first')]);
    await routeService(proxy, backend, '/web');
    await waitFor(`three ${backend} replicas running`, () => runningContainers(backend), (c) => c.length === 3, 60_000);
    await waitFor('/web/ to answer v1 through the proxy', () => fetchText(`http://127.0.0.1:${proxy.httpPort}/web/`), (t) => t.startsWith('200 v1 '), 30_000);
  }, 180_000);

  // This plane's services and network go before the next plane runs.
  afterAll(() => removeAll([backend, proxyName], [network]), 120_000);

  // stop-first first: Swarm's default, and the harder case (one replica short during each step).
  test.each(['stop-first', 'start-first'] as const)('%s: no request fails while the backend is updated and scaled, and every replica and the new version are served', async (order: UpdateOrder) => {
    await prepareBackend(backend, order);
    const target = (await serviceImage(backend)) === images.v2 ? images.v1 : images.v2;
    const version = target.split(':').pop() ?? '';
    const label = `${plane}, ${order}`;
    const events = new EventRecorder(backend);
    const replicas = new ReplicaRecorder(proxy, backend);
    const origin = Date.now();
    const load = new NodeLoad(`http://127.0.0.1:${proxy.httpPort}/web/`, CONNECTIONS);
    let result: SequenceResult | undefined;
    let failed: Error | undefined;
    try {
      result = await rollingSequence({ service: backend, target, load, phaseTimeoutMs: 60_000, answersTimeoutMs: 10_000, log: (line) => console.log(`[${label}] ${line}`) });
    } catch (error) {
      failed = error as Error;
    }
    const phases: PhaseCount[] = await load.stop();
    events.stop();
    await replicas.stop();
    const seconds = ((Date.now() - origin) / 1000).toFixed(1);
    console.log(`[${label}] ${seconds} s under load, ${CONNECTIONS} connections\n${phaseTable([{ label, phases }])}`);
    for (const p of phases) console.log(`[${label}] ${p.phase}: answers by version ${JSON.stringify(Object.fromEntries(p.versions))}`);
    if (load.failures.length > 0 || failed !== undefined || (result?.problems.length ?? 0) > 0) {
      const others = [...replicas.changes, ...(await backendLogEntries(backend))];
      console.log(`[${label}] load began at ${new Date(origin).toISOString()}; failed requests, the backend's container events and log lines, and the proxy's replica addresses (s since then):\n${timeline(load.failures, events.events, origin, others)}`);
      console.log(`[${label}] addresses: ${(await addressOwners(backend)).map((e) => e.text).join('; ')}`);
      if (plane === 'haproxy') console.log(`[${label}] HAProxy's servers now:\n${await haproxyServers(proxyName)}`);
      console.log(`[${label}] proxy logs:\n${await serviceLogs(proxyName)}`);
    }
    if (failed !== undefined) throw failed;
    if (result === undefined) throw new Error('unreachable');

    expect(result.timings.map((t) => t.phase)).toEqual(['steady (3 replicas)', 'update --force', `update --image ${version}`, 'scale 1', 'scale 3']);
    // The load really ran throughout: many requests overall, and in every phase.
    const total = phases.reduce((sum, p) => sum + p.requests, 0);
    expect(total).toBeGreaterThan(1000);
    for (const p of phases) expect(p.requests, `requests during ${p.phase}`).toBeGreaterThan(50);
    // Zero failed requests.
    expect(load.failures.map((f) => `${((f.at - origin) / 1000).toFixed(3)} s [${f.phase}] ${f.status === 0 ? 'socket' : f.status} ${f.detail}`)).toEqual([]);
    // After each phase the answers showed what Swarm runs: every replica in rotation, and the new version only.
    expect(result.problems).toEqual([]);
    const byPhase = new Map(phases.map((p) => [p.phase, p]));
    expect(byPhase.get(`update --image ${version}`)?.versions.get(version) ?? 0).toBeGreaterThan(0);
    expect([...(byPhase.get('scale 3')?.versions.keys() ?? [])]).toEqual([version]);
  }, 240_000);
});
