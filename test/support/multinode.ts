/**
 * A real multi-node Docker Swarm on this one machine, for tests (the recipe is in
 * /work/shared/notes/machine-facts.md, "A multi-node Swarm on this one machine").
 *
 * Node K (K = 2, 3, 4 ...) is a dockerd in its own network namespace `fpnK`, joined to the bridge
 * `fpbr0` (10.231.0.1/24) by the veth pair `fpvK` (host side) / `fpvKi` (inside, 10.231.0.K). Each
 * dockerd also runs in its own mount namespace where /var/run/fp-node is its own run folder, so a
 * service that bind-mounts /var/run/fp-node/docker.sock talks to the engine of the node its task
 * runs on. Everything a node keeps is under /var/tmp/fpmn/nK (never /var/tmp/dk, the single-node
 * Swarm of the other tests, and never the host's own engine on /var/run/docker.sock). From the
 * host, node K's engine is unix:///var/tmp/fpmn/nK/run/docker.sock.
 *
 * Nodes are named by K, the last byte of their address, everywhere: `docker(2, ...)` is the first
 * node, the one that runs `swarm init` and is always a manager.
 *
 * Only one multi-node Swarm can exist at a time (one bridge, one subnet): startMultiNodeSwarm takes
 * a machine-wide lock (flock on /var/tmp/fpmn.lock, held by a child process that exits when this
 * process does, so a crashed run never keeps it) and waits for it, then removes whatever a crashed
 * earlier run left (its processes, namespaces, bridge, iptables rule, files) before building.
 *
 * Traffic rule: tests talk only to loopback and to 10.231.0.K of the nodes made here. The nodes
 * have no route beyond 10.231.0.0/24 and never pull (DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1): create
 * services with `--no-resolve-image`, or the manager tries to ask a registry for the digest.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, readdir, readlink, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { docker as hostDocker, ensureSwarm } from './swarm.js';

const run = promisify(execFile);

const ROOT = '/var/tmp/fpmn';
const LOCK = '/var/tmp/fpmn.lock';
const BRIDGE = 'fpbr0';
const SUBNET = '10.231.0';
const NODE_RUN = '/var/run/fp-node';
const FORWARD_RULE = ['FORWARD', '-i', BRIDGE, '-o', BRIDGE, '-j', 'ACCEPT'];
const FIRST = 2;

export type NodeRole = 'manager' | 'worker';

export interface MultiNodeOptions {
  /** How many nodes (default 3, at most 50). */
  readonly nodes?: number;
  /** The role of each node, in order (node 2 first); the first must be 'manager'. Default: one manager, the rest workers. */
  readonly roles?: readonly NodeRole[];
  /** Images of the host engine to load into every node (docker save | docker load). */
  readonly images?: readonly string[];
  /** How long to wait for another multi-node Swarm on this machine to be torn down (default 5 min). */
  readonly lockTimeoutMs?: number;
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
}

