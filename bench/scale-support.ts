/**
 * Pieces shared by bench/scale.ts and bench/churn.ts (issue 9, route changes at 10,000 services):
 * Flow Proxy as a child process built from this working tree, keep-alive HTTP polling,
 * latency percentiles, resident memory from /proc, wrk with the failure breakdown, the classic
 * "one acl + use_backend per service, reload per change" HAProxy baseline, and a cleanup
 * registry so every child process is stopped even when a run fails.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { copyFile, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { createLogger } from '../src/log.js';
import { checkConfig, HaproxyProcess } from '../src/planes/haproxy/process.js';
import { freePort, tempDir } from '../test/support/proxy.js';

const run = promisify(execFile);
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
export const now = () => performance.now();

// ---------------------------------------------------------------- command line

export function flag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

export function numberOption(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  if (index === -1) return fallback;
  const value = Number(process.argv[index + 1]);
  if (!Number.isFinite(value)) throw new Error(`--${name} takes a number, got ${process.argv[index + 1]}`);
  return value;
}

export function listOption(name: string, fallback: readonly string[]): string[] {
  const index = process.argv.indexOf(`--${name}`);
  if (index === -1) return [...fallback];
  return (process.argv[index + 1] ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
}

/** The command line as typed, for the report. */
export function commandLine(script: string): string {
  const args = process.argv.slice(2);
  return `npx vite-node ${script}${args.length === 0 ? '' : ` -- ${args.join(' ')}`}`;
}

/** `git rev-parse --short HEAD`, marked when the working tree differs from it (read-only git commands). */
export function gitCommit(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    let dirty = false;
    try {
      execFileSync('git', ['diff-index', '--quiet', 'HEAD', '--'], { stdio: 'ignore' });
    } catch {
      dirty = true;
    }
    return dirty ? `${commit} + uncommitted changes` : commit;
  } catch {
    return 'unknown';
  }
}

// ---------------------------------------------------------------- cleanup

const cleanups: (() => Promise<void>)[] = [];
let cleaning: Promise<void> | undefined;

/**
 * Registers `task` to run at cleanup (last registered, first run); returns a function that
 * unregisters it. Once cleanup has begun (Ctrl-C), a task registered late runs at once.
 */
export function onCleanup(task: () => Promise<void>): () => void {
  if (cleaning !== undefined) {
    void task().catch(() => undefined);
    return () => undefined;
  }
  cleanups.push(task);
  return () => {
    const index = cleanups.indexOf(task);
    if (index !== -1) cleanups.splice(index, 1);
  };
}

/** Runs every registered task once; callers at the same time share one run. */
export function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length > 0) {
      const task = cleanups.pop() as () => Promise<void>;
      await task().catch((error: Error) => console.error(`cleanup: ${error.message}`));
    }
  })();
  return cleaning;
}

