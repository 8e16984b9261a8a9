/**
 * Rolling updates on a real single-node Swarm (issue 11), shared by
 * test/e2e/rolling-update.test.ts and bench/rolling-update.ts: a backend that shuts down like a
 * real server, its two versions, Flow Proxy as a Swarm service following the backend's replicas
 * through the Engine API (swarm mode) or by DNS only (tasks.NAME, as Docker Flow Proxy's
 * server-template), two load generators (a Node keep-alive client that records every failure,
 * and wrk run once per phase), and the sequence itself: update --force, update --image, scale
 * to 1, scale to 3, each phase ending on what Swarm and the responses show, never on a sleep.
 *
 * Swarm's update settings are those an operator would pick for a web service: one task at a
 * time (--update-parallelism 1), 1 s between tasks (--update-delay 1s), a stop grace period long
 * enough for in-flight requests (--stop-grace-period 10s), and by default Swarm's own order,
 * stop-first (the old task stops before its replacement starts: the harder case, since the
 * service runs one replica short meanwhile); start-first can be asked for. No health check: the
 * backend's image has none, like the tutorial's go-demo, which is the harder case for a proxy.
 *
 * What Swarm does, as measured here (docker 20.10, the timelines `timeline` prints): a task being
 * stopped (update, scale down) gets desired state "shutdown" at once, which the Engine's task
 * list shows; its container leaves the service's DNS entries and is sent SIGTERM about 2-3 s later
 * (the Engine's pause for gossip to converge), so a proxy that drops it within a second never
 * sends it a request after SIGTERM. A task is "running" as soon as its process has started,
 * before it listens: without a health check, a new replica refuses connections (ECONNREFUSED)
 * for its first tens of milliseconds (up to ~170 ms seen on a busy machine), and a proxy that
 * already sends it requests must retry them on another replica.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { sleep, WRK_STATUS_LUA, wrkStatuses } from '../../bench/scale-support.js';
import { freePort } from './proxy.js';
import { docker, waitFor } from './swarm.js';

const run = promisify(execFile);

// ---------------------------------------------------------------- the backend and its images

/**
 * A backend that shuts down like a real server: on SIGTERM it stops accepting connections
 * (closes its listener), closes its idle keep-alive connections, answers the requests in flight
 * (with Connection: close), and exits once the last connection is gone. It answers
 * "VERSION HOSTNAME" (APP_VERSION, from the image), so an update can be seen through the proxy.
 * Its keep-alive timeout (65 s) is longer than any proxy's idle pool, as recommended behind a
 * load balancer, so it never closes an idle connection under the proxy's feet in steady state.
 */
export const BACKEND_SCRIPT = `const http = require('http');
const os = require('os');
const answer = (process.env.APP_VERSION || 'unset') + ' ' + os.hostname() + '\\n';
const log = (text) => process.stdout.write(new Date().toISOString() + ' ' + text + '\\n');
let stopping = false;
let served = 0;
const server = http.createServer((req, res) => {
  served++;
  if (stopping) res.setHeader('Connection', 'close');
  res.setHeader('Content-Type', 'text/plain');
  res.end(answer);
});
server.keepAliveTimeout = 65000;
server.headersTimeout = 66000;
server.listen(8080, () => log('listening, ' + answer.trim()));
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  log('SIGTERM after ' + served + ' requests: closing the listener and idle connections');
  server.close(() => {
    // Nothing is left to keep the process alive: it ends here.
    log('every connection closed after ' + served + ' requests; exiting');
  });
  server.closeIdleConnections();
  setTimeout(() => {
    log('connections still open after 8 s; closing them');
    server.closeAllConnections();
  }, 8000).unref();
});
`;

export interface BackendImages {
  readonly v1: string;
  readonly v2: string;
}

/**
 * The backend image imported twice, as "v1" and "v2" (the same files; ENV APP_VERSION differs),
 * from this machine's own Node binary and its libraries (as nodeScriptImage does). The
 * repository name holds a hash of the script, so an image left by an earlier run is reused only
 * when it has the same script.
 */
