/** Shared pieces of the benchmarks: installing tools, a fast nginx backend, and wrk runs. */
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { TestDnsServer } from '../test/support/dns-server.js';
import { freePort, tempDir } from '../test/support/proxy.js';

const run = promisify(execFile);

export function ensureInstalled(binaries: Record<string, string>): void {
  const missing = Object.entries(binaries).filter(([binary]) => {
    try {
      execFileSync('sh', ['-c', `command -v ${binary}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length === 0) return;
  execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing.map(([, pkg]) => pkg)], { stdio: 'inherit' });
}

export interface Started {
  readonly port: number;
  stop(): Promise<void>;
}

/** Stops a child process with SIGTERM and resolves once it has exited. */
export function stopper(child: ChildProcess): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
}

/** nginx answering "hello, world!" itself: a backend fast enough not to be the bottleneck. */
export async function startNginx(): Promise<Started> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-nginx-'));
  const port = await freePort();
  await writeFile(
    path.join(dir, 'nginx.conf'),
    `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir};
  proxy_temp_path ${dir};
  fastcgi_temp_path ${dir};
  uwsgi_temp_path ${dir};
  scgi_temp_path ${dir};
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:${port};
    location / { return 200 "hello, world!\\n"; }
  }
}
`,
  );
  const child = spawn('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: 'inherit' });
  await waitForPort(port);
  return { port, stop: stopper(child) };
}

/** A hand-written single-route HAProxy configuration, what an operator would write by hand. */
export async function startHandWrittenHaproxy(backendPort: number, threads: number): Promise<Started> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-haproxy-'));
  const port = await freePort();
  const config = path.join(dir, 'haproxy.cfg');
  await writeFile(
    config,
    `global
  nbthread ${threads}
defaults
  mode http
  timeout connect 5s
  timeout client 20s
  timeout server 20s
frontend http
  bind 127.0.0.1:${port}
  use_backend be_demo if { path_beg /demo }
backend be_demo
  server s1 127.0.0.1:${backendPort}
`,
  );
  const child = spawn('haproxy', ['-f', config], { stdio: 'inherit' });
  await waitForPort(port);
  return { port, stop: stopper(child) };
}

export async function waitForPort(port: number, path = '/'): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      await fetch(`http://127.0.0.1:${port}${path}`);
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`nothing answers on port ${port}`);
}

export interface WrkFigures {
  readonly rps: number;
  readonly p50ms: number;
  readonly p99ms: number;
  readonly errors: number;
}

function toMs(value: string, unit: string): number {
  const factor = unit === 'us' ? 0.001 : unit === 's' ? 1000 : 1;
  return Number(value) * factor;
}

export interface WrkOptions {
  /** More wrk arguments, e.g. ['-H', 'Connection: close'] for a new connection per request. */
  readonly args?: readonly string[];
  /** wrk's environment (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
}

export async function runWrk(url: string, seconds: number, connections: number, options: WrkOptions = {}): Promise<WrkFigures> {
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', ...(options.args ?? []), url];
  const { stdout } = await run('wrk', args, { timeout: (seconds + 60) * 1000, env: options.env ?? process.env });
  const latency = (percent: string) => {
    const m = new RegExp(`^\\s+${percent}%\\s+([0-9.]+)(us|ms|s)`, 'm').exec(stdout);
    return m === null ? NaN : toMs(m[1] as string, m[2] as string);
  };
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  return {
    rps: Number(/Requests\/sec:\s+([0-9.]+)/.exec(stdout)?.[1] ?? NaN),
    p50ms: latency('50'),
    p99ms: latency('99'),
    errors: non2xx + (errors === null ? 0 : errors.slice(1).reduce((sum, n) => sum + Number(n), 0)),
  };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

export function option(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  return index === -1 ? fallback : Number(process.argv[index + 1]);
}

export interface Target {
  readonly name: string;
  readonly url: string;
  /** More wrk arguments for this target (headers). */
  readonly args?: readonly string[];
}

/** Runs every target once per round, interleaved, so machine noise hits all of them alike. */
export async function compare(targets: readonly Target[], rounds: number, seconds: number, connections: number): Promise<void> {
  const results = new Map<string, WrkFigures[]>(targets.map((t) => [t.name, []]));
  for (const target of targets) await runWrk(target.url, 2, connections, { args: target.args ?? [] }); // warm-up
  for (let round = 1; round <= rounds; round++) {
    for (const target of targets) {
      const figures = await runWrk(target.url, seconds, connections, { args: target.args ?? [] });
      results.get(target.name)?.push(figures);
      console.error(`round ${round} ${target.name}: ${figures.rps.toFixed(0)} req/s, p99 ${figures.p99ms.toFixed(2)} ms, errors ${figures.errors}`);
    }
  }
  const base = median(results.get(targets[0]?.name ?? '')?.map((f) => f.rps) ?? []);
  console.log(`\n| target | req/s (median of ${rounds}) | vs first | p50 ms | p99 ms | errors |`);
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const target of targets) {
    const all = results.get(target.name) ?? [];
    const rps = median(all.map((f) => f.rps));
    console.log(
      `| ${target.name} | ${rps.toFixed(0)} | ${((rps / base) * 100).toFixed(1)}% | ${median(all.map((f) => f.p50ms)).toFixed(2)} | ${median(all.map((f) => f.p99ms)).toFixed(2)} | ${all.reduce((s, f) => s + f.errors, 0)} |`,
    );
  }
}