/** Runs `main`, then stops every child process whatever happened (also on Ctrl-C). */
export function runBench(main: () => Promise<void>): void {
  let interrupted = false;
  const interrupt = (signal: string) => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${signal}: stopping every child process`);
    void cleanupAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', () => interrupt('SIGINT'));
  process.once('SIGTERM', () => interrupt('SIGTERM'));
  main()
    .then(
      () => undefined,
      (error: Error) => {
        console.error(error.stack ?? error.message);
        process.exitCode = 1;
      },
    )
    .finally(async () => {
      await cleanupAll();
      process.exit();
    });
}

/** Stops a child with SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
export function stopChild(child: ChildProcess, graceMs = 15_000): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** nginx from support.ts's startNginx, stopped at cleanup too. */
export async function registered<T extends { stop(): Promise<void> }>(started: Promise<T>): Promise<T> {
  const value = await started;
  const unregister = onCleanup(() => value.stop());
  const stop = value.stop.bind(value);
  value.stop = async () => {
    unregister();
    await stop();
  };
  return value;
}

// ---------------------------------------------------------------- /proc

async function statusField(pid: number, field: string): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
}

/** Resident memory of one process, in MB (VmRSS). */
export async function rssMb(pid: number): Promise<number> {
  return (await statusField(pid, 'VmRSS')) / 1024;
}

/** Every process below `pid` (children, grandchildren...). */
export async function descendants(pid: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(fields[1]);
    if (Number.isInteger(ppid)) parents.set(Number(entry), ppid);
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift() as number;
    for (const [child, ppid] of parents) {
      if (ppid === parent) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

/** Summed VmRSS of `pids` in MB (a process gone meanwhile counts 0). */
export async function totalRssMb(pids: readonly number[]): Promise<number> {
  let total = 0;
  for (const pid of pids) {
    const mb = await rssMb(pid);
    if (Number.isFinite(mb)) total += mb;
  }
  return total;
}

// ---------------------------------------------------------------- HTTP

export function keepAliveAgent(): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: 1 });
}

export interface Reply {
  readonly status: number;
  readonly body: string;
}

export function request(agent: http.Agent | false, port: number, method: string, target: string, body?: string, timeoutMs = 600_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    const req = http.request({ host: '127.0.0.1', port, method, path: target, agent, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${target}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

export interface PollOptions {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
  /** Polled too: a reason to stop waiting (e.g. the proxy exited), or undefined. */
  readonly giveUp?: () => string | undefined;
}

export interface Polled {
  /** performance.now() when the wanted status was seen. */
  readonly at: number;
  readonly polls: number;
  /** What the first poll got when it was not the wanted status: 'status 404', or the error. */
  readonly firstMiss: string | undefined;
}

/** GETs `target` until it answers `wanted`; connection errors (port not open yet) are retried. */
export async function pollFor(agent: http.Agent | false, port: number, target: string, wanted: number, options: PollOptions): Promise<Polled> {
  const deadline = now() + options.timeoutMs;
  let last = 'nothing yet';
  let polls = 0;
  let firstMiss: string | undefined;
  for (;;) {
    if (options.signal?.aborted === true) throw new Error(`polling ${target} aborted`);
    const reason = options.giveUp?.();
    if (reason !== undefined) throw new Error(`GET ${target} on port ${port}: ${reason}`);
    polls++;
    try {
      const { status } = await request(agent, port, 'GET', target, undefined, 10_000);
      if (status === wanted) return { at: now(), polls, firstMiss };
      last = `status ${status}`;
    } catch (error) {
      last = (error as Error).message;
    }
    firstMiss ??= last;
    if (now() > deadline) throw new Error(`GET ${target} on port ${port}: no ${wanted} within ${options.timeoutMs} ms (last: ${last})`);
    await sleep(options.intervalMs);
  }
}

// ---------------------------------------------------------------- figures

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

export function fixed(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '-';
}

export interface Latencies {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export function latencies(values: readonly number[]): Latencies {
  return { count: values.length, p50: percentile(values, 50), p99: percentile(values, 99), max: values.length === 0 ? NaN : Math.max(...values) };
}

export function pair(l: Latencies | undefined): string {
  return l === undefined || l.count === 0 ? '-' : `${fixed(l.p50)} / ${fixed(l.p99)}`;
}

export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[], right: readonly boolean[] = []): string {
  const align = header.map((_, i) => (right[i] === true ? '---:' : '---'));
  return [`| ${header.join(' | ')} |`, `|${align.join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');
}

// ---------------------------------------------------------------- wrk

export interface WrkDetail {
  readonly requests: number;
  readonly rps: number;
  readonly p50ms: number;
  readonly p99ms: number;
  readonly non2xx3xx: number;
  readonly connect: number;
  readonly read: number;
  readonly write: number;
  readonly timeout: number;
  /** Responses by status code (only with `countStatuses`). */
  readonly statuses: ReadonlyMap<number, number>;
  readonly output: string;
}

/** The `status CODE COUNT` lines WRK_STATUS_LUA made wrk print. */
export function wrkStatuses(output: string): Map<number, number> {
  const statuses = new Map<number, number>();
  for (const m of output.matchAll(/^status (\d+) (\d+)$/gm)) statuses.set(Number(m[1]), Number(m[2]));
  return statuses;
}

/** A wrk script that prints `status CODE COUNT` lines for every status seen (wrk itself counts only non-2xx/3xx). */
export const WRK_STATUS_LUA = `
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    local counts = t:get("statuses")
    for status, count in pairs(counts) do io.write(string.format("status %d %d\\n", status, count)) end
  end
end
`;

function toMs(value: string, unit: string): number {
  return Number(value) * (unit === 'us' ? 0.001 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 1);
}

/**
 * wrk -t1 with the breakdown of failures (non-2xx/3xx responses, socket errors by kind); with
 * `countStatuses`, a Lua script also counts the responses by status code (it costs wrk some
 * throughput: for correctness runs, not for throughput figures).
 */
export async function wrkDetailed(url: string, seconds: number, connections: number, countStatuses = false): Promise<WrkDetail> {
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency'];
  if (countStatuses) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-wrk-'));
    const script = path.join(dir, 'statuses.lua');
    await writeFile(script, WRK_STATUS_LUA);
    args.push('-s', script);
  }
  args.push(url);
  const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const unregister = onCleanup(() => stopChild(child, 1000));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  unregister();
  if (code !== 0) throw new Error(`wrk exited with ${code}: ${stderr}${stdout}`);
  const latency = (percent: string) => {
    const m = new RegExp(`^\\s+${percent}%\\s+([0-9.]+)(us|ms|s|m)\\b`, 'm').exec(stdout);
    return m === null ? NaN : toMs(m[1] as string, m[2] as string);
  };
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const statuses = wrkStatuses(stdout);
  return {
    requests: Number(/(\d+) requests in/.exec(stdout)?.[1] ?? NaN),
    rps: Number(/Requests\/sec:\s+([0-9.]+)/.exec(stdout)?.[1] ?? NaN),
    p50ms: latency('50'),
    p99ms: latency('99'),
    non2xx3xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0),
    connect: Number(socket?.[1] ?? 0),
    read: Number(socket?.[2] ?? 0),
    write: Number(socket?.[3] ?? 0),
    timeout: Number(socket?.[4] ?? 0),
    statuses,
    output: stdout,
  };
}