export async function backendImages(): Promise<BackendImages> {
  const hash = createHash('sha256').update(BACKEND_SCRIPT).digest('hex').slice(0, 10);
  const repository = `flow-proxy-test/rolling-${hash}`;
  const images = { v1: `${repository}:v1`, v2: `${repository}:v2` };
  if ((await docker('image', 'ls', '-q', images.v1)) !== '' && (await docker('image', 'ls', '-q', images.v2)) !== '') return images;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fp-rolling-image-'));
  try {
    await writeFile(path.join(dir, 'main.js'), BACKEND_SCRIPT);
    const build = `set -e
r="${dir}/rootfs"; b=$(readlink -f "$(command -v node)")
mkdir -p "$r/usr/local/bin" "$r/app" "$r/tmp"
cp "$b" "$r/usr/local/bin/node"
for l in $(ldd "$b" | grep -o '/[^ ]*'); do mkdir -p "$r$(dirname "$l")"; cp -L "$l" "$r$l"; done
cp "${dir}/main.js" "$r/app/main.js"
for v in v1 v2; do
  tar -C "$r" -c . | docker import -c "ENV APP_VERSION=$v" -c 'ENTRYPOINT ["/usr/local/bin/node","/app/main.js"]' - ${repository}:$v >/dev/null
done`;
    await run('sh', ['-c', build], { timeout: 300_000 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return images;
}

/**
 * flow-proxy:local built from this working tree (scripts/image-local.sh), tagged `tag` so that
 * another test rebuilding flow-proxy:local meanwhile cannot change what this run deploys.
 */
export async function proxyImage(tag: string): Promise<string> {
  await run('sh', ['scripts/image-local.sh'], { timeout: 600_000, maxBuffer: 16 << 20 });
  await docker('tag', 'flow-proxy:local', tag);
  return tag;
}

export type UpdateOrder = 'stop-first' | 'start-first';

/** The update settings of every backend here (see the top of this file). */
export function updateSettings(order: UpdateOrder): string[] {
  return ['--update-parallelism', '1', '--update-delay', '1s', '--update-order', order, '--update-failure-action', 'pause', '--stop-grace-period', '10s'];
}

/** A 3-replica backend service on `network`, running `image`. */
export async function createBackend(name: string, network: string, image: string, order: UpdateOrder, replicas = 3): Promise<void> {
  await docker('service', 'create', '--detach', '--no-resolve-image', '--name', name, '--network', network, '--replicas', String(replicas), ...updateSettings(order), image);
}

// ---------------------------------------------------------------- Flow Proxy as a Swarm service

export type Plane = 'haproxy' | 'builtin';
/** How the proxy follows the replicas: the Engine API's task list (swarm mode), or DNS only (tasks.NAME). */
export type Follow = 'engine' | 'dns';

export interface ProxyService {
  readonly name: string;
  readonly httpPort: number;
  /** The control API's Docker Flow Proxy endpoints (.../v1/docker-flow-proxy). */
  readonly apiUrl: string;
  /** The API port's root (the dashboard's endpoints). */
  readonly apiRoot: string;
}

/**
 * Flow Proxy as a Swarm service on `network`, published in host mode on free ports.
 * - follow 'engine': MODE=swarm with the Engine's socket mounted, as in the tutorial: task
 *   addresses come from the Engine API's task list (within about a second, with no DNS).
 * - follow 'dns': no socket and no swarm mode, ADDRESS_MODE=tasks: `tasks.NAME` is resolved by
 *   Swarm's DNS (127.0.0.11) every second (the default --resolve-interval for one backend), as
 *   Docker Flow Proxy's `server-template ... resolvers docker` does.
 */
export async function createProxy(name: string, network: string, image: string, plane: Plane, follow: Follow): Promise<ProxyService> {
  const httpPort = await freePort();
  let apiPort = await freePort();
  while (apiPort === httpPort) apiPort = await freePort();
  const followArgs =
    follow === 'engine'
      ? ['-e', 'MODE=swarm', '--mount', 'type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock']
      : ['-e', 'ADDRESS_MODE=tasks'];
  await docker(
    'service', 'create', '--detach', '--no-resolve-image', '--name', name, '--network', network,
    '-e', `DATA_PLANE=${plane}`, '-e', 'LOG_LEVEL=info', '-e', `SERVICE_NAME=${name}`, ...followArgs,
    '--publish', `mode=host,target=80,published=${httpPort}`, '--publish', `mode=host,target=8080,published=${apiPort}`,
    image,
  );
  const apiRoot = `http://127.0.0.1:${apiPort}`;
  const apiUrl = `${apiRoot}/v1/docker-flow-proxy`;
  await waitFor(`proxy ${name}'s API to answer /ping`, () => fetchText(`${apiUrl}/ping`), (t) => t.startsWith('200'), 90_000).catch(async (error: Error) => {
    const tasks = await docker('service', 'ps', name, '--no-trunc', '--format', '{{.CurrentState}} {{.Error}}').catch((e: Error) => e.message);
    throw new Error(`${error.message}\nits tasks:\n${tasks}`);
  });
  return { name, httpPort, apiUrl, apiRoot };
}

/** Routes /PATH to `service`:8080 through the reconfigure API (the tutorial's step). */
export async function routeService(proxy: ProxyService, service: string, servicePath: string): Promise<void> {
  const reply = await fetchText(`${proxy.apiUrl}/reconfigure?serviceName=${service}&servicePath=${servicePath}&port=8080`);
  if (!/^200 .*"Status":"OK"/.test(reply)) throw new Error(`reconfigure of ${service} failed: ${reply}`);
}

/** `STATUS BODY` of a GET, or `unreachable (...)`. */
export async function fetchText(url: string, options: { readonly headers?: Record<string, string>; readonly timeoutMs?: number } = {}): Promise<string> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(options.timeoutMs ?? 3000), ...(options.headers === undefined ? {} : { headers: options.headers }) });
    return `${response.status} ${await response.text()}`;
  } catch (error) {
    return `unreachable (${(error as Error).message})`;
  }
}