export interface MultiNodeSwarm {
  /** Every node, by K: [2, 3, 4] for three nodes. */
  readonly nodes: readonly number[];
  /** The node that ran `swarm init` (2): a manager. */
  readonly manager: number;
  readonly workers: readonly number[];
  /** Runs the docker CLI against node K's engine; resolves to trimmed stdout, rejects with stderr in the message. */
  docker(k: number, ...args: string[]): Promise<string>;
  /** 10.231.0.K */
  address(k: number): string;
  /** Stops node K's engine (its tasks stop with it); the node stays in the Swarm, as a machine that went down. */
  stopNode(k: number): Promise<void>;
  /** Starts node K's engine again (same data, same Swarm membership); resolves when the engine answers and its Swarm state is active. */
  startNode(k: number): Promise<void>;
  /** Cuts node K off the network (its veth goes down); processes keep running. */
  cutNode(k: number): Promise<void>;
  /** Puts node K back on the network. */
  restoreNode(k: number): Promise<void>;
  /** Removes everything: engines, containers, namespaces, bridge, iptables rule, files, lock. Safe to call more than once. */
  teardown(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const nodeDir = (k: number) => `${ROOT}/n${k}`;
const netns = (k: number) => `fpn${k}`;
const vethOut = (k: number) => `fpv${k}`;
const vethIn = (k: number) => `fpv${k}i`;
const socketOf = (k: number) => `${nodeDir(k)}/run/docker.sock`;

async function sh(command: string, args: readonly string[], timeout = 30_000): Promise<string> {
  const { stdout } = await run(command, [...args], { timeout, maxBuffer: 16 << 20 });
  return stdout.trim();
}

const quietly = <T>(promise: Promise<T>): Promise<T | undefined> => promise.catch(() => undefined);

/** Runs the docker CLI against node K's engine. */
async function nodeDocker(k: number, args: readonly string[], timeout = 60_000): Promise<string> {
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: `unix://${socketOf(k)}` };
  delete env.DOCKER_CONTEXT;
  const { stdout } = await run('docker', [...args], { env, timeout, maxBuffer: 16 << 20 });
  return stdout.trim();
}

/** Thrown by an `until` check to stop waiting at once. */
class GiveUp extends Error {}

/** Polls `check` until it returns true (a thrown error counts as not yet, except GiveUp); throws at the deadline with the last error. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs: number, intervalMs = 250): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      if (await check()) return;
      last = '';
    } catch (error) {
      if (error instanceof GiveUp) throw error;
      last = (error as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${what}${last === '' ? '' : `; last error: ${last.slice(0, 500)}`}`);
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------- processes

interface Proc {
  readonly pid: number;
  readonly ppid: number;
  readonly state: string;
  readonly net: string;
}

async function processes(): Promise<Proc[]> {
  const found: Proc[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const text = await readFile(`/proc/${name}/stat`, 'utf8');
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      const net = await readlink(`/proc/${name}/ns/net`).catch(() => '');
      found.push({ pid: Number(name), state: fields[0] ?? '', ppid: Number(fields[1]), net });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Whether `pid` runs (a zombie counts as gone). */
async function alive(pid: number): Promise<boolean> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2, text.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function readPid(file: string): Promise<number | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 1 ? pid : undefined;
}

/** The dockerd of node K, if its pid file names a live dockerd of ours. */
async function enginePid(k: number): Promise<number | undefined> {
  const pid = await readPid(`${nodeDir(k)}/d.pid`);
  if (pid === undefined || !(await alive(pid))) return undefined;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.includes(`${nodeDir(k)}/data`) ? pid : undefined;
}

/**
 * Every live process of node K: those in its network namespace (dockerd, containerd, shims,
 * docker-proxy), its dockerd by pid file, and all their descendants (the containers, which have
 * network namespaces of their own).
 */
async function nodeProcesses(k: number): Promise<number[]> {
  const ino = await stat(`/var/run/netns/${netns(k)}`).then((s) => `net:[${s.ino}]`, () => undefined);
  const all = (await processes()).filter((p) => p.state !== 'Z' && p.pid !== process.pid);
  const tree = new Set<number>(all.filter((p) => ino !== undefined && p.net === ino).map((p) => p.pid));
  const engine = await enginePid(k);
  if (engine !== undefined) tree.add(engine);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) {
      if (!tree.has(p.pid) && tree.has(p.ppid)) {
        tree.add(p.pid);
        grew = true;
      }
    }
  }
  return [...tree];
}

/** SIGKILLs every process of node K and waits until they are gone. */
async function killNode(k: number): Promise<void> {
  await until(
    `the processes of node ${k} to be gone after SIGKILL`,
    async () => {
      const pids = await nodeProcesses(k);
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      return pids.length === 0;
    },
    10_000,
  );
}

// ---------------------------------------------------------------- the machine-wide lock

interface Lock {
  release(): Promise<void>;
}

/** Holds flock on LOCK in a child (`cat` reading our pipe): released when we end the pipe or this process dies. */
async function acquireLock(timeoutMs: number): Promise<Lock> {
  const child = spawn('flock', ['-w', String(Math.ceil(timeoutMs / 1000)), LOCK, 'sh', '-c', 'echo locked; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`another multi-node Swarm held ${LOCK} for ${timeoutMs} ms (flock exit ${code}) ${stderr}`)));
  });
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr] as const) (stream as unknown as { unref?: () => void }).unref?.();
  return {
    release: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve();
        }, 5000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.stdin.end();
      }),
  };
}

// ---------------------------------------------------------------- network

