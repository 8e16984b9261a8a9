/**
 * Issue 14: what keeping replicas in step costs and how fast it is. Three Flow Proxy processes
 * (built-in plane, built from src/) on 127.0.0.2-4 stand for three Swarm tasks: one API port,
 * peers found as tasks.fp-bench in a test DNS server, catching up every second
 * (PEER_SYNC_INTERVAL=1). A fourth on 127.0.0.5, alone (PEER_SYNC_INTERVAL=0), is the baseline.
 *
 * Reported, side by side in one run:
 * - one change sent to A without distribute: time until B serves it (p50, p99, max of --changes);
 * - the same with distribute=true: time until A's reply, after which B serves it at once;
 * - --routes hand-sent routes in one bulk request to A: time until C holds them all;
 * - CPU used over --seconds by each replica with --routes routes and nothing changing, against
 *   the baseline holding the same routes.
 *
 *   npx vite-node bench/replication.ts -- [--routes 5000] [--changes 30] [--seconds 20]
 */
import { readFile } from 'node:fs/promises';
import { TestDnsServer } from '../test/support/dns-server.js';
import { freePort } from '../test/support/proxy.js';
import {
  buildPrivateCli,
  commandLine,
  fixed,
  gitCommit,
  latencies,
  loadAverage,
  markdownTable,
  now,
  numberOption,
  runBench,
  sleep,
  spawnFlowProxy,
} from './scale-support.js';
import type { FlowProxyProcess } from './scale-support.js';

const ROUTES = numberOption('routes', 5000);
const CHANGES = numberOption('changes', 30);
const SECONDS = numberOption('seconds', 20);

interface Replica {
  readonly name: string;
  readonly address: string;
  readonly process: FlowProxyProcess;
}

/** Status of a GET through a replica's HTTP port (404: no route). */
async function statusThrough(replica: Replica, httpPort: number, path: string): Promise<number> {
  const response = await fetch(`http://${replica.address}:${httpPort}${path}`, { signal: AbortSignal.timeout(5000) });
  await response.arrayBuffer();
  return response.status;
}