/** Removes services, then (once their containers are gone) networks, Docker configs the proxies made, and image tags. */
export async function removeAll(services: readonly string[], networks: readonly string[], tags: readonly string[] = []): Promise<void> {
  if (services.length > 0) await docker('service', 'rm', ...services).catch(() => '');
  // A network can only go once the tasks' containers are gone (a proxy writes its last route copy before it exits).
  for (const network of networks) {
    await waitFor(`network ${network} to be removed`, () => docker('network', 'rm', network).then(() => true, (e: Error) => e.message.includes('not found')), (gone) => gone, 60_000).catch(() => undefined);
  }
  for (const service of services) {
    for (const label of [`com.flow-proxy.routes=${service}`, `com.flow-proxy.cert=${service}`]) {
      const copies = await docker('config', 'ls', '-q', '--filter', `label=${label}`).catch(() => '');
      if (copies !== '') await docker('config', 'rm', ...copies.split('\n')).catch(() => '');
    }
  }
  for (const tag of tags) await docker('rmi', tag).catch(() => '');
}

// ---------------------------------------------------------------- what Swarm reports

export interface TaskState {
  readonly id: string;
  readonly desired: string;
  readonly state: string;
  readonly container: string;
  readonly image: string;
  /** Its addresses on the service's networks (CIDR). */
  readonly addresses: readonly string[];
}

/** Every task of `service` that `docker service ps` lists (the recent history too), in one inspect. */
export async function tasksOf(service: string): Promise<TaskState[]> {
  const ids = (await docker('service', 'ps', service, '--no-trunc', '-q')).split('\n').filter((id) => id !== '');
  if (ids.length === 0) return [];
  const lines = await docker('inspect', '--type', 'task', '--format', '{{.ID}} {{.DesiredState}} {{.Status.State}} {{.Status.ContainerStatus.ContainerID}}|{{.Spec.ContainerSpec.Image}}|{{range .NetworksAttachments}}{{range .Addresses}}{{.}} {{end}}{{end}}', ...ids).catch(() => '');
  return lines
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const [head = '', image = '', addresses = ''] = line.split('|');
      const [id = '', desired = '', state = '', container = ''] = head.trim().split(' ');
      return { id, desired, state, container, image: image.trim(), addresses: addresses.split(' ').filter((a) => a !== '') };
    });
}

/** The service's containers that are still running (old tasks shutting down included). */
export async function runningContainers(service: string): Promise<string[]> {
  return (await docker('ps', '-q', '--no-trunc', '--filter', `label=com.docker.swarm.service.name=${service}`)).split('\n').filter((id) => id !== '');
}

export async function updateState(service: string): Promise<string> {
  return docker('service', 'inspect', '--format', '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}', service);
}

export interface Converged {
  readonly tasks: readonly TaskState[];
  readonly containers: readonly string[];
  readonly update: string;
}

async function swarmView(service: string): Promise<Converged> {
  const [tasks, containers, update] = await Promise.all([tasksOf(service), runningContainers(service), updateState(service)]);
  return { tasks, containers, update };
}

/**
 * Swarm has converged on `replicas` tasks: exactly that many tasks are wanted running and are
 * running, their containers are the only ones of the service still running (the old ones have
 * finished shutting down), no update is in progress, and `extra` holds.
 */