/** How many copies of our FORWARD rule there are (a crashed run may have left one). */
async function iptablesRuleCount(): Promise<number> {
  let count = 0;
  const rules = await sh('iptables', ['-w', '-S', 'FORWARD']).catch(() => '');
  for (const line of rules.split('\n')) if (line.trim() === `-A FORWARD -i ${BRIDGE} -o ${BRIDGE} -j ACCEPT`) count++;
  return count;
}

async function linkExists(name: string): Promise<boolean> {
  return sh('ip', ['link', 'show', name]).then(() => true, () => false);
}

async function ourNamespaces(): Promise<number[]> {
  const list = await sh('ip', ['netns', 'list']).catch(() => '');
  return list
    .split('\n')
    .map((line) => /^fpn(\d+)\b/.exec(line.trim())?.[1])
    .filter((k): k is string => k !== undefined)
    .map(Number);
}

async function leftoverNodes(): Promise<number[]> {
  const fromDirs = (await readdir(ROOT).catch(() => [] as string[])).map((name) => /^n(\d+)$/.exec(name)?.[1]).filter((k): k is string => k !== undefined).map(Number);
  return [...new Set([...fromDirs, ...(await ourNamespaces())])].sort((a, b) => a - b);
}

/**
 * What containers killed with their node (SIGKILL, no clean stop) leave outside the node's own
 * folder, found by the container IDs in that folder: their cgroups (empty now; rmdir removes only
 * empty ones), and their shims' sockets in the host's /run/containerd/s, named
 * sha256(containerd address / namespace / container ID) by containerd 1.6.
 */
async function removeContainerLeftovers(k: number): Promise<void> {
  const ids = (await readdir(`${nodeDir(k)}/data/containers`).catch(() => [] as string[])).filter((id) => /^[0-9a-f]{64}$/.test(id));
  if (ids.length === 0) return;
  const controllers = (await readdir('/sys/fs/cgroup').catch(() => [] as string[])).map((c) => `/sys/fs/cgroup/${c}/docker`);
  const cgroups = [...controllers, '/sys/fs/cgroup/docker'].flatMap((parent) => ids.map((id) => `${parent}/${id}`));
  await Promise.all(cgroups.map((dir) => rmdir(dir).catch(() => undefined)));
  const address = `${nodeDir(k)}/exec/containerd/containerd.sock`;
  const sockets = ids.map((id) => `/run/containerd/s/${createHash('sha256').update(path.join(address, 'moby', id)).digest('hex')}`);
  await Promise.all(sockets.map((socket) => rm(socket, { force: true }).catch(() => undefined)));
}

/** Removes everything of ours on the machine (nodes listed or found), collecting what failed. */
async function removeAll(nodes: readonly number[], problems: string[]): Promise<void> {
  const all = [...new Set([...nodes, ...(await leftoverNodes())])];
  await Promise.all(all.map((k) => killNode(k).catch((error: Error) => problems.push(error.message))));
  await Promise.all(all.map((k) => removeContainerLeftovers(k)));
  for (const k of all) {
    if ((await ourNamespaces()).includes(k)) await sh('ip', ['netns', 'del', netns(k)]).catch((error: Error) => problems.push(`ip netns del ${netns(k)}: ${error.message}`));
    if (await linkExists(vethOut(k))) await sh('ip', ['link', 'del', vethOut(k)]).catch((error: Error) => problems.push(`ip link del ${vethOut(k)}: ${error.message}`));
  }
  if (await linkExists(BRIDGE)) await sh('ip', ['link', 'del', BRIDGE]).catch((error: Error) => problems.push(`ip link del ${BRIDGE}: ${error.message}`));
  for (let i = (await iptablesRuleCount()); i > 0; i--) await sh('iptables', ['-w', '-D', ...FORWARD_RULE]).catch((error: Error) => problems.push(`iptables -D: ${error.message}`));
  await rm(ROOT, { recursive: true, force: true, maxRetries: 3 }).catch((error: Error) => problems.push(`rm -rf ${ROOT}: ${error.message}`));
  await rmdir(NODE_RUN).catch(() => undefined);
}

// ---------------------------------------------------------------- engines