async function api(replica: Replica, apiPort: number, method: string, endpoint: string, body?: string): Promise<number> {
  const response = await fetch(`http://${replica.address}:${apiPort}/v1/docker-flow-proxy/${endpoint}`, { method, ...(body === undefined ? {} : { body }), signal: AbortSignal.timeout(600_000) });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${method} ${endpoint} on ${replica.name}: ${response.status} ${text.slice(0, 300)}`);
  return response.status;
}

/** Milliseconds until `check` passes, polling every 5 ms (at most 60 s). */
async function timeUntil(check: () => Promise<boolean>, from: number): Promise<number> {
  while (!(await check())) {
    if (now() - from > 60_000) throw new Error('not reached within 60 s');
    await sleep(5);
  }
  return now() - from;
}

/** CPU seconds (user + system) a process has used, from /proc. */
async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Routes whose replicas are never reached: the benchmark looks at routing tables, not traffic. */
const routeParams = (name: string) => ({ serviceName: name, servicePath: `/${name}`, port: '1', outboundHostname: '127.0.0.1' });
/** Names of one length, so no route's path is a prefix of another's. */
const named = (prefix: string, i: number) => `${prefix}-${String(i).padStart(6, '0')}`;

runBench(async () => {
  const cli = await buildPrivateCli();
  const dns = new TestDnsServer();
  const dnsServer = await dns.start();
  dns.set('tasks.fp-bench', ['127.0.0.2', '127.0.0.3', '127.0.0.4']);
  const [httpPort, apiPort] = [await freePort(), await freePort()];
  const start = async (name: string, address: string, interval: number): Promise<Replica> => {
    const process = await spawnFlowProxy({
      cli,
      plane: 'builtin',
      extraArgs: ['--http-port', String(httpPort), '--api-port', String(apiPort), '--bind-address', address, '--api-address', address, '--dns-servers', dnsServer, '--service-name', 'fp-bench', '--peer-sync-interval', String(interval)],
    });
    return { name, address, process };
  };
  const [a, b, c, alone] = await Promise.all([start('A', '127.0.0.2', 1), start('B', '127.0.0.3', 1), start('C', '127.0.0.4', 1), start('alone', '127.0.0.5', 0)]);
  const routed = (replica: Replica, path: string) => async () => (await statusThrough(replica, httpPort, path)) !== 404;
  for (const replica of [a, b, c, alone]) await timeUntil(async () => (await fetch(`http://${replica.address}:${apiPort}/v1/docker-flow-proxy/status`).catch(() => undefined))?.status === 200, now());

  const quiet: number[] = [];
  const distributedReply: number[] = [];
  for (let i = 0; i < CHANGES; i++) {
    const query = new URLSearchParams(routeParams(named('one', i))).toString();
    await api(a, apiPort, 'GET', `reconfigure?${query}`);
    const sent = now();
    quiet.push(await timeUntil(routed(b, `/${named('one', i)}/`), sent));
    const asked = now();
    await api(a, apiPort, 'GET', `reconfigure?${new URLSearchParams(routeParams(named('spread', i))).toString()}&distribute=true`);
    distributedReply.push(now() - asked);
    if (!(await routed(b, `/${named('spread', i)}/`)())) throw new Error(`B did not serve /${named('spread', i)}/ when A replied to distribute=true`);
  }

  const bulk = JSON.stringify({ services: Array.from({ length: ROUTES }, (_, i) => routeParams(named('bulk', i))) });
  const bulkSent = now();
  await api(a, apiPort, 'POST', 'reconfigure', bulk);
  const bulkApplied = now() - bulkSent;
  const converged = await timeUntil(async () => (await routed(c, `/${named('bulk', ROUTES - 1)}/`)()) && (await routed(c, `/${named('bulk', 0)}/`)()), bulkSent);
  await api(alone, apiPort, 'POST', 'reconfigure', bulk);

  // Let the last round after the bulk pass, then measure with nothing changing.
  await sleep(3000);
  const replicas = [a, b, c, alone];
  const before = await Promise.all(replicas.map((r) => cpuSeconds(r.process.pid)));
  await sleep(SECONDS * 1000);
  const after = await Promise.all(replicas.map((r) => cpuSeconds(r.process.pid)));
  const cpuPercent = replicas.map((_, i) => ((after[i] as number) - (before[i] as number)) / SECONDS * 100);

  const q = latencies(quiet);
  const d = latencies(distributedReply);
  console.log(`\n## Replicas in step (${commandLine('bench/replication.ts')}, commit ${gitCommit()}, load ${loadAverage()})\n`);
  console.log(markdownTable(
    ['measure', 'p50 ms', 'p99 ms', 'max ms'],
    [
      [`one change to A, until B serves it (no distribute, ${CHANGES} changes)`, fixed(q.p50, 0), fixed(q.p99, 0), fixed(q.max, 0)],
      [`one change to A with distribute=true, until A replies (B serves it then)`, fixed(d.p50, 0), fixed(d.p99, 0), fixed(d.max, 0)],
    ],
    [false, true, true, true],
  ));
  console.log(`\n${ROUTES} routes in one bulk request to A: applied by A in ${fixed(bulkApplied, 0)} ms, all served by C ${fixed(converged, 0)} ms after the request.\n`);
  console.log(markdownTable(
    ['replica', `CPU over ${SECONDS} s idle, ${ROUTES + 2 * CHANGES} routes`],
    replicas.map((r, i) => [r.name === 'alone' ? 'alone (PEER_SYNC_INTERVAL=0)' : `${r.name} (2 peers, rounds every 1 s)`, `${fixed(cpuPercent[i] as number, 2)} %`]),
    [false, true],
  ));
  await dns.stop();
});
