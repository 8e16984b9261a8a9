/**
 * Issue 9: does churn of OTHER services disturb a stable route? For each data plane, Flow Proxy
 * (a child process built from src/) holds --services services (/svc-000000 ... to one nginx
 * backend, outboundHostname=127.0.0.1, no DNS) plus /stable; wrk loads /stable for --seconds
 * with --connections keep-alive connections while --clients clients add and remove --changes
 * other services (GET reconfigure then GET remove of each: --changes adds and --changes removes).
 * Reported: wrk's failed requests (non-2xx/3xx responses, socket errors by kind, and the status
 * codes counted by a wrk Lua script) -- the goal is zero --, HAProxy reloads during the churn,
 * and the churn's API latency (the API answers once the change is saved and served).
 *
 *   npx vite-node bench/churn.ts -- [--quick] [--services 1000] [--changes 1000] [--clients 16]
 *       [--seconds 20] [--connections 50] [--planes haproxy,builtin] [--adds-first]
 *
 * By default each client adds a service then removes it, so at most --clients churn services exist
 * at once; with --adds-first every add comes first, then every remove, so the table grows by
 * --changes services and the HAProxy plane runs low on spare backends and reloads under load.
 */
import { ensureInstalled, startNginx } from './support.js';
import {
  benchService,
  buildPrivateCli,
  commandLine,
  fixed,
  flag,
  gitCommit,
  loadAverage,
  keepAliveAgent,
  latencies,
  listOption,
  markdownTable,
  now,
  numberOption,
  pair,
  pollFor,
  reconfigureQuery,
  registered,
  reloadsOf,
  request,
  runBench,
  sleep,
  spawnFlowProxy,
  wrkDetailed,
} from './scale-support.js';
import type { Latencies, WrkDetail } from './scale-support.js';

const quick = flag('quick');
const services = numberOption('services', quick ? 100 : 1000);
const changeCount = numberOption('changes', quick ? 100 : 1000);
const clients = numberOption('clients', 16);
const seconds = numberOption('seconds', quick ? 5 : 20);
const connections = numberOption('connections', 50);
const planes = listOption('planes', ['haproxy', 'builtin']);
/** All adds, then all removes (default: each client adds a service and removes it, in turn). */
const addsFirst = flag('adds-first');
/** wrk runs alone this long before the churn starts. */
const LEAD_MS = 1000;

const name = (prefix: string, i: number) => `${prefix}-${String(i).padStart(6, '0')}`;

interface Result {
  readonly plane: string;
  readonly wrk: WrkDetail;
  readonly add: Latencies;
  readonly remove: Latencies;
  readonly churnMs: number;
  readonly withinWrk: boolean;
  readonly failedChanges: number;
  readonly firstFailure: string | undefined;
  readonly reloads: number;
  readonly lastReloadMs: number | undefined;
  readonly stableAfter: number;
  readonly details: string;
}

async function measure(cli: string, plane: 'haproxy' | 'builtin', backendPort: number): Promise<Result> {
  console.error(`\n${plane} plane: ${services} services + /stable`);
  const proxy = await spawnFlowProxy({ cli, plane });
  try {
    await proxy.ready();
    const table = [benchService('stable', backendPort), ...Array.from({ length: services }, (_, i) => benchService(name('svc', i), backendPort))];
    const loaded = await proxy.api('POST', 'reconfigure', JSON.stringify({ services: table }));
    if (loaded.status !== 200) throw new Error(`bulk reconfigure: ${loaded.status} ${loaded.body.slice(0, 500)}`);
    const agent = keepAliveAgent();
    await pollFor(agent, proxy.httpPort, '/stable/', 200, { intervalMs: 5, timeoutMs: 300_000, giveUp: proxy.exited });
    await pollFor(agent, proxy.httpPort, `/${name('svc', services - 1)}/`, 200, { intervalMs: 5, timeoutMs: 300_000, giveUp: proxy.exited });
    agent.destroy();
    await sleep(1000); // a background reload (spare backends) after the load is not the churn's
    const reloads0 = await reloadsOf(proxy);

    const wrk = wrkDetailed(`http://127.0.0.1:${proxy.httpPort}/stable/`, seconds, connections, true);
    const wrkStarted = now();
    await sleep(LEAD_MS);
    const adds: number[] = [];
    const removes: number[] = [];
    const failures: string[] = [];
    const churnStarted = now();
    const addTarget = (service: string) => `/v1/docker-flow-proxy/${reconfigureQuery(benchService(service, backendPort))}`;
    const removeTarget = (service: string) => `/v1/docker-flow-proxy/remove?serviceName=${service}`;
    /** `clients` clients take items in turn; each item is a list of changes made one after another. */
    const run = async (items: readonly (readonly ['add' | 'remove', string])[][]) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: clients }, async () => {
          const apiAgent = keepAliveAgent();
          try {
            for (let i = next++; i < items.length; i = next++) {
              for (const [kind, service] of items[i] ?? []) {
                const started = now();
                try {
                  const reply = await request(apiAgent, proxy.apiPort, 'GET', kind === 'add' ? addTarget(service) : removeTarget(service));
                  if (reply.status === 200) (kind === 'add' ? adds : removes).push(now() - started);
                  else failures.push(`${kind} ${service}: ${reply.status} ${reply.body.slice(0, 200)}`);
                } catch (error) {
                  failures.push(`${kind} ${service}: ${(error as Error).message}`);
                }
              }
            }
          } finally {
            apiAgent.destroy();
          }
        }),
      );
    };
    const names = Array.from({ length: changeCount }, (_, i) => name('churn', i));
    if (addsFirst) {
      // Every add, then every remove: the HAProxy plane's spare backends run low and it reloads under load.
      await run(names.map((n) => [['add', n]]));
      await run(names.map((n) => [['remove', n]]));
    } else {
      await run(names.map((n) => [['add', n], ['remove', n]]));
    }
    const churnEnded = now();
    const churnMs = churnEnded - churnStarted;
    console.error(`  churn: ${changeCount} adds + ${changeCount} removes in ${fixed(churnMs / 1000, 2)} s`);
    const figures = await wrk;
    const withinWrk = churnEnded - wrkStarted <= seconds * 1000;
    if (!withinWrk) console.error(`  WARNING: the churn outlasted wrk's ${seconds} s; raise --seconds`);
    await sleep(300);
    const status = await proxy.status();
    const reloads = (await reloadsOf(proxy)) - reloads0;
    const stableAfter = (await request(false, proxy.httpPort, 'GET', '/stable/')).status;
    const result: Result = {
      plane,
      wrk: figures,
      add: latencies(adds),
      remove: latencies(removes),
      churnMs,
      withinWrk,
      failedChanges: failures.length,
      firstFailure: failures[0],
      reloads,
      lastReloadMs: typeof status.details.lastReloadMs === 'number' ? status.details.lastReloadMs : undefined,
      stableAfter,
      details: Object.entries(status.details)
        .map(([key, value]) => `${key} ${String(value)}`)
        .join(', '),
    };
    const socket = figures.connect + figures.read + figures.write + figures.timeout;
    console.error(
      `  wrk: ${figures.requests} requests, ${fixed(figures.rps, 0)} req/s, non-2xx/3xx ${figures.non2xx3xx}, socket errors ${socket}; reloads ${reloads}; add p50/p99 ${pair(result.add)} ms, remove ${pair(result.remove)} ms`,
    );
    return result;
  } finally {
    await proxy.stop();
  }
}

