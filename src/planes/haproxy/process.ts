/**
 * The HAProxy process in master-worker mode. A reload re-executes the master, which starts a
 * new worker that takes the listening sockets over from the old one (no closed port at any
 * moment); the old worker finishes its in-flight requests and exits.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../log.js';
import { parseShowProc, runtimeCommand } from './runtime.js';
import type { ProcessList } from './runtime.js';
import { LineSplitter, scanAccessLine } from './log-stream.js';
import type { AnsweredRequest } from './log-stream.js';

export class HaproxyCheckFailed extends Error {}

/** Runs `haproxy -c`; resolves when the file is valid, else rejects with HAProxy's alerts. */
export function checkConfig(binary: string, configFile: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(binary, ['-c', '-f', configFile], { timeout: 60_000, maxBuffer: 4 << 20 }, (error, _stdout, stderr) => {
      if (error === null) {
        resolve();
        return;
      }
      const alerts = stderr
        .split('\n')
        .filter((line) => line.includes('[ALERT]') && !line.includes('Fatal errors found'))
        .map((line) => line.replace(/^\[ALERT\]\s*\(\d+\)\s*:\s*/, '').trim());
      reject(new HaproxyCheckFailed(alerts.length > 0 ? alerts.join('; ') : (error.message || 'haproxy -c failed')));
    });
  });
}

export async function haproxyInstalled(binary: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(binary, ['-v'], { timeout: 10_000 }, (error) => resolve(error === null));
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class HaproxyProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly masterSocket: string;
  readonly adminSocket: string;
  private readonly pidFile: string;

  constructor(
    private readonly binary: string,
    private readonly configFile: string,
    runDir: string,
    private readonly log: Logger,
    /** Receives the access lines HAProxy writes when access logs are on (render.ts). */
    private readonly onAccessLine?: (line: string, request: AnsweredRequest) => void,
  ) {
    this.masterSocket = path.join(runDir, 'master.sock');
    this.adminSocket = path.join(runDir, 'admin.sock');
    this.pidFile = path.join(runDir, 'haproxy.pid');
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    await mkdir(path.dirname(this.pidFile), { recursive: true, mode: 0o700 });
    await this.stopLeftover();
    const child = spawn(this.binary, ['-W', '-S', `${this.masterSocket},mode,600`, '-f', this.configFile, '-p', this.pidFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    let output = '';
    const message = (line: string) => {
      const trimmed = line.trim();
      if (trimmed === '') return;
      output = `${output}${trimmed}\n`.slice(-4000);
      if (trimmed.startsWith('[ALERT]')) this.log.error({ haproxy: trimmed }, 'haproxy');
      else if (trimmed.startsWith('[WARNING]')) this.log.warn({ haproxy: trimmed }, 'haproxy');
      else this.log.info({ haproxy: trimmed }, 'haproxy');
    };
    const stdout = new LineSplitter((line) => {
      const request = scanAccessLine(line);
      if (request === undefined) message(line);
      else this.onAccessLine?.(line, request);
    });
    const stderr = new LineSplitter(message);
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => stdout.push(chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    try {
      await this.waitUntilReady(() => output);
    } catch (error) {
      child.kill('SIGKILL'); // never leave a half-started HAProxy holding the ports
      throw error;
    }
  }

  private async waitUntilReady(output: () => string): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`haproxy exited at start-up: ${output().trim() || 'no output'}`);
      try {
        const workers = (await this.processes()).workers;
        if (workers.length > 0 && (await this.workerPid()) === workers[0]?.pid) return;
      } catch {
        // sockets not there yet
      }
      await sleep(25);
    }
    throw new Error(`haproxy did not become ready within 15 s: ${output().trim()}`);
  }

  async processes(): Promise<ProcessList> {
    return parseShowProc(await runtimeCommand(this.masterSocket, 'show proc'));
  }

  private async workerPid(): Promise<number | undefined> {
    const info = await runtimeCommand(this.adminSocket, 'show info');
    const pid = /^Pid: (\d+)$/m.exec(info)?.[1];
    return pid === undefined ? undefined : Number(pid);
  }

  /** Reloads the configuration file; resolves once the new worker answers on the admin socket. */
  async reload(): Promise<void> {
    const before = await this.processes();
    await runtimeCommand(this.masterSocket, 'reload').catch(() => '');
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      await sleep(20);
      let now: ProcessList;
      try {
        now = await this.processes();
      } catch {
        continue; // the master is re-executing
      }
      if (now.failedReloads > before.failedReloads) throw new Error('haproxy refused to reload; the previous configuration keeps serving');
      const current = now.workers.find((worker) => worker.reloads === 0);
      if (now.masterReloads > before.masterReloads && current !== undefined) {
        try {
          if ((await this.workerPid()) === current.pid) return;
        } catch {
          // the new worker has not bound its admin socket yet
        }
      }
    }
    throw new Error('haproxy did not finish reloading within 30 s');
  }

  /** Soft stop: listeners close and in-flight requests get `graceSeconds` to finish. */
  async stop(graceSeconds: number): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.running) return;
    child.kill('SIGUSR1');
    const exitedWithin = (ms: number) => Promise.race([this.exited.then(() => true), sleep(ms).then(() => false)]);
    if (!(await exitedWithin(graceSeconds * 1000))) {
      child.kill('SIGTERM');
      if (!(await exitedWithin(5000))) child.kill('SIGKILL');
      await this.exited;
    }
    this.child = undefined;
  }

  /** A master left behind by a Flow Proxy that was killed would keep the ports: stop it first. */
  private async stopLeftover(): Promise<void> {
    let pid: number;
    try {
      pid = Number((await readFile(this.pidFile, 'utf8')).trim());
    } catch {
      return;
    }
    const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (Number.isInteger(pid) && pid > 1 && command.includes('haproxy') && command.includes(this.configFile)) {
      this.log.warn({ pid }, 'stopping haproxy left over from a previous run');
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 100 && (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')) !== ''; i++) await sleep(50);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await rm(this.pidFile, { force: true });
  }
}