function converged(view: Converged, replicas: number, extra: (running: readonly TaskState[]) => boolean): boolean {
  const wanted = view.tasks.filter((t) => t.desired === 'running');
  const running = wanted.filter((t) => t.state === 'running');
  const ids = new Set(running.map((t) => t.container));
  return (
    wanted.length === replicas &&
    running.length === replicas &&
    view.containers.length === replicas &&
    view.containers.every((c) => ids.has(c)) &&
    view.update !== 'updating' &&
    view.update !== 'rollback_started' &&
    extra(running)
  );
}

// ---------------------------------------------------------------- container events (for diagnosis)

export interface EngineEvent {
  readonly at: number;
  readonly action: string;
  readonly container: string;
  readonly name: string;
}

/** Container events of `service` (create, start, kill, die, destroy ...) as they happen, for timelines. */
export class EventRecorder {
  readonly events: EngineEvent[] = [];
  private readonly child: ChildProcess;

  constructor(service: string) {
    this.child = spawn('docker', ['events', '--filter', 'type=container', '--filter', `label=com.docker.swarm.service.name=${service}`, '--format', '{{json .}}'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let partial = '';
    this.child.stdout?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        try {
          const event = JSON.parse(line) as { Action?: string; id?: string; timeNano?: number; Actor?: { Attributes?: Record<string, string> } };
          if (event.Action?.startsWith('exec_') === true) continue;
          this.events.push({
            at: Math.round((event.timeNano ?? Date.now() * 1e6) / 1e6),
            action: event.Action ?? '?',
            container: (event.id ?? '').slice(0, 12),
            name: event.Actor?.Attributes?.name ?? '',
          });
        } catch {
          // not an event line
        }
      }
    });
  }

  stop(): void {
    if (this.child.exitCode === null) this.child.kill();
  }
}

// ---------------------------------------------------------------- load generators

export interface Failure {
  /** Wall clock, ms. */
  readonly at: number;
  readonly phase: string;
  /** HTTP status, or 0 for a socket error. */
  readonly status: number;
  /** Error code or message, or the start of the response body. */
  readonly detail: string;
  readonly connection: number;
}

export interface PhaseCount {
  readonly phase: string;
  readonly requests: number;
  readonly failures: number;
  /** What failed, by kind ("503 service ... has no reachable replicas", "ECONNRESET"...). */
  readonly kinds: ReadonlyMap<string, number>;
  /** Answers by version ("v1", "v2"). */
  readonly versions: ReadonlyMap<string, number>;
  readonly startedAt: number;
  readonly endedAt: number;
}

export interface Load {
  /** Requests sent from now on count in phase `name`. */
  setPhase(name: string): Promise<void>;
  /** The bodies of the next `count` answers through the proxy (the load's own, or probes). */
  sample(count: number, timeoutMs: number): Promise<string[]>;
  stop(): Promise<PhaseCount[]>;
}

interface MutablePhase {
  phase: string;
  requests: number;
  failures: number;
  kinds: Map<string, number>;
  versions: Map<string, number>;
  startedAt: number;
  endedAt: number;
}

const newPhase = (phase: string): MutablePhase => ({ phase, requests: 0, failures: 0, kinds: new Map(), versions: new Map(), startedAt: Date.now(), endedAt: 0 });
const bump = (map: Map<string, number>, key: string, by = 1) => map.set(key, (map.get(key) ?? 0) + by);

/**
 * `connections` keep-alive connections, each sending GET `url` one after the other, as fast as
 * answers come. Every answer other than a 200, and every socket error or timeout (10 s),
 * counts as a failure and is recorded with its time, phase and detail.
 */
export class NodeLoad implements Load {
  readonly failures: Failure[] = [];
  private readonly phases: MutablePhase[] = [];
  private current: MutablePhase;
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private readonly agents: http.Agent[] = [];
  private waiters: { count: number; bodies: string[]; resolve: (bodies: string[]) => void }[] = [];