// ---------------------------------------------------------------- Flow Proxy as a child process

/**
 * Compiles src/ (this working tree) into a private directory, so the figures are those of the
 * code as it is now and a concurrent `npm run build` into dist/ cannot change it mid-run.
 * Returns the path of its cli.js.
 */
export async function buildPrivateCli(): Promise<string> {
  const root = process.cwd();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-flow-proxy-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  await copyFile(path.join(root, 'package.json'), path.join(dir, 'package.json')); // "type": "module"
  await symlink(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  const started = Date.now();
  try {
    await run(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.build.json'), '--outDir', path.join(dir, 'dist')], {
      maxBuffer: 16 << 20,
    });
  } catch (error) {
    const { stdout } = error as { stdout?: string };
    throw new Error(`tsc -p tsconfig.build.json failed:\n${stdout ?? (error as Error).message}`);
  }
  console.error(`built src/ into ${dir}/dist in ${Date.now() - started} ms`);
  return path.join(dir, 'dist', 'cli.js');
}

export interface FlowProxyProcess {
  readonly pid: number;
  readonly plane: 'haproxy' | 'builtin';
  readonly httpPort: number;
  readonly apiPort: number;
  readonly stateDir: string;
  /** performance.now() when the process was spawned. */
  readonly spawnedAt: number;
  /** Resolves once the control API answers /ping. */
  ready(): Promise<void>;
  /** Why the process is gone (exit code and the end of its stderr), or undefined while it runs. */
  exited(): string | undefined;
  /** For an error message: whether it runs, what /status answers, the end of its stderr. */
  diagnose(): Promise<string>;
  api(method: string, endpoint: string, body?: string): Promise<Reply>;
  status(): Promise<PlaneStatusReply>;
  /** VmRSS of the Flow Proxy (Node) process, MB. */
  controlRssMb(): Promise<number>;
  /** VmRSS of the HAProxy master and workers it runs, MB (0 on the built-in plane). */
  haproxyRssMb(): Promise<number>;
  stop(): Promise<void>;
}

export interface PlaneStatusReply {
  readonly ready: boolean;
  readonly version: number;
  readonly lastError?: string;
  readonly details: Readonly<Record<string, number | string | boolean>>;
}

