/**
 * Issue 11: how many requests fail through Flow Proxy while a 3-replica backend service is
 * updated and scaled on a real single-node Swarm? The sequence of test/e2e/rolling-update.test.ts
 * (test/support/rolling.ts): `docker service update --force`, `docker service update --image`
 * (v1 -> v2), `docker service scale NAME=1`, then `=3`, each phase ending once Swarm has
 * converged and the answers through the proxy show it; the load is wrk (one thread,
 * --connections keep-alive connections) restarted at each phase, so failures are counted per
 * phase: responses other than 2xx/3xx (by status) and socket errors (connect, read, write,
 * timeout), plus the few probes the phases' checks send.
 *
 * Runs, each with its own proxy, backend and overlay network:
 *   - Flow Proxy in swarm mode (replicas from the Engine API's task list) on each --planes plane;
 *   - the baseline on each --baseline-planes plane: the same proxy following the replicas by DNS
 *     only (no Engine socket, ADDRESS_MODE=tasks: `tasks.NAME` resolved by Swarm's DNS every
 *     second), as Docker Flow Proxy does with `server-template ... resolvers docker`.
 *
 *   npx vite-node bench/rolling-update.ts -- [--planes haproxy,builtin] [--baseline-planes haproxy,builtin]
 *       [--orders stop-first] [--connections 20]
 *
 * --orders stop-first,start-first runs every variant with both update orders. A phase whose
 * answers did not show what Swarm ran within 20 s of converging (a replica left out of rotation,
 * an old version still served) is marked in the table and explained under it; the sequence goes on.
 */
import { commandLine, listOption, loadAverage, numberOption, onCleanup, runBench } from './scale-support.js';
import { ensureInstalled } from './support.js';
import {
  WrkLoad,
  backendImages,
  createBackend,
  createProxy,
  fetchText,
  phaseTable,
  proxyImage,
  removeAll,
  rollingSequence,
  routeService,
  runningContainers,
  updateSettings,
} from '../test/support/rolling.js';
import type { BackendImages, Follow, PhaseCount, Plane, UpdateOrder } from '../test/support/rolling.js';
import { docker, ensureSwarm, waitFor } from '../test/support/swarm.js';

const planes = listOption('planes', ['haproxy', 'builtin']) as Plane[];
const baselinePlanes = listOption('baseline-planes', ['haproxy', 'builtin']) as Plane[];
const orders = listOption('orders', ['stop-first']) as UpdateOrder[];
const connections = numberOption('connections', 20);
const prefix = `fp-rolling-bench-${process.pid}`;

interface Variant {
  readonly label: string;
  readonly plane: Plane;
  readonly follow: Follow;
  readonly order: UpdateOrder;
}

interface Result {
  readonly variant: Variant;
  readonly phases: readonly PhaseCount[];
  readonly seconds: number;
  /** Why the sequence stopped before its end, if it did. */
  readonly error?: string;
  /** Phases whose answers did not show what Swarm ran (a replica out of rotation, an old version). */
  readonly problems: readonly string[];
}