  constructor(
    private readonly url: string,
    connections: number,
    firstPhase = STEADY,
  ) {
    this.current = newPhase(firstPhase);
    this.phases.push(this.current);
    for (let i = 0; i < connections; i++) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      this.agents.push(agent);
      this.loops.push(this.loop(i, agent));
    }
  }

  async setPhase(name: string): Promise<void> {
    if (name === this.current.phase) return;
    this.current.endedAt = Date.now();
    this.current = newPhase(name);
    this.phases.push(this.current);
  }

  sample(count: number, timeoutMs: number): Promise<string[]> {
    return new Promise((resolve) => {
      const waiter = { count, bodies: [] as string[], resolve };
      this.waiters.push(waiter);
      setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(waiter.bodies);
      }, timeoutMs).unref();
    });
  }

  async stop(): Promise<PhaseCount[]> {
    this.running = false;
    await Promise.all(this.loops);
    for (const agent of this.agents) agent.destroy();
    this.current.endedAt = Date.now();
    return this.phases;
  }

  private async loop(connection: number, agent: http.Agent): Promise<void> {
    while (this.running) {
      const phase = this.current;
      const outcome = await this.once(agent);
      phase.requests++;
      if (outcome.status === 200) {
        bump(phase.versions, outcome.body.split(' ')[0] ?? '');
        for (const waiter of this.waiters) {
          waiter.bodies.push(outcome.body);
          if (waiter.bodies.length >= waiter.count) waiter.resolve(waiter.bodies);
        }
        this.waiters = this.waiters.filter((w) => w.bodies.length < w.count);
        continue;
      }
      phase.failures++;
      const detail = (outcome.status === 0 ? outcome.body : outcome.body.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim()).slice(0, 120);
      bump(phase.kinds, `${outcome.status === 0 ? 'socket' : outcome.status} ${detail}`);
      this.failures.push({ at: Date.now(), phase: phase.phase, status: outcome.status, detail, connection });
      await sleep(10); // no busy loop while nothing answers
    }
  }

  private once(agent: http.Agent): Promise<{ status: number; body: string }> {
    return new Promise((resolve) => {
      const req = http.get(this.url, { agent, timeout: 10_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (error: NodeJS.ErrnoException) => resolve({ status: 0, body: `response ${error.code ?? error.message}` }));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
      req.on('error', (error: NodeJS.ErrnoException) => resolve({ status: 0, body: error.code ?? error.message }));
    });
  }
}

export interface WrkPhase extends PhaseCount {
  readonly output: string;
}

/**
 * wrk (one thread, `connections` keep-alive connections) run once per phase: at each phase
 * change the running wrk is stopped with SIGINT (it then prints its figures) and a new one
 * starts. Failures are wrk's: responses other than 2xx/3xx (by status, from a Lua script) and
 * socket errors (connect, read, write, timeout). `sample` probes the proxy on a connection of
 * its own; a failed probe counts as a failure of the phase too.
 */
export class WrkLoad implements Load {
  private readonly phases: WrkPhase[] = [];
  private child: { phase: string; startedAt: number; process: ChildProcess; output: Promise<string> } | undefined;
  private readonly probeAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  private probeFailures = new Map<string, Map<string, number>>();
  private script: string | undefined;

  constructor(
    private readonly url: string,
    private readonly connections: number,
  ) {}

  async setPhase(name: string): Promise<void> {
    await this.finishPhase();
    if (this.script === undefined) {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'fp-rolling-wrk-'));
      this.script = path.join(dir, 'statuses.lua');
      await writeFile(this.script, WRK_STATUS_LUA);
    }
    const child = spawn('wrk', ['-t1', `-c${this.connections}`, '-d3600s', '--timeout', '10s', '-s', this.script, this.url], { stdio: ['ignore', 'pipe', 'pipe'] });
    const output = new Promise<string>((resolve) => {
      let text = '';
      child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
      child.once('exit', () => resolve(text));
    });
    this.child = { phase: name, startedAt: Date.now(), process: child, output };
  }

  async sample(count: number, timeoutMs: number): Promise<string[]> {
    const bodies: string[] = [];
    const deadline = Date.now() + timeoutMs;
    while (bodies.length < count && Date.now() < deadline) {
      const outcome = await new Promise<{ status: number; body: string }>((resolve) => {
        const req = http.get(this.url, { agent: this.probeAgent, timeout: 10_000 }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', (error: NodeJS.ErrnoException) => resolve({ status: 0, body: error.code ?? error.message }));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        });
        req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
        req.on('error', (error: NodeJS.ErrnoException) => resolve({ status: 0, body: error.code ?? error.message }));
      });
      if (outcome.status === 200) bodies.push(outcome.body);
      else {
        const phase = this.child?.phase ?? 'none';
        const kinds = this.probeFailures.get(phase) ?? new Map<string, number>();
        this.probeFailures.set(phase, kinds);
        bump(kinds, `probe ${outcome.status === 0 ? 'socket' : outcome.status} ${outcome.body.trim().slice(0, 80)}`);
        await sleep(10);
      }
    }
    return bodies;
  }

  async stop(): Promise<WrkPhase[]> {
    await this.finishPhase();
    this.probeAgent.destroy();
    if (this.script !== undefined) await rm(path.dirname(this.script), { recursive: true, force: true });
    return this.phases;
  }

  private async finishPhase(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    this.child = undefined;
    child.process.kill('SIGINT');
    const output = await child.output;
    const endedAt = Date.now();
    const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
    const kinds = new Map<string, number>();
    for (const [i, kind] of ['connect', 'read', 'write', 'timeout'].entries()) {
      const n = Number(socket?.[i + 1] ?? 0);
      if (n > 0) kinds.set(`socket ${kind}`, n);
    }
    let non2xx = 0;
    for (const [status, count] of wrkStatuses(output)) {
      if (status >= 400) {
        non2xx += count;
        bump(kinds, `status ${status}`, count);
      }
    }
    non2xx = Math.max(non2xx, Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0));
    for (const [kind, n] of this.probeFailures.get(child.phase) ?? []) bump(kinds, kind, n);
    const probeFailed = [...(this.probeFailures.get(child.phase)?.values() ?? [])].reduce((a, b) => a + b, 0);
    const requests = Number(/(\d+) requests in/.exec(output)?.[1] ?? NaN);
    if (Number.isNaN(requests)) throw new Error(`wrk printed no figures for phase ${child.phase}:\n${output}`);
    const socketErrors = socket === null ? 0 : socket.slice(1).reduce((sum, n) => sum + Number(n), 0);
    this.phases.push({
      phase: child.phase,
      requests: requests + probeFailed,
      failures: non2xx + socketErrors + probeFailed,
      kinds,
      versions: new Map(),
      startedAt: child.startedAt,
      endedAt,
      output,
    });
  }
}