async function main(): Promise<void> {
  ensureInstalled({ nginx: 'nginx', wrk: 'wrk', haproxy: 'haproxy' });
  const commit = gitCommit();
  const loadBefore = loadAverage();
  const cli = await buildPrivateCli();
  const nginx = await registered(startNginx());
  const results: Result[] = [];
  for (const plane of planes) {
    if (plane !== 'haproxy' && plane !== 'builtin') throw new Error(`--planes: unknown plane ${plane} (haproxy, builtin)`);
    results.push(await measure(cli, plane, nginx.port));
  }
  await nginx.stop();

  console.log(`\n## Churn of other services under load\n\n    ${commandLine('bench/churn.ts')}   # commit ${commit}, ${new Date().toISOString().slice(0, 10)}\n`);
  console.log(
    `${services} services + /stable; wrk -t1 -c${connections} ${seconds} s on /stable (with a Lua script counting status codes); ` +
      `after ${LEAD_MS / 1000} s, ${clients} clients add and remove ${changeCount} other services (${changeCount} GET reconfigure + ${changeCount} GET remove${addsFirst ? '; every add first, then every remove' : '; each client adds a service then removes it'}). Machine: load average ${loadBefore} at the start, ${loadAverage()} at the end.\n`,
  );
  console.log(
    markdownTable(
      ['plane', 'wrk requests', 'req/s', 'p99 ms', 'non-2xx/3xx', 'socket errors: connect / read / write / timeout', 'statuses', 'churn s (within wrk)', 'add p50 / p99 ms', 'remove p50 / p99 ms', 'failed changes', 'reloads', 'lastReloadMs', '/stable after'],
      results.map((r) => [
        r.plane,
        String(r.wrk.requests),
        fixed(r.wrk.rps, 0),
        fixed(r.wrk.p99ms, 2),
        String(r.wrk.non2xx3xx),
        `${r.wrk.connect} / ${r.wrk.read} / ${r.wrk.write} / ${r.wrk.timeout}`,
        [...r.wrk.statuses].map(([code, count]) => `${code}: ${count}`).join(', '),
        `${fixed(r.churnMs / 1000, 2)} (${r.withinWrk ? 'yes' : 'NO'})`,
        pair(r.add),
        pair(r.remove),
        String(r.failedChanges),
        r.plane === 'haproxy' ? String(r.reloads) : '-',
        r.lastReloadMs === undefined ? '-' : fixed(r.lastReloadMs, 0),
        String(r.stableAfter),
      ]),
      [false, true, true, true, true, true, false, true, true, true, true, true, true, true],
    ),
  );
  console.log('');
  for (const r of results) {
    const failed = r.wrk.non2xx3xx + r.wrk.connect + r.wrk.read + r.wrk.write + r.wrk.timeout;
    console.log(`- ${r.plane} plane: failed requests under churn: ${failed} (goal 0: ${failed === 0 ? 'met' : 'NOT met'}); status: ${r.details}`);
    if (r.firstFailure !== undefined) console.log(`  first failed change: ${r.firstFailure}`);
  }
}

runBench(main);