async function ensureTools(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the multi-node Swarm needs root (network namespaces, a bridge, iptables)');
  const has = (binary: string) => sh('sh', ['-c', `command -v ${binary}`]).then(() => true, () => false);
  if (!(await has('dockerd'))) {
    await run('apt-get', ['install', '-y', '--no-install-recommends', 'docker.io'], { timeout: 600_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  for (const binary of ['ip', 'iptables', 'nsenter', 'unshare', 'flock', 'docker']) {
    if (!(await has(binary))) throw new Error(`the multi-node Swarm needs ${binary}`);
  }
}

async function createNetwork(nodes: readonly number[]): Promise<void> {
  await sh('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
  await sh('ip', ['addr', 'add', `${SUBNET}.1/24`, 'dev', BRIDGE]);
  await sh('ip', ['link', 'set', BRIDGE, 'up']);
  // The host engine's FORWARD policy is DROP, and bridged frames go through iptables (br_netfilter).
  await sh('iptables', ['-w', '-I', ...FORWARD_RULE]);
  for (const k of nodes) {
    await sh('ip', ['netns', 'add', netns(k)]);
    await sh('ip', ['link', 'add', vethOut(k), 'type', 'veth', 'peer', 'name', vethIn(k)]);
    await sh('ip', ['link', 'set', vethIn(k), 'netns', netns(k)]);
    await sh('ip', ['link', 'set', vethOut(k), 'master', BRIDGE]);
    await sh('ip', ['link', 'set', vethOut(k), 'up']);
    // nsenter, not `ip netns exec`: the latter remounts /sys, which dockerd later trips on.
    const inside = (...args: string[]) => sh('nsenter', [`--net=/var/run/netns/${netns(k)}`, 'ip', ...args]);
    await inside('addr', 'add', `${SUBNET}.${k}/24`, 'dev', vethIn(k));
    await inside('link', 'set', vethIn(k), 'up');
    await inside('link', 'set', 'lo', 'up');
  }
}

/** Starts node K's dockerd in its network namespace and a private mount namespace; resolves when it answers. */
async function startEngine(k: number, children: Map<number, ChildProcess>): Promise<void> {
  const dir = nodeDir(k);
  await Promise.all(['data', 'exec', 'run'].map((sub) => mkdir(`${dir}/${sub}`, { recursive: true })));
  await mkdir(NODE_RUN, { recursive: true });
  await writeFile(`${dir}/daemon.json`, '{}\n');
  await rm(`${dir}/d.pid`, { force: true });
  await rm(socketOf(k), { force: true });
  // After a SIGKILL, containerd's pid may still name a zombie that init has not reaped yet: dockerd
  // would take it for a running containerd and wait for its dead socket until it gives up.
  await rm(`${dir}/exec/containerd/containerd.pid`, { force: true });
  const dockerd = [
    'dockerd', '--config-file', `${dir}/daemon.json`, '--data-root', `${dir}/data`, '--exec-root', `${dir}/exec`,
    '-H', `unix://${NODE_RUN}/docker.sock`, '--pidfile', `${dir}/d.pid`,
  ].join(' ');
  // Inside the new mount namespace /var/run/fp-node is this node's run folder. A system containerd
  // socket, if there ever is one, is hidden so that each dockerd runs its own containerd.
  const script = `set -e
mount --bind ${dir}/run ${NODE_RUN}
if [ -S /run/containerd/containerd.sock ]; then mount -t tmpfs none /run/containerd; fi
exec ${dockerd}`;
  const log = openSync(`${dir}/log`, 'a');
  try {
    const child = spawn('nsenter', [`--net=/var/run/netns/${netns(k)}`, 'unshare', '-m', '--propagation', 'private', 'sh', '-c', script], {
      detached: true,
      stdio: ['ignore', log, log],
      // Tasks use the images loaded here: no pull attempt first (the node has no route out anyway).
      env: { ...process.env, DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: '1' },
    });
    child.unref();
    children.set(k, child);
  } finally {
    closeSync(log);
  }
  const child = children.get(k);
  await until(
    `node ${k}'s dockerd to answer`,
    async () => {
      if (child?.exitCode !== null && child?.exitCode !== undefined) throw new GiveUp(`dockerd of node ${k} exited (${child.exitCode})`);
      await nodeDocker(k, ['info', '--format', '{{.ServerVersion}}'], 10_000);
      return true;
    },
    60_000,
  ).catch(async (error: Error) => {
    throw new Error(`${error.message}\n${await tail(`${dir}/log`, 30)}`);
  });
}

/** The last `lines` lines of a dockerd log, without gRPC's connection chatter. */
async function tail(file: string, lines: number): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter((line) => !line.includes('[core]')).slice(-lines - 1).join('\n');
}

/** SIGTERMs node K's dockerd and waits until it exits; SIGKILLs the whole node after `graceMs`. */
async function stopEngine(k: number, graceMs: number): Promise<void> {
  const pid = await enginePid(k);
  if (pid !== undefined) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
    // Past the grace period, killNode below takes it down.
    await until(`node ${k}'s dockerd to exit`, async () => !(await alive(pid)), graceMs).catch(() => undefined);
  }
  // What the engine did not take down with it (containerd, shims, containers) goes now.
  await killNode(k);
}

/** Loads host images into nodes: one `docker save` to a file, then `docker load` on every node at once. */
async function loadInto(images: readonly string[], nodes: readonly number[]): Promise<void> {
  if (images.length === 0 || nodes.length === 0) return;
  await mkdir(ROOT, { recursive: true });
  const file = path.join(ROOT, `images-${process.pid}-${Date.now()}.tar`);
  try {
    await hostDocker('save', '-o', file, ...images);
    await Promise.all(nodes.map((k) => nodeDocker(k, ['load', '-q', '-i', file], 300_000)));
  } finally {
    await rm(file, { force: true });
  }
}

// ---------------------------------------------------------------- the Swarm

export async function startMultiNodeSwarm(options: MultiNodeOptions = {}): Promise<MultiNodeSwarm> {
  const count = options.nodes ?? 3;
  if (!Number.isInteger(count) || count < 1 || count > 50) throw new Error(`nodes must be 1 to 50, not ${count}`);
  const roles: NodeRole[] = options.roles !== undefined ? [...options.roles] : Array.from({ length: count }, (_, i) => (i === 0 ? 'manager' : 'worker'));
  if (roles.length !== count) throw new Error(`roles has ${roles.length} entries for ${count} nodes`);
  if (roles[0] !== 'manager') throw new Error('the first node (2) runs swarm init: its role must be manager');
  const log = options.log ?? (() => undefined);
  const nodes = Array.from({ length: count }, (_, i) => FIRST + i);
  const roleOf = new Map(nodes.map((k, i) => [k, roles[i] as NodeRole]));
  const manager = FIRST;
  const children = new Map<number, ChildProcess>();
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;

  await ensureTools();
  const lock = await acquireLock(options.lockTimeoutMs ?? 300_000);
  let tornDown = false;

  const teardown = async (): Promise<void> => {
    if (tornDown) return;
    tornDown = true;
    const problems: string[] = [];
    try {
      const t0 = Date.now();
      // A node cut off would wait for its managers while leaving.
      await Promise.all(nodes.map((k) => quietly(sh('ip', ['link', 'set', vethOut(k), 'up']))));
      // Leaving force-removes the node's task containers, so each engine then stops quickly.
      await Promise.all(
        nodes.map(async (k) => {
          if ((await enginePid(k)) === undefined) return;
          await quietly(nodeDocker(k, ['swarm', 'leave', '--force'], 20_000));
          await stopEngine(k, 15_000).catch((error: Error) => problems.push(error.message));
        }),
      );
      await removeAll(nodes, problems);
      log(`multi-node Swarm removed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    } finally {
      await lock.release();
    }
    if (problems.length > 0) throw new Error(`multi-node Swarm teardown left problems:\n${problems.join('\n')}`);
  };

  try {
    const stale: string[] = [];
    await removeAll(nodes, stale);
    if (stale.length > 0) throw new Error(`could not remove what an earlier multi-node Swarm left:\n${stale.join('\n')}`);
    await mkdir(ROOT, { recursive: true });
    await createNetwork(nodes);
    log('network ready');

    const images = options.images ?? [];
    // The host engine holds the images to load; it may not be running yet.
    const hostReady = images.length > 0 ? ensureSwarm() : Promise.resolve();
    await Promise.all(nodes.map((k) => startEngine(k, children)));
    log(`${count} engines answer`);

    await nodeDocker(manager, ['swarm', 'init', '--advertise-addr', `${SUBNET}.${manager}`, '--listen-addr', `${SUBNET}.${manager}:2377`]);
    const token = {
      manager: await nodeDocker(manager, ['swarm', 'join-token', '-q', 'manager']),
      worker: await nodeDocker(manager, ['swarm', 'join-token', '-q', 'worker']),
    };
    const join = (k: number) =>
      nodeDocker(k, ['swarm', 'join', '--advertise-addr', `${SUBNET}.${k}`, '--listen-addr', `${SUBNET}.${k}:2377`, '--token', token[roleOf.get(k) as NodeRole], `${SUBNET}.${manager}:2377`], 120_000);
    const others = nodes.filter((k) => k !== manager);
    const joining = (async () => {
      // Managers one at a time (each changes the Raft membership), workers all at once.
      for (const k of others.filter((n) => roleOf.get(n) === 'manager')) await join(k);
      await Promise.all(others.filter((n) => roleOf.get(n) === 'worker').map(join));
    })();
    await Promise.all([joining, hostReady.then(() => loadInto(images, nodes))]);
    log('nodes joined, images loaded');

    await until(
      `all ${count} nodes Ready in the Swarm`,
      async () => {
        const states = (await nodeDocker(manager, ['node', 'ls', '--format', '{{.Status}} {{.Availability}}'])).split('\n');
        return states.length === count && states.every((s) => s === 'Ready Active');
      },
      60_000,
    );
    log(`multi-node Swarm ready in ${elapsed()}`);
  } catch (error) {
    const logs = await Promise.all(nodes.map(async (k) => `--- node ${k} dockerd log:\n${await tail(`${nodeDir(k)}/log`, 15)}`));
    await teardown().catch((cleanup: Error) => logs.push(cleanup.message));
    (error as Error).message += `\n${logs.join('\n')}`;
    throw error;
  }

  const check = (k: number): number => {
    if (!roleOf.has(k)) throw new Error(`no node ${k}: the nodes are ${nodes.join(', ')}`);
    return k;
  };

  return {
    nodes,
    manager,
    workers: nodes.filter((k) => roleOf.get(k) === 'worker'),
    docker: (k, ...args) => nodeDocker(check(k), args),
    address: (k) => `${SUBNET}.${check(k)}`,
    stopNode: async (k) => {
      await stopEngine(check(k), 30_000);
    },
    startNode: async (k) => {
      check(k);
      if ((await enginePid(k)) !== undefined) throw new Error(`node ${k}'s dockerd is running`);
      await killNode(k); // whatever a stopped engine left running
      await startEngine(k, children);
      await until(`node ${k} to be back in the Swarm`, async () => (await nodeDocker(k, ['info', '--format', '{{.Swarm.LocalNodeState}}'])) === 'active', 60_000);
    },
    cutNode: async (k) => {
      await sh('ip', ['link', 'set', vethOut(check(k)), 'down']);
    },
    restoreNode: async (k) => {
      await sh('ip', ['link', 'set', vethOut(check(k)), 'up']);
    },
    teardown,
  };
}

// ---------------------------------------------------------------- images

async function newestMtime(target: string): Promise<number> {
  const info = await stat(target).catch(() => undefined);
  if (info === undefined) return 0;
  if (!info.isDirectory()) return info.mtimeMs;
  let newest = info.mtimeMs;
  for (const entry of await readdir(target)) newest = Math.max(newest, await newestMtime(path.join(target, entry)));
  return newest;
}

/**
 * flow-proxy:local on the host engine, built with scripts/image-local.sh unless it exists and is
 * newer than everything it is built from (src/, package files, the script). Not compared with
 * dist/: the suite's global set-up compiles dist/ again at every run.
 */
export async function flowProxyImage(): Promise<string> {
  await ensureSwarm();
  const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const created = await hostDocker('image', 'inspect', '--format', '{{.Created}}', 'flow-proxy:local').then(
    (text) => Date.parse(text.replace(/(\.\d{3})\d*/, '$1')),
    () => 0,
  );
  const sources = Math.max(...(await Promise.all(['src', 'package.json', 'package-lock.json', 'scripts/image-local.sh'].map((p) => newestMtime(path.join(repo, p))))));
  if (!(created > sources)) await run('sh', ['scripts/image-local.sh'], { cwd: repo, timeout: 600_000, maxBuffer: 16 << 20 });
  return 'flow-proxy:local';
}
