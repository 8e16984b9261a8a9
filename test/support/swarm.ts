/**
 * A real single-node Docker Swarm for tests: dockerd from Debian's docker.io (installed with apt
 * when running as root and missing), started if it does not answer, and a Swarm initialised on
 * loopback. Images cannot be pulled here, so test images are imported from a folder.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { eventually } from './http-client.js';

const run = promisify(execFile);

export async function docker(...args: string[]): Promise<string> {
  const { stdout } = await run('docker', args, { timeout: 60_000 });
  return stdout.trim();
}

async function answers(): Promise<boolean> {
  return docker('info', '--format', '{{.ServerVersion}}').then(
    () => true,
    () => false,
  );
}

export async function ensureSwarm(): Promise<void> {
  const hasDockerd = await run('sh', ['-c', 'command -v dockerd']).then(() => true, () => false);
  if (!hasDockerd) {
    if (process.getuid?.() !== 0) throw new Error('the Swarm tests need dockerd: apt-get install -y docker.io');
    await run('apt-get', ['install', '-y', '--no-install-recommends', 'docker.io'], { timeout: 600_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  if (!(await answers())) {
    const daemon = spawn('dockerd', ['--data-root', '/var/tmp/dk', '-H', 'unix:///var/run/docker.sock', '--pidfile', '/var/tmp/dk.pid'], {
      detached: true,
      stdio: 'ignore',
    });
    daemon.unref();
    for (let i = 0; i < 120 && !(await answers()); i++) await new Promise((resolve) => setTimeout(resolve, 500));
    if (!(await answers())) throw new Error('dockerd did not start');
  }
  if ((await docker('info', '--format', '{{.Swarm.LocalNodeState}}')) !== 'active') {
    await docker('swarm', 'init', '--advertise-addr', '127.0.0.1');
  }
}

/** An image with nothing in it: enough for a service whose spec (labels) is all a test reads. */
export async function emptyImage(): Promise<string> {
  const name = 'flow-proxy-test/empty:1';
  const existing = await docker('image', 'ls', '-q', name);
  if (existing === '') await run('sh', ['-c', `tar -c --files-from /dev/null | docker import - ${name}`]);
  return name;
}

/** An image holding Node and one script, from this machine's own Node binary and its libraries. */
export async function nodeScriptImage(name: string, script: string): Promise<string> {
  const build = `set -e
r=$(mktemp -d); b=$(readlink -f "$(command -v node)")
mkdir -p "$r/usr/local/bin" "$r/app" "$r/tmp"
cp "$b" "$r/usr/local/bin/node"
for l in $(ldd "$b" | grep -o '/[^ ]*'); do mkdir -p "$r$(dirname "$l")"; cp -L "$l" "$r$l"; done
cat > "$r/app/main.js"
tar -C "$r" -c . | docker import -c 'ENTRYPOINT ["/usr/local/bin/node","/app/main.js"]' - ${name} >/dev/null
rm -rf "$r"`;
  await new Promise<void>((resolve, reject) => {
    const child = spawn('sh', ['-c', build], { stdio: ['pipe', 'ignore', 'inherit'] });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`building ${name} failed (${code})`))));
    child.stdin.end(script);
  });
  return name;
}

/** Waits until `check` passes, polling `produce`; throws, naming what was awaited and the last value, at the deadline. */
export async function waitFor<T>(what: string, produce: () => Promise<T>, check: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const last = await eventually(produce, check, timeoutMs);
  if (!check(last)) throw new Error(`waited ${timeoutMs} ms for ${what}; last seen: ${JSON.stringify(last)?.slice(0, 500)}`);
  return last;
}

export interface RunningTask {
  readonly id: string;
  readonly container: string;
}

/** The tasks of `service` that Swarm wants running and reports running, with their containers. */
export async function runningTasks(service: string): Promise<RunningTask[]> {
  const ids = (await docker('service', 'ps', service, '--filter', 'desired-state=running', '--no-trunc', '-q')).split('\n').filter((id) => id !== '');
  const tasks: RunningTask[] = [];
  for (const id of ids) {
    const state = await docker('inspect', '--type', 'task', '--format', '{{.Status.State}} {{.Status.ContainerStatus.ContainerID}}', id).catch(() => '');
    const [status, container] = state.split(' ');
    if (status === 'running' && container !== undefined && container !== '') tasks.push({ id, container });
  }
  return tasks;
}

/** Whether a container is running; false once it stopped or was removed. */
export async function containerRunning(container: string): Promise<boolean> {
  return docker('container', 'inspect', '--format', '{{.State.Running}}', container).then(
    (running) => running === 'true',
    () => false,
  );
}

/**
 * GET `url` from inside a container whose image holds Node (nodeScriptImage, flow-proxy:local):
 * "STATUS BODY", or "unreachable". Tells which container answered, which a published port cannot.
 */
export async function fetchInside(container: string, url: string): Promise<string> {
  const script = `fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(3000) }).then(async (r) => process.stdout.write(r.status + ' ' + (await r.text())), () => process.stdout.write('unreachable'))`;
  return docker('exec', container, 'node', '-e', script).catch(() => 'unreachable');
}
