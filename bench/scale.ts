/**
 * Issue 9, "route changes in milliseconds at 10,000 services": both data planes and the classic
 * HAProxy configuration side by side in one run, at each table size (--sizes, default
 * 1,1000,10000). Every service is routed by path (/svc-000000 ...) to one nginx backend
 * addressed as outboundHostname=127.0.0.1, so DNS is not what is measured. Per size and target:
 *
 *   1. loading: one bulk POST /reconfigure with every service, timed until the last route is
 *      served; then start-up: a new proxy on the same --state-dir, timed from spawn until the last
 *      route is served;
 *   2. route changes, from the API call to served (a GET of the path through the data plane
 *      answers 200, or the not-found status once removed; polled every --poll-ms over a keep-alive
 *      connection): --sequential adds then removes one after another, then --clients clients
 *      doing --per-client adds, then removes, each;
 *   3. HAProxy reloads in each phase (status details.reloads) and lastReloadMs;
 *   4. resident memory (/proc/PID/status VmRSS) of the Flow Proxy process (the control plane; it
 *      runs as a child process built from src/ into a private directory) and of its HAProxy;
 *   5. wrk on the last route of every size, interleaved (--rounds of --seconds);
 *   6. the baseline: one `acl` + `use_backend` per service, a change = rewrite + `haproxy -c` +
 *      reload through the master CLI (--baseline-changes sequential adds and removes).
 *
 * Flow Proxy's HAProxy plane runs one thread (--haproxy-threads 1), as does the baseline.
 *
 *   npx vite-node bench/scale.ts -- [--quick] [--sizes 1,1000,10000] [--planes haproxy,builtin,classic]
 *       [--sequential 200] [--clients 16] [--per-client 50] [--baseline-changes 50] [--baseline-changes-large 20]
 *       [--seconds 5] [--rounds 1] [--connections 50] [--poll-ms 1] [--poll-from-start]
 */