// ---------------------------------------------------------------- the sequence

export interface PhaseTiming {
  readonly phase: string;
  /** ms from the phase's command to Swarm's convergence, then to the answers showing it (undefined: they never did). */
  readonly convergedMs: number;
  readonly observedMs: number | undefined;
}

export interface SequenceOptions {
  readonly service: string;
  /** The image `update --image` switches to (the other version than the one running). */
  readonly target: string;
  readonly load: Load;
  /** How long Swarm may take to converge in each phase (beyond it the sequence throws). */
  readonly phaseTimeoutMs?: number;
  /** How long, once Swarm has converged, the answers may take to show it (beyond it: a problem, and the next phase). */
  readonly answersTimeoutMs?: number;
  readonly log?: (line: string) => void;
}

export interface SequenceResult {
  readonly timings: readonly PhaseTiming[];
  /** What the answers through the proxy did not show in time (a replica out of rotation, an old version). */
  readonly problems: readonly string[];
}

/** The first phase: the load runs until every replica has answered. */
export const STEADY = 'steady (3 replicas)';
export const versionOf = (body: string) => body.split(' ')[0] ?? '';
const hostOf = (body: string) => body.trim().split(' ')[1] ?? '';
const tagOf = (image: string) => image.split('@')[0]?.split(':').pop() ?? '';

/** The image the service's spec runs (without a digest). */
export async function serviceImage(service: string): Promise<string> {
  return (await docker('service', 'inspect', '--format', '{{.Spec.TaskTemplate.ContainerSpec.Image}}', service)).split('@')[0] ?? '';
}

/**
 * Puts the backend back to 3 replicas with update order `order` (a spec change that restarts no
 * task), and waits until Swarm has converged on them.
 */
export async function prepareBackend(service: string, order: UpdateOrder, timeoutMs = 60_000): Promise<void> {
  await docker('service', 'update', '--detach', '--no-resolve-image', '--replicas', '3', '--update-order', order, service);
  await waitFor(`${service} at 3 replicas`, () => swarmView(service), (view) => converged(view, 3, () => true), timeoutMs);
}

function summary(bodies: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const body of bodies) bump(counts, body.trim());
  return `${bodies.length} answers: ${JSON.stringify(Object.fromEntries(counts))}`;
}

/**
 * Runs, under the load: a steady phase (until all three replicas answer), `docker service update
 * --force`, `docker service update --image TARGET`, `docker service scale NAME=1`, then `=3`.
 * Each phase ends when Swarm has converged (see `converged`) and the answers through the proxy
 * show it: three replicas answering; only the target version after the image update; one
 * replica after scaling to 1. Answers that do not show it within answersTimeoutMs are recorded
 * as a problem and the sequence goes on, so every phase is measured.
 */