export interface SpawnOptions {
  readonly cli: string;
  readonly plane: 'haproxy' | 'builtin';
  readonly stateDir?: string;
  readonly extraArgs?: readonly string[];
  /** Node's own options, before the script (e.g. --cpu-prof). */
  readonly nodeArgs?: readonly string[];
}

export async function spawnFlowProxy(options: SpawnOptions): Promise<FlowProxyProcess> {
  let stateDir = options.stateDir;
  if (stateDir === undefined) {
    const created = await tempDir('bench-state');
    onCleanup(() => rm(created, { recursive: true, force: true }));
    stateDir = created;
  }
  const httpPort = await freePort();
  const apiPort = await freePort();
  const args = [
    options.cli,
    '--data-plane', options.plane,
    '--http-port', String(httpPort),
    '--https-port', String(await freePort()),
    '--api-port', String(apiPort),
    '--bind-address', '127.0.0.1',
    '--api-address', '127.0.0.1',
    '--state-dir', stateDir,
    '--stop-grace', '1',
    '--log-level', 'error',
    ...(options.plane === 'haproxy' ? ['--haproxy-threads', '1'] : []),
    ...(options.extraArgs ?? []),
  ];
  // A clean environment: Flow Proxy also reads settings from variables (MODE, ...).
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' };
  const spawnedAt = now();
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let output = '';
  child.stderr.on('data', (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  });
  const pid = child.pid as number;
  const agent = keepAliveAgent();
  const haproxyPids = async () => (options.plane === 'haproxy' ? descendants(pid) : []);
  let knownHaproxy: number[] = [];
  const stop = async () => {
    knownHaproxy = await haproxyPids().catch(() => knownHaproxy);
    agent.destroy();
    await stopChild(child, 20_000);
    // A Flow Proxy killed with SIGKILL would leave its HAProxy behind.
    for (const leftover of knownHaproxy) {
      try {
        process.kill(leftover, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
  };
  const unregister = onCleanup(stop);
  const api = (method: string, endpoint: string, body?: string) => request(agent, apiPort, method, `/v1/docker-flow-proxy/${endpoint}`, body);
  const exited = () =>
    child.exitCode !== null || child.signalCode !== null ? `flow proxy (${options.plane}) exited with ${child.exitCode ?? child.signalCode}: ${output.trim() || 'no output'}` : undefined;
  return {
    pid,
    plane: options.plane,
    httpPort,
    apiPort,
    stateDir,
    spawnedAt,
    async ready() {
      const deadline = now() + 120_000;
      for (;;) {
        const gone = exited();
        if (gone !== undefined) throw new Error(gone);
        try {
          if ((await api('GET', 'ping')).status === 200) break;
        } catch {
          // not listening yet
        }
        if (now() > deadline) throw new Error(`flow proxy (${options.plane}) did not answer /ping within 120 s: ${output.trim()}`);
        await sleep(20);
      }
      knownHaproxy = await haproxyPids();
    },
    exited,
    async diagnose() {
      const gone = exited();
      if (gone !== undefined) return gone;
      const status = await request(false, apiPort, 'GET', '/v1/docker-flow-proxy/status', undefined, 5000).then(
        (r) => `${r.status} ${r.body.slice(0, 500)}`,
        (error: Error) => error.message,
      );
      return `flow proxy (${options.plane}, pid ${pid}) still runs; /status: ${status}; stderr: ${output.trim() || 'nothing'}`;
    },
    api,
    async status() {
      const reply = await api('GET', 'status');
      const body = JSON.parse(reply.body) as { Plane?: PlaneStatusReply };
      if (body.Plane === undefined) throw new Error(`status: ${reply.status} ${reply.body}`);
      return { ...body.Plane, details: body.Plane.details ?? {} };
    },
    controlRssMb: () => rssMb(pid),
    async haproxyRssMb() {
      const pids = await haproxyPids();
      if (pids.length > 0) knownHaproxy = pids;
      return totalRssMb(pids);
    },
    async stop() {
      unregister();
      await stop();
    },
  };
}

/** HAProxy's reload counter from /status (0 on the built-in plane). */
export async function reloadsOf(proxy: FlowProxyProcess): Promise<number> {
  const details = (await proxy.status()).details;
  return typeof details.reloads === 'number' ? details.reloads : 0;
}

export interface BenchService {
  readonly serviceName: string;
  readonly servicePath: string;
  readonly port: string;
  readonly outboundHostname: string;
}

/** A service routed by path to the nginx backend, addressed without DNS. */
export function benchService(name: string, backendPort: number): BenchService {
  return { serviceName: name, servicePath: `/${name}`, port: String(backendPort), outboundHostname: '127.0.0.1' };
}

export function reconfigureQuery(service: BenchService): string {
  return `reconfigure?${new URLSearchParams({ ...service }).toString()}`;
}

// ---------------------------------------------------------------- the classic baseline

/**
 * The configuration Docker Flow Proxy generated: per service one `acl` + `use_backend` pair in
 * the frontend (evaluated in order for every request) and one backend; the addresses are
 * literal, as in Flow Proxy's runs, so no DNS is involved either.
 */
export function classicConfig(names: readonly string[], options: { httpPort: number; backendPort: number; runDir: string }): string {
  const lines = [
    'global',
    '  nbthread 1',
    '  hard-stop-after 30s',
    `  stats socket ${options.runDir}/admin.sock mode 600 level admin`,
    'defaults',
    '  mode http',
    '  option forwardfor',
    '  timeout connect 5s',
    '  timeout client 20s',
    '  timeout server 20s',
    'frontend http',
    `  bind 127.0.0.1:${options.httpPort}`,
  ];
  names.forEach((name, i) => lines.push(`  acl svc_${i} path_beg /${name}`));
  names.forEach((_, i) => lines.push(`  use_backend be_${i} if svc_${i}`));
  names.forEach((_, i) => lines.push(`backend be_${i}`, `  server s1 127.0.0.1:${options.backendPort}`));
  return `${lines.join('\n')}\n`;
}

/** The baseline's HAProxy, master-worker; a change rewrites the file, checks it and reloads through the master CLI. */
export class ClassicHaproxy {
  private readonly process: HaproxyProcess;
  private names: string[] = [];
  private unregister: (() => void) | undefined;
  reloads = 0;
  lastReloadMs = 0;

  private constructor(
    private readonly dir: string,
    readonly httpPort: number,
    private readonly backendPort: number,
  ) {
    this.process = new HaproxyProcess('haproxy', path.join(dir, 'haproxy.cfg'), path.join(dir, 'run'), createLogger('error'));
  }

  static async create(backendPort: number): Promise<ClassicHaproxy> {
    return new ClassicHaproxy(await tempDir('bench-classic'), await freePort(), backendPort);
  }

  get services(): readonly string[] {
    return this.names;
  }

  private async write(names: readonly string[]): Promise<void> {
    const file = path.join(this.dir, 'haproxy.cfg');
    await writeFile(file, classicConfig(names, { httpPort: this.httpPort, backendPort: this.backendPort, runDir: path.join(this.dir, 'run') }));
    await checkConfig('haproxy', file);
    this.names = [...names];
  }

  /** Writes, checks and starts HAProxy with `names`. */
  async start(names: readonly string[]): Promise<void> {
    await this.write(names);
    await this.process.start(); // stops what it started if it fails
    this.unregister = onCleanup(() => this.stop());
  }

  /** One change as Docker Flow Proxy made it: the whole file rewritten, `haproxy -c`, reload. */
  async change(names: readonly string[]): Promise<void> {
    const started = now();
    await this.write(names);
    await this.process.reload();
    this.reloads++;
    this.lastReloadMs = now() - started;
  }

  async pids(): Promise<number[]> {
    const master = Number((await readFile(path.join(this.dir, 'run', 'haproxy.pid'), 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(master) || master <= 0) return [];
    return [master, ...(await descendants(master))];
  }

  async rssMb(): Promise<number> {
    return totalRssMb(await this.pids());
  }

  async stop(): Promise<void> {
    this.unregister?.();
    await this.process.stop(1);
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** The 1-minute load average and the core count, for the report: the machine is shared. */
export function loadAverage(): string {
  return `${fixed(os.loadavg()[0] ?? NaN, 2)} on ${os.cpus().length} cores`;
}