import type http from 'node:http';
import { ensureInstalled, startNginx } from './support.js';
import {
  benchService,
  buildPrivateCli,
  ClassicHaproxy,
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
import type { FlowProxyProcess, Latencies } from './scale-support.js';

const quick = flag('quick');
const sizes = listOption('sizes', quick ? ['1', '200'] : ['1', '1000', '10000']).map(Number);
const targets = listOption('planes', ['haproxy', 'builtin', 'classic']);
const sequential = numberOption('sequential', quick ? 20 : 200);
const clients = numberOption('clients', 16);
const perClient = numberOption('per-client', quick ? 3 : 50);
const baselineChanges = numberOption('baseline-changes', quick ? 5 : 50);
/** At 10,000 services and more, a classic change costs seconds: fewer of them. */
const baselineChangesLarge = numberOption('baseline-changes-large', quick ? 5 : 20);
const seconds = numberOption('seconds', quick ? 2 : 5);
const rounds = numberOption('rounds', 1);
const connections = numberOption('connections', 50);
const pollMs = numberOption('poll-ms', 1);
const pollFromStart = flag('poll-from-start');
const CHANGE_TIMEOUT_MS = 120_000;
const LOAD_TIMEOUT_MS = 300_000;

const name = (prefix: string, i: number) => `${prefix}-${String(i).padStart(6, '0')}`; // fixed width: no name is a prefix of another

interface ChangeFigures {
  /** API call sent -> served, ms. */
  readonly served: Latencies;
  /** API call sent -> API answered, ms. */
  readonly api: Latencies;
  /** Changes whose route was not yet served (or still served, for removes) when the API answered 200. */
  readonly ackedEarly: number;
  /** What the first poll after the API's 200 got in those cases, counted. */
  readonly earlyMisses: ReadonlyMap<string, number>;
  readonly failures: readonly string[];
  readonly reloads: number;
}

interface Row {
  readonly target: string;
  readonly kind: 'haproxy' | 'builtin' | 'classic';
  readonly size: number;
  loadMs?: number;
  loadApiMs?: number;
  loadReloads?: number;
  startMs?: number;
  controlRssLoadedMb?: number;
  controlRssStartedMb?: number;
  controlRssEndMb?: number;
  haproxyRssMb?: number;
  seqAdd?: ChangeFigures;
  seqRemove?: ChangeFigures;
  concAdd?: ChangeFigures;
  concRemove?: ChangeFigures;
  lastReloadMs?: number;
  details?: string;
  notFound?: number;
  readonly throughput: { rps: number; p99ms: number; errors: number }[];
  port?: number;
  readonly problems: string[];
}

const LABEL = { haproxy: 'Flow Proxy, HAProxy plane', builtin: 'Flow Proxy, built-in plane', classic: 'classic acl per service + reload' } as const;

async function notFoundStatus(port: number): Promise<number> {
  const { status } = await request(false, port, 'GET', '/no-such-route-probe/', undefined, 10_000);
  if (status === 200) throw new Error(`an unrouted path answers 200 on port ${port}`);
  return status;
}

/**
 * `count` changes made by `clientCount` clients at once (each one after another), every change
 * timed from its API call until the data plane serves it.
 */
async function changes(
  clientCount: number,
  lists: readonly (readonly string[])[],
  change: (agent: http.Agent, service: string) => Promise<number>,
  httpPort: number,
  wanted: number,
  reloads: () => Promise<number>,
): Promise<ChangeFigures> {
  const before = await reloads();
  const served: number[] = [];
  const api: number[] = [];
  const failures: string[] = [];
  let ackedEarly = 0;
  const earlyMisses = new Map<string, number>();
  await Promise.all(
    lists.slice(0, clientCount).map(async (list) => {
      const apiAgent = keepAliveAgent();
      const pollAgent = keepAliveAgent();
      try {
        for (const service of list) {
          const started = now();
          const abort = new AbortController();
          const polling = pollFromStart ? pollFor(pollAgent, httpPort, `/${service}/`, wanted, { intervalMs: pollMs, timeoutMs: CHANGE_TIMEOUT_MS, signal: abort.signal }) : undefined;
          polling?.catch(() => undefined);
          let status: number;
          try {
            status = await change(apiAgent, service);
          } catch (error) {
            abort.abort();
            failures.push(`${service}: ${(error as Error).message}`);
            continue;
          }
          const answered = now();
          if (status !== 200) {
            abort.abort();
            failures.push(`${service}: API answered ${status}`);
            continue;
          }
          try {
            const polled = await (polling ?? pollFor(pollAgent, httpPort, `/${service}/`, wanted, { intervalMs: pollMs, timeoutMs: CHANGE_TIMEOUT_MS }));
            served.push(polled.at - started);
            api.push(answered - started);
            if (!pollFromStart && polled.at > answered && polled.polls > 1) {
              ackedEarly++;
              const miss = polled.firstMiss ?? 'unknown';
              earlyMisses.set(miss, (earlyMisses.get(miss) ?? 0) + 1);
            }
          } catch (error) {
            failures.push((error as Error).message);
          }
        }
      } finally {
        apiAgent.destroy();
        pollAgent.destroy();
      }
    }),
  );
  await sleep(300); // a reload the last change scheduled in the background is counted in this phase
  return { served: latencies(served), api: latencies(api), ackedEarly, earlyMisses, failures, reloads: (await reloads()) - before };
}

/** Round-robin split of `names` over `count` clients. */
function split(names: readonly string[], count: number): string[][] {
  const lists: string[][] = Array.from({ length: count }, () => []);
  names.forEach((n, i) => lists[i % count]?.push(n));
  return lists;
}

function report(row: Row, phase: string, figures: ChangeFigures): void {
  console.error(
    `  ${phase}: served p50 ${fixed(figures.served.p50)} p99 ${fixed(figures.served.p99)} max ${fixed(figures.served.max)} ms; API p50 ${fixed(figures.api.p50)} ms; reloads ${figures.reloads}; failures ${figures.failures.length}`,
  );
  if (figures.ackedEarly > 0) {
    const misses = [...figures.earlyMisses].map(([miss, count]) => `${miss} x${count}`).join(', ');
    row.problems.push(`${phase}: ${figures.ackedEarly} acknowledged (200) before served; the first poll after the 200 got: ${misses}`);
    console.error(`  ${figures.ackedEarly} acknowledged before served: ${misses}`);
  }
  if (figures.failures.length > 0) row.problems.push(`${phase}: ${figures.failures.length} failed, first: ${figures.failures[0]}`);
}

async function measureFlowProxy(cli: string, plane: 'haproxy' | 'builtin', size: number, backendPort: number, live: FlowProxyProcess[]): Promise<Row> {
  const row: Row = { target: LABEL[plane], kind: plane, size, throughput: [], problems: [] };
  console.error(`\n[${size} services] ${row.target}`);
  const services = Array.from({ length: size }, (_, i) => benchService(name('svc', i), backendPort));
  const last = `/${services[size - 1]?.servicePath.slice(1)}/`;

  // 1. Bulk load into an empty proxy.
  const first = await spawnFlowProxy({ cli, plane });
  await first.ready();
  const reloads0 = await reloadsOf(first);
  const body = JSON.stringify({ services });
  const started = now();
  const reply = await first.api('POST', 'reconfigure', body);
  const answered = now();
  if (reply.status !== 200) throw new Error(`bulk reconfigure of ${size} services: ${reply.status} ${reply.body.slice(0, 500)}`);
  const loadAgent = keepAliveAgent();
  const polled = await pollFor(loadAgent, first.httpPort, last, 200, { intervalMs: pollMs, timeoutMs: LOAD_TIMEOUT_MS, giveUp: first.exited });
  loadAgent.destroy();
  row.loadMs = polled.at - started;
  row.loadApiMs = answered - started;
  await sleep(300);
  row.loadReloads = (await reloadsOf(first)) - reloads0;
  row.controlRssLoadedMb = await first.controlRssMb();
  console.error(`  bulk load: answered in ${fixed(row.loadApiMs, 0)} ms, last route served after ${fixed(row.loadMs, 0)} ms, reloads ${row.loadReloads}, control plane ${fixed(row.controlRssLoadedMb)} MB; ${reply.body.slice(0, 120)}`);
  await first.stop();

  // Start-up with the table in the state directory.
  // On a shared machine a port chosen free can be taken before the proxy binds it: one more try.
  let restarted: FlowProxyProcess | undefined;
  for (let attempt = 1; restarted === undefined; attempt++) {
    const candidate = await spawnFlowProxy({ cli, plane, stateDir: first.stateDir });
    const startAgent = keepAliveAgent();
    try {
      const up = await pollFor(startAgent, candidate.httpPort, last, 200, { intervalMs: 5, timeoutMs: LOAD_TIMEOUT_MS, giveUp: candidate.exited });
      row.startMs = up.at - candidate.spawnedAt;
      restarted = candidate;
    } catch (error) {
      (error as Error).message += ` -- ${await candidate.diagnose()}`;
      await candidate.stop();
      if (attempt === 2) throw error;
      row.problems.push(`start-up, first attempt: ${(error as Error).message.slice(0, 300)}`);
      console.error(`  start-up failed, trying again: ${(error as Error).message}`);
    } finally {
      startAgent.destroy();
    }
  }
  const proxy: FlowProxyProcess = restarted;
  live.push(proxy);
  await proxy.ready();
  row.port = proxy.httpPort;
  await sleep(500);
  row.controlRssStartedMb = await proxy.controlRssMb();
  row.haproxyRssMb = await proxy.haproxyRssMb();
  console.error(`  start-up with the table: last route served ${fixed(row.startMs ?? NaN, 0)} ms after spawn; control plane ${fixed(row.controlRssStartedMb)} MB, HAProxy ${fixed(row.haproxyRssMb)} MB`);

  // 2. Route changes.
  const notFound = await notFoundStatus(proxy.httpPort);
  row.notFound = notFound;
  const reloads = () => reloadsOf(proxy);
  const add = (agent: http.Agent, service: string) => request(agent, proxy.apiPort, 'GET', `/v1/docker-flow-proxy/${reconfigureQuery(benchService(service, backendPort))}`).then((r) => r.status);
  const remove = (agent: http.Agent, service: string) => request(agent, proxy.apiPort, 'GET', `/v1/docker-flow-proxy/remove?serviceName=${service}`).then((r) => r.status);
  const seqNames = Array.from({ length: sequential }, (_, i) => name('seq', i));
  row.seqAdd = await changes(1, [seqNames], add, proxy.httpPort, 200, reloads);
  report(row, 'sequential adds', row.seqAdd);
  row.seqRemove = await changes(1, [seqNames], remove, proxy.httpPort, notFound, reloads);
  report(row, 'sequential removes', row.seqRemove);
  const concNames = split(Array.from({ length: clients * perClient }, (_, i) => name('conc', i)), clients);
  row.concAdd = await changes(clients, concNames, add, proxy.httpPort, 200, reloads);
  report(row, `${clients} clients adding`, row.concAdd);
  row.concRemove = await changes(clients, concNames, remove, proxy.httpPort, notFound, reloads);
  report(row, `${clients} clients removing`, row.concRemove);

  const status = await proxy.status();
  row.lastReloadMs = typeof status.details.lastReloadMs === 'number' ? status.details.lastReloadMs : undefined;
  row.details = Object.entries(status.details)
    .map(([key, value]) => `${key} ${String(value)}`)
    .join(', ');
  if (status.lastError !== undefined) row.problems.push(`lastError: ${status.lastError}`);
  row.controlRssEndMb = await proxy.controlRssMb();
  console.error(`  status: ${row.details}; control plane ${fixed(row.controlRssEndMb)} MB after the changes`);
  return row;
}

async function measureClassic(size: number, backendPort: number, live: ClassicHaproxy[]): Promise<Row> {
  const row: Row = { target: LABEL.classic, kind: 'classic', size, throughput: [], problems: [] };
  console.error(`\n[${size} services] ${row.target}`);
  const names = Array.from({ length: size }, (_, i) => name('svc', i));
  const last = `/${names[size - 1]}/`;
  let agent = keepAliveAgent();
  try {
    // Loading: from a configuration without services, one change with all of them.
    const loader = await ClassicHaproxy.create(backendPort);
    await loader.start([]);
    const started = now();
    await loader.change(names);
    const polled = await pollFor(agent, loader.httpPort, last, 200, { intervalMs: pollMs, timeoutMs: LOAD_TIMEOUT_MS });
    row.loadMs = polled.at - started;
    row.loadApiMs = loader.lastReloadMs;
    row.loadReloads = loader.reloads;
    await loader.stop();
    agent.destroy();
    agent = keepAliveAgent();
    console.error(`  load (write + haproxy -c + reload): ${fixed(row.loadMs, 0)} ms`);

    // Start-up with the configuration.
    const haproxy = await ClassicHaproxy.create(backendPort);
    const spawned = now();
    await haproxy.start(names);
    live.push(haproxy);
    const up = await pollFor(agent, haproxy.httpPort, last, 200, { intervalMs: 5, timeoutMs: LOAD_TIMEOUT_MS });
    row.startMs = up.at - spawned;
    row.port = haproxy.httpPort;
    await sleep(500);
    row.haproxyRssMb = await haproxy.rssMb();
    console.error(`  start-up (haproxy -c + start): ${fixed(row.startMs, 0)} ms; HAProxy ${fixed(row.haproxyRssMb)} MB`);

    const notFound = await notFoundStatus(haproxy.httpPort);
    row.notFound = notFound;
    const count = size >= 10_000 ? baselineChangesLarge : baselineChanges;
    const added = Array.from({ length: count }, (_, i) => name('seq', i));
    // The bench is the control plane here: a change returns once the new worker runs.
    let current = [...names];
    const add = async (_agent: http.Agent, service: string) => {
      current = [...current, service];
      await haproxy.change(current);
      return 200;
    };
    const remove = async (_agent: http.Agent, service: string) => {
      current = current.filter((n) => n !== service);
      await haproxy.change(current);
      return 200;
    };
    const reloads = async () => haproxy.reloads;
    row.seqAdd = await changes(1, [added], add, haproxy.httpPort, 200, reloads);
    report(row, 'sequential adds', row.seqAdd);
    row.seqRemove = await changes(1, [added], remove, haproxy.httpPort, notFound, reloads);
    report(row, 'sequential removes', row.seqRemove);
    row.lastReloadMs = haproxy.lastReloadMs;
    row.details = `reloads ${haproxy.reloads}, lastReloadMs (write + check + reload) ${fixed(haproxy.lastReloadMs, 0)}`;
  } finally {
    agent.destroy();
  }
  return row;
}

function mb(value: number | undefined): string {
  return value === undefined ? '-' : fixed(value, 0);
}

function seconds1(ms: number | undefined): string {
  return ms === undefined ? '-' : fixed(ms / 1000, 2);
}

function printTables(rows: readonly Row[], commit: string, load: string): void {
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;
  console.log(`\n## Route changes at scale\n\n    ${commandLine('bench/scale.ts')}   # commit ${commit}, ${new Date().toISOString().slice(0, 10)}\n`);
  console.log(
    `Sizes ${sizes.join(', ')}; sequential: ${sequential} adds then removes (baseline: ${baselineChanges}, ${baselineChangesLarge} at 10,000+); concurrent: ${clients} clients x ${perClient}; ` +
      `served = a GET of the path through the data plane answers 200 (404/503 once removed), polled every ${pollMs} ms ${pollFromStart ? 'from the API call' : 'once the API answered'}; ` +
      `wrk -t1 -c${connections} ${seconds} s x ${rounds} on the last route. Machine: ${load}.\n`,
  );
  console.log('### Loading the table and memory\n');
  console.log(
    markdownTable(
      ['services', 'target', 'bulk load -> last route served, s', 'API answered, s', 'reloads', 'start-up with the table -> served, s', 'control-plane RSS MB: loaded / restarted / after changes', 'HAProxy RSS MB'],
      rows.map((r) => [
        String(r.size),
        r.target,
        seconds1(r.loadMs),
        r.kind === 'classic' ? '-' : seconds1(r.loadApiMs),
        r.kind === 'builtin' ? '-' : String(r.loadReloads ?? '-'),
        seconds1(r.startMs),
        r.kind === 'classic' ? '-' : `${mb(r.controlRssLoadedMb)} / ${mb(r.controlRssStartedMb)} / ${mb(r.controlRssEndMb)}`,
        r.kind === 'builtin' ? '-' : mb(r.haproxyRssMb),
      ]),
      [true, false, true, true, true, true, true, true],
    ),
  );
  console.log(`\n### Route changes: API call -> served, p50 / p99 ms\n`);
  console.log(
    markdownTable(
      ['services', 'target', 'sequential add', 'sequential remove', `${clients} clients add`, `${clients} clients remove`, 'API answer p50 / p99 (all)', 'reloads: seq / concurrent', 'lastReloadMs', 'failed', 'acked before served'],
      rows.map((r) => {
        const phases = [r.seqAdd, r.seqRemove, r.concAdd, r.concRemove].filter((p): p is ChangeFigures => p !== undefined);
        const allApi = phases.flatMap((p) => (p.api.count === 0 ? [] : [p.api]));
        const apiP50 = allApi.length === 0 ? NaN : Math.max(...allApi.map((a) => a.p50));
        const apiP99 = allApi.length === 0 ? NaN : Math.max(...allApi.map((a) => a.p99));
        return [
          String(r.size),
          r.target,
          pair(r.seqAdd?.served),
          pair(r.seqRemove?.served),
          pair(r.concAdd?.served),
          pair(r.concRemove?.served),
          r.kind === 'classic' ? '-' : `${fixed(apiP50)} / ${fixed(apiP99)}`,
          r.kind === 'builtin' ? '-' : `${(r.seqAdd?.reloads ?? 0) + (r.seqRemove?.reloads ?? 0)} / ${r.concAdd === undefined ? '-' : (r.concAdd.reloads ?? 0) + (r.concRemove?.reloads ?? 0)}`,
          r.kind === 'builtin' ? '-' : fixed(r.lastReloadMs ?? NaN, 0),
          String(phases.reduce((s, p) => s + p.failures.length, 0)),
          r.kind === 'classic' || pollFromStart ? '-' : String(phases.reduce((s, p) => s + p.ackedEarly, 0)),
        ];
      }),
      [true, false, true, true, true, true, true, true, true, true, true],
    ),
  );
  console.log(`\n### Throughput on the last route (wrk, median of ${rounds})\n`);
  const rpsOf = (r: Row) => median(r.throughput.map((t) => t.rps));
  console.log(
    markdownTable(
      ['services', 'target', 'req/s', 'vs 1 service', 'p99 ms', 'errors'],
      rows.map((r) => {
        const one = rows.find((o) => o.kind === r.kind && o.size === 1);
        const base = one === undefined ? NaN : rpsOf(one);
        return [
          String(r.size),
          r.target,
          fixed(rpsOf(r), 0),
          Number.isFinite(base) ? `${fixed((rpsOf(r) / base) * 100)}%` : '-',
          fixed(median(r.throughput.map((t) => t.p99ms)), 2),
          String(r.throughput.reduce((s, t) => s + t.errors, 0)),
        ];
      }),
      [true, false, true, true, true, true],
    ),
  );
  console.log('\n### Status details at the end\n');
  for (const r of rows) console.log(`- ${r.size} services, ${r.target}: ${r.details ?? '-'}${r.problems.length > 0 ? `; PROBLEMS: ${r.problems.join('; ')}` : ''}`);

  const largest = Math.max(...sizes);
  console.log(`\n### Targets (at ${largest} services)\n`);
  for (const kind of ['haproxy', 'builtin'] as const) {
    const r = rows.find((o) => o.kind === kind && o.size === largest);
    const one = rows.find((o) => o.kind === kind && o.size === 1);
    if (r === undefined) continue;
    const p99 = Math.max(r.seqAdd?.served.p99 ?? NaN, r.seqRemove?.served.p99 ?? NaN, r.concAdd?.served.p99 ?? NaN, r.concRemove?.served.p99 ?? NaN);
    const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
    console.log(`- ${r.target}: change p99 under 50 ms: ${verdict(p99 < 50)} (worst phase p99 ${fixed(p99)} ms)`);
    const live = Math.max(r.loadMs ?? NaN, r.startMs ?? NaN);
    console.log(`- ${r.target}: ${largest} services live in under 10 s: ${verdict(live < 10_000)} (bulk load ${seconds1(r.loadMs)} s, start-up ${seconds1(r.startMs)} s)`);
    if (one !== undefined && r !== one) {
      const ratio = rpsOf(r) / rpsOf(one);
      console.log(`- ${r.target}: throughput at ${largest} at least 90% of at 1: ${verdict(ratio >= 0.9)} (${fixed(ratio * 100)}%)`);
    }
  }
}

async function main(): Promise<void> {
  ensureInstalled({ nginx: 'nginx', wrk: 'wrk', haproxy: 'haproxy' });
  const commit = gitCommit();
  const loadBefore = loadAverage();
  const cli = await buildPrivateCli();
  const nginx = await registered(startNginx());
  const rows: Row[] = [];
  const flowProxies: FlowProxyProcess[] = [];
  const classics: ClassicHaproxy[] = [];
  for (const size of sizes) {
    for (const target of targets) {
      try {
        if (target === 'haproxy' || target === 'builtin') rows.push(await measureFlowProxy(cli, target, size, nginx.port, flowProxies));
        else if (target === 'classic') rows.push(await measureClassic(size, nginx.port, classics));
        else throw new Error(`--planes: unknown target ${target} (haproxy, builtin, classic)`);
      } catch (error) {
        console.error(`[${size} services] ${target}: FAILED: ${(error as Error).stack ?? String(error)}`);
        rows.push({ target: `${LABEL[target as keyof typeof LABEL] ?? target} (FAILED)`, kind: (target as Row['kind']) ?? 'classic', size, throughput: [], problems: [(error as Error).message.slice(0, 500)] });
      }
    }
  }
  // Throughput: every live target, interleaved round after round, so noise hits them alike.
  const measured = rows.filter((r) => r.port !== undefined);
  const url = (r: Row) => `http://127.0.0.1:${r.port}/${name('svc', r.size - 1)}/`;
  console.error('\nthroughput: warm-up');
  for (const r of measured) await wrkDetailed(url(r), 1, connections);
  for (let round = 1; round <= rounds; round++) {
    for (const r of measured) {
      const w = await wrkDetailed(url(r), seconds, connections);
      const errors = w.non2xx3xx + w.connect + w.read + w.write + w.timeout;
      r.throughput.push({ rps: w.rps, p99ms: w.p99ms, errors });
      console.error(`round ${round} ${r.size} services, ${r.target}: ${fixed(w.rps, 0)} req/s, p99 ${fixed(w.p99ms, 2)} ms, errors ${errors}`);
    }
  }
  printTables(rows, commit, `load average ${loadBefore} at the start, ${loadAverage()} at the end`);
  await Promise.all([...flowProxies.map((p) => p.stop()), ...classics.map((c) => c.stop())]);
  await nginx.stop();
}

runBench(main);