export async function rollingSequence(options: SequenceOptions): Promise<SequenceResult> {
  const { service, target, load } = options;
  const deadline = options.phaseTimeoutMs ?? 60_000;
  const answersDeadline = options.answersTimeoutMs ?? 20_000;
  const log = options.log ?? (() => undefined);
  const version = tagOf(target);
  const timings: PhaseTiming[] = [];
  const problems: string[] = [];

  const phase = async (name: string, command: string[] | undefined, replicas: number, extra: (running: readonly TaskState[]) => boolean, shows: string, answers: (bodies: string[]) => boolean) => {
    await load.setPhase(name);
    const started = Date.now();
    if (command !== undefined) await docker(...command);
    await waitFor(`${name}: Swarm to converge`, () => swarmView(service), (view) => converged(view, replicas, extra), deadline);
    const convergedMs = Date.now() - started;
    const last = await waitFor(`${name}: the answers through the proxy to show it`, () => load.sample(60, 10_000), (b) => b.length === 60 && answers(b), answersDeadline).then(
      () => undefined,
      (error: Error) => error,
    );
    const observedMs = last === undefined ? Date.now() - started : undefined;
    timings.push({ phase: name, convergedMs, observedMs });
    if (last === undefined) log(`${name}: Swarm converged after ${convergedMs} ms, answers showed it after ${observedMs} ms`);
    else {
      const sample = await load.sample(60, 10_000);
      problems.push(`${name}: ${answersDeadline / 1000} s after Swarm converged (${convergedMs} ms), the answers through the proxy still did not show ${shows}; last ${summary(sample)}`);
      log(`${name}: Swarm converged after ${convergedMs} ms, but the answers did not show ${shows} within ${answersDeadline} ms: ${summary(sample)}`);
    }
  };
  const hosts = (bodies: string[]) => new Set(bodies.map(hostOf));

  await phase(STEADY, undefined, 3, () => true, 'three replicas', (b) => hosts(b).size === 3);
  const before = new Set((await tasksOf(service)).map((t) => t.id));
  await phase('update --force', ['service', 'update', '--detach', '--no-resolve-image', '--force', service], 3, (running) => running.every((t) => !before.has(t.id)), 'three replicas', (b) => hosts(b).size === 3);
  const forced = new Set((await tasksOf(service)).map((t) => t.id));
  await phase(
    `update --image ${version}`,
    ['service', 'update', '--detach', '--no-resolve-image', '--image', target, service],
    3,
    (running) => running.every((t) => !forced.has(t.id) && t.image.split('@')[0] === target),
    `three replicas of ${version} only`,
    (b) => b.every((body) => versionOf(body) === version) && hosts(b).size === 3,
  );
  await phase('scale 1', ['service', 'scale', '--detach', `${service}=1`], 1, () => true, 'one replica', (b) => hosts(b).size === 1);
  await phase('scale 3', ['service', 'scale', '--detach', `${service}=3`], 3, () => true, `three replicas of ${version}`, (b) => hosts(b).size === 3 && b.every((body) => versionOf(body) === version));
  return { timings, problems };
}

// ---------------------------------------------------------------- reporting

/** A markdown table: phase, requests, failures, what failed. */
export function phaseTable(rows: readonly { label: string; phases: readonly PhaseCount[] }[]): string {
  const lines = ['| run | phase | requests | failed | what failed |', '|---|---|---:|---:|---|'];
  for (const { label, phases } of rows) {
    for (const p of phases) {
      const kinds = [...p.kinds].map(([kind, n]) => `${n}x ${kind.replace(/\|/g, '/').replace(/\n/g, ' ')}`).join('; ');
      lines.push(`| ${label} | ${p.phase} | ${p.requests} | ${p.failures} | ${kinds} |`);
    }
    const requests = phases.reduce((s, p) => s + p.requests, 0);
    const failed = phases.reduce((s, p) => s + p.failures, 0);
    lines.push(`| ${label} | **all** | **${requests}** | **${failed}** | |`);
  }
  return lines.join('\n');
}

export interface TimelineEntry {
  /** Wall clock, ms. */
  readonly at: number;
  readonly text: string;
}

/**
 * The replica addresses the proxy has in rotation for `service` (its address book, as the
 * dashboard's GET /dashboard/routes shows them), read every `everyMs`: each change is recorded.
 */
export class ReplicaRecorder {
  readonly changes: TimelineEntry[] = [];
  private last = '';
  private running = true;
  private readonly loop: Promise<void>;