async function runVariant(variant: Variant, index: number, images: BackendImages, proxyTag: string): Promise<Result> {
  const network = `${prefix}-${index}`;
  const backend = `${prefix}-${index}-web`;
  const proxyName = `${prefix}-${index}-proxy`;
  const unregister = onCleanup(() => removeAll([backend, proxyName], [network]));
  try {
    await docker('network', 'create', '--driver', 'overlay', '--attachable', network);
    const [proxy] = await Promise.all([createProxy(proxyName, network, proxyTag, variant.plane, variant.follow), createBackend(backend, network, images.v1, variant.order)]);
    await routeService(proxy, backend, '/web');
    await waitFor(`three ${backend} replicas running`, () => runningContainers(backend), (c) => c.length === 3, 60_000);
    const url = `http://127.0.0.1:${proxy.httpPort}/web/`;
    await waitFor('/web/ to answer v1 through the proxy', () => fetchText(url), (t) => t.startsWith('200 v1 '), 30_000);
    const load = new WrkLoad(url, connections);
    const started = Date.now();
    let error: string | undefined;
    let problems: readonly string[] = [];
    try {
      ({ problems } = await rollingSequence({ service: backend, target: images.v2, load, phaseTimeoutMs: 90_000, log: (line) => console.error(`[${variant.label}] ${line}`) }));
    } catch (failure) {
      error = (failure as Error).message;
      console.error(`[${variant.label}] the sequence did not finish: ${error}`);
    }
    const phases = await load.stop();
    const seconds = (Date.now() - started) / 1000;
    for (const p of phases) console.error(`[${variant.label}] ${p.phase}: ${p.requests} requests, ${p.failures} failed ${JSON.stringify(Object.fromEntries(p.kinds))}`);
    return { variant, phases, seconds, problems, ...(error === undefined ? {} : { error }) };
  } finally {
    unregister();
    await removeAll([backend, proxyName], [network]);
  }
}

async function main(): Promise<void> {
  ensureInstalled({ wrk: 'wrk', haproxy: 'haproxy' });
  await ensureSwarm();
  const proxyTag = `${prefix}/proxy:local`;
  onCleanup(() => docker('rmi', proxyTag).then(() => undefined, () => undefined));
  const [images] = await Promise.all([backendImages(), proxyImage(proxyTag)]);
  const variants: Variant[] = [];
  for (const order of orders) {
    for (const plane of planes) variants.push({ label: `${plane}, Engine API${orders.length > 1 ? `, ${order}` : ''}`, plane, follow: 'engine', order });
    for (const plane of baselinePlanes) variants.push({ label: `${plane}, DNS only (baseline)${orders.length > 1 ? `, ${order}` : ''}`, plane, follow: 'dns', order });
  }
  const results: Result[] = [];
  for (const [i, variant] of variants.entries()) results.push(await runVariant(variant, i, images, proxyTag));

  console.log(`\n${new Date().toISOString()}, load average ${loadAverage()}`);
  console.log(`${commandLine('bench/rolling-update.ts')}`);
  console.log(`wrk -t1 -c${connections}; backend update settings: ${updateSettings(orders[0] ?? 'stop-first').join(' ')}${orders.length > 1 ? ` (and --update-order ${orders.slice(1).join(', ')})` : ''}\n`);
  const phaseNames = [...new Set(results.flatMap((r) => r.phases.map((p) => p.phase)))];
  console.log(`| run | requests | failed | ${phaseNames.map((p) => `failed in ${p}`).join(' | ')} | seconds |`);
  console.log(`|---|---:|---:|${phaseNames.map(() => '---:').join('|')}|---:|`);
  for (const r of results) {
    const requests = r.phases.reduce((s, p) => s + p.requests, 0);
    const failed = r.phases.reduce((s, p) => s + p.failures, 0);
    const byPhase = phaseNames.map((name) => {
      const p = r.phases.find((q) => q.phase === name);
      return p === undefined ? '-' : `${p.failures} / ${p.requests}`;
    });
    const marks = [...(r.error === undefined ? [] : ['did not finish']), ...(r.problems.length === 0 ? [] : [`${r.problems.length} phase(s) not served as Swarm ran them, see below`])];
    console.log(`| ${r.variant.label}${marks.length === 0 ? '' : ` (${marks.join('; ')})`} | ${requests} | ${failed} | ${byPhase.join(' | ')} | ${r.seconds.toFixed(0)} |`);
  }
  console.log(`\nWhat failed, phase by phase:\n\n${phaseTable(results.map((r) => ({ label: r.variant.label, phases: r.phases })))}`);
  for (const r of results) {
    if (r.error !== undefined) console.log(`\n${r.variant.label} did not finish: ${r.error}`);
    for (const problem of r.problems) console.log(`\n${r.variant.label}: ${problem}`);
  }
}

runBench(main);