/** Runs `node ARGS` and resolves once `port` answers `probe`. */
export async function startProcess(args: string[], port: number, probe = '/'): Promise<Started> {
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForPort(port, probe);
  return {
    port,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** A built Flow Proxy (dist/) routing /demo to `backendPort`, resolved by `dnsServer`; `extraArgs` are added to its command line. */
export async function startFlowProxy(
  plane: 'builtin' | 'haproxy',
  dnsServer: string,
  backendPort: number,
  extraArgs: readonly string[] = [],
  routeParams: Readonly<Record<string, string>> = {},
): Promise<Started> {
  const port = await freePort();
  const apiPort = await freePort();
  const args = [
    'dist/cli.js', '--data-plane', plane, '--http-port', String(port), '--https-port', String(await freePort()),
    '--api-port', String(apiPort), '--bind-address', '127.0.0.1', '--api-address', '127.0.0.1',
    '--state-dir', await tempDir(`bench-${plane}`), '--dns-servers', dnsServer, '--haproxy-threads', '1',
    '--log-level', 'error', '--stop-grace', '1', ...extraArgs,
  ];
  const started = await startProcess(args, apiPort, '/v1/docker-flow-proxy/ping');
  const query = new URLSearchParams({ serviceName: 'go-demo', servicePath: '/demo', port: String(backendPort), ...routeParams });
  const reply = await fetch(`http://127.0.0.1:${apiPort}/v1/docker-flow-proxy/reconfigure?${query.toString()}`);
  if (reply.status !== 200) throw new Error(`reconfigure failed: ${await reply.text()}`);
  // Routed once the answer comes from the route (200, or 401 for a route behind basic auth).
  for (let i = 0; i < 100 && [404, 502, 503].includes((await fetch(`http://127.0.0.1:${port}/demo/hello`)).status); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { port, stop: started.stop };
}

/** One Flow Proxy process in a side-by-side run. */
export interface Contender {
  readonly name: string;
  readonly plane: 'builtin' | 'haproxy';
  /** More command-line arguments. */
  readonly args?: readonly string[];
  /** More parameters of the /demo route. */
  readonly route?: Readonly<Record<string, string>>;
  /** More wrk arguments (headers). */
  readonly wrk?: readonly string[];
}

/**
 * Flow Proxy variants side by side in one run: one process each routing /demo to the same nginx
 * (resolved by a test DNS server), wrk on one thread, --seconds/--rounds/--connections from the
 * command line (defaults 10/3/50).
 */
export async function compareFlowProxies(contenders: readonly Contender[]): Promise<void> {
  ensureInstalled({ nginx: 'nginx', wrk: 'wrk', haproxy: 'haproxy' });
  const dns = new TestDnsServer();
  const dnsServer = await dns.start();
  dns.set('go-demo', ['127.0.0.1']);
  const nginx = await startNginx();
  const started: Started[] = [];
  try {
    const targets: Target[] = [];
    for (const contender of contenders) {
      const proxy = await startFlowProxy(contender.plane, dnsServer, nginx.port, contender.args, contender.route);
      started.push(proxy);
      targets.push({ name: contender.name, url: `http://127.0.0.1:${proxy.port}/demo/hello`, args: contender.wrk ?? [] });
    }
    await compare(targets, option('rounds', 3), option('seconds', 10), option('connections', 50));
  } finally {
    await Promise.all([...started, nginx].map((p) => p.stop()));
    await dns.stop();
  }
}