  constructor(proxy: ProxyService, service: string, everyMs = 100) {
    this.loop = (async () => {
      while (this.running) {
        const at = Date.now();
        const text = await fetchText(`${proxy.apiRoot}/dashboard/routes?q=${encodeURIComponent(service)}`);
        const replicas = text.startsWith('200 ') ? findReplicas(JSON.parse(text.slice(4)) as unknown, service) : undefined;
        const shown = replicas === undefined ? `(unknown: ${text.slice(0, 60)})` : JSON.stringify(replicas);
        if (shown !== this.last) {
          this.last = shown;
          this.changes.push({ at, text: `proxy replicas ${shown}` });
        }
        await sleep(everyMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

function findReplicas(value: unknown, service: string): readonly string[] | null | undefined {
  if (Array.isArray(value)) {
    for (const item of value) {
      const found = findReplicas(item, service);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  const row = value as { service?: unknown; replicas?: unknown };
  if (row.service === service && 'replicas' in row) return row.replicas as readonly string[] | null;
  for (const child of Object.values(value)) {
    const found = findReplicas(child, service);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** The backend's own log lines (listening, SIGTERM, exiting), at the time each replica wrote them. */
export async function backendLogEntries(service: string): Promise<TimelineEntry[]> {
  const logs = await serviceLogs(service, 1000);
  const entries: TimelineEntry[] = [];
  for (const line of logs.split('\n')) {
    const m = /^\S+ (\d{4}-\d\d-\d\dT\S+Z) (.*)$/.exec(line.trim());
    if (m === null) continue;
    entries.push({ at: Date.parse(m[1] as string), text: `backend: ${m[2] as string}` });
  }
  return entries;
}

/** Which task (container) each address belongs to, for reading the proxy's replica lists. */
export async function addressOwners(service: string): Promise<TimelineEntry[]> {
  return (await tasksOf(service)).map((t) => ({ at: 0, text: `${t.addresses.join(',')} = container ${t.container.slice(0, 12)} (${t.image.split(':').pop() ?? ''}, ${t.state})` }));
}

/**
 * Failed requests, container events and other entries of one run on one time line, in seconds
 * since `origin`. A run of failures of one kind (no more than 1 s apart) is one line.
 */
export function timeline(failures: readonly Failure[], events: readonly EngineEvent[], origin: number, others: readonly TimelineEntry[] = [], limit = 400): string {
  const runs: { first: Failure; last: Failure; count: number }[] = [];
  const open = new Map<string, { first: Failure; last: Failure; count: number }>();
  for (const failure of [...failures].sort((a, b) => a.at - b.at)) {
    const key = `${failure.phase} ${failure.status} ${failure.detail}`;
    const run = open.get(key);
    if (run !== undefined && failure.at - run.last.at <= 1000) {
      run.last = failure;
      run.count++;
    } else {
      const started = { first: failure, last: failure, count: 1 };
      open.set(key, started);
      runs.push(started);
    }
  }
  const at = (ms: number) => `${((ms - origin) / 1000).toFixed(3)} s`;
  const lines = [
    ...runs.map(({ first, last, count }) => ({
      at: first.at,
      text: `FAIL [${first.phase}] ${first.status === 0 ? 'socket' : first.status} ${first.detail}${count === 1 ? ` (conn ${first.connection})` : ` x${count}, until ${at(last.at)}`}`,
    })),
    ...events.map((e) => ({ at: e.at, text: `event ${e.action} ${e.name || e.container} (${e.container})` })),
    ...others,
  ].sort((a, b) => a.at - b.at);
  return lines
    .slice(0, limit)
    .map((l) => `${at(l.at).padStart(10)}  ${l.text}`)
    .join('\n');
}

/** HAProxy's view of the servers that have an address (`show servers state`, spare slots left out), from inside the proxy's container. */
export async function haproxyServers(proxyService: string): Promise<string> {
  const [container] = await runningContainers(proxyService).catch(() => []);
  if (container === undefined) return 'no proxy container running';
  const script = `const s = require('net').connect('/cfg/run/admin.sock'); let o = ''; s.on('data', (d) => (o += d)); s.on('end', () => process.stdout.write(o)); s.on('error', (e) => process.stdout.write(String(e))); s.write('show servers state\\n');`;
  const state = await docker('exec', container, 'node', '-e', script).catch((error: Error) => error.message);
  return state
    .split('\n')
    .filter((line) => line.startsWith('# be_id') || (line.split(' ').length > 5 && !line.startsWith('#') && !line.includes(' 127.0.0.1 ')))
    .join('\n');
}

/** The proxy's and the backend's logs (timestamps), for a report of what went wrong. */
export async function serviceLogs(service: string, tail = 200): Promise<string> {
  return run('docker', ['service', 'logs', '--raw', '--timestamps', '--tail', String(tail), service], { timeout: 30_000, maxBuffer: 16 << 20 }).then(
    ({ stdout, stderr }) => `${stdout}${stderr}`,
    (error: Error) => error.message,
  );
}
