/**
 * Active health checks of replica addresses, shared by both data planes. The control plane probes
 * every address itself (rather than leaving it to HAProxy's checks or the built-in plane), so both
 * planes eject and readmit replicas the same way, and a plane only asks "which are healthy?".
 *
 * State is kept per key (a service destination, e.g. 'web#0'): two keys naming the same address
 * probe it separately. Keys are few and checks cheap, and sharing would make one key's rise/fall
 * and passive reports leak into another's.
 */
import http from 'node:http';
import net from 'node:net';
import type { Logger } from '../log.js';

export interface HealthCheck {
  /** 'http': GET `path` must answer 2xx or 3xx within timeoutMs; 'tcp': a TCP connection must open within timeoutMs. */
  readonly kind: 'http' | 'tcp';
  readonly path: string; // for http, e.g. '/health' (validated upstream: starts with '/')
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly rise: number; // consecutive successful probes to become healthy
  readonly fall: number; // consecutive failures (probes or reports) to become unhealthy
}

export interface HealthMonitorOptions {
  /** Called (at most once per CHANGE_DELAY_MS) when some key's healthy set changed: planes re-sync their servers. */
  readonly onChange: () => void;
  readonly log?: Pick<Logger, 'info' | 'warn'>;
}

/** An address no longer among a key's candidates is still probed this many intervals, so one that leaves and comes back (a DNS hiccup) keeps its state. */
const FORGET_AFTER_INTERVALS = 3;
const CHANGE_DELAY_MS = 50;
/** Guards against a zero interval turning a probe loop into a busy loop. */
const MIN_INTERVAL_MS = 10;

interface Target {
  readonly address: string;
  healthy: boolean;
  successes: number;
  /** Probes failed in a row. */
  failures: number;
  /** Exchanges the data plane reported failed in a row; a good exchange resets only these, not the probes'. */
  reported: number;
  droppedAt: number | undefined; // when the address left the candidates; undefined while it is one
  epoch: number; // bumped on passive ejection: a probe started before it is stale evidence
  timer: NodeJS.Timeout | undefined;
  abort: (() => void) | undefined; // ends the probe in flight (at most one)
  gone: boolean; // forgotten: a probe still finishing must not reschedule
}

interface KeyState {
  readonly key: string;
  check: HealthCheck;
  readonly port: number;
  readonly targets: Map<string, Target>;
  candidates: readonly string[]; // a copy of the last ones passed in (callers may reuse their arrays)
  result: readonly string[]; // the last answer: returned as is while unchanged, so callers can cache by identity
  dirty: boolean;
  /**
   * The key was just created (the proxy started, or the service appeared): its first addresses
   * need one passing probe, not `rise`, so a restart does not leave a service without replicas for
   * rise intervals. Addresses that join later (a new task) need `rise`.
   */
  fresh: boolean;
}

export class HealthMonitor {
  private readonly keys = new Map<string, KeyState>();
  private changeTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: HealthMonitorOptions) {}

  /**
   * The addresses of `candidates` healthy for (check, port), in candidate order. A new address is
   * probed at once and is not healthy before `rise` probes succeeded (one for the key's first
   * addresses, see KeyState.fresh). A change of kind, path or
   * port restarts the key from scratch (old results say nothing about the new check); other check
   * fields take effect at the next probe. After stop(), health is unknown: candidates are returned.
   */
  healthy(key: string, check: HealthCheck, port: number, candidates: readonly string[]): readonly string[] {
    if (this.stopped) return candidates;
    let state = this.keys.get(key);
    if (state !== undefined && (state.port !== port || state.check.kind !== check.kind || state.check.path !== check.path)) {
      this.forget(key);
      state = undefined;
    }
    if (state === undefined) {
      state = { key, check, port, targets: new Map(), candidates: [], result: [], dirty: true, fresh: true };
      this.keys.set(key, state);
    }
    state.check = check;
    if (!sameList(candidates, state.candidates)) this.follow(state, candidates);
    if (state.dirty) {
      state.dirty = false;
      const targets = state.targets;
      const next = state.candidates.filter((address) => targets.get(address)?.healthy === true);
      if (!sameList(next, state.result)) state.result = next;
    }
    return state.result;
  }

  /**
   * Passive ejection: the data plane saw an exchange with `address` fail (refused, reset, timeout).
   * `fall` consecutive reported failures make it unhealthy until `rise` probes succeed; a reported success resets the
   * failure count but does not count towards `rise` (only probes readmit an address).
   */
  report(key: string, address: string, ok: boolean): void {
    const state = this.keys.get(key);
    const target = state?.targets.get(address);
    if (state === undefined || target === undefined) return;
    if (ok) {
      target.reported = 0;
      return;
    }
    target.successes = 0;
    target.reported += 1;
    if (target.healthy && target.reported >= Math.max(1, state.check.fall)) {
      target.reported = 0;
      this.flip(state, target, false, 'failures reported by the data plane');
      // Probe again at once rather than after a whole interval, so a fluke costs one probe, not
      // minutes of capacity; results of a probe already in flight predate the failures and are ignored.
      target.epoch += 1;
      if (target.abort === undefined) {
        clearTimeout(target.timer);
        this.probe(state, target);
      }
    }
  }

  /** Stops probing the addresses of `key` and forgets them (a removed service). */
  forget(key: string): void {
    const state = this.keys.get(key);
    if (state === undefined) return;
    for (const target of state.targets.values()) retire(target);
    this.keys.delete(key);
  }

  /** Ends every probe and timer; the process can exit. */
  stop(): void {
    this.stopped = true;
    for (const key of [...this.keys.keys()]) this.forget(key);
    clearTimeout(this.changeTimer);
    this.changeTimer = undefined;
  }

  private follow(state: KeyState, candidates: readonly string[]): void {
    const now = Date.now();
    const wanted = new Set(candidates);
    for (const [address, target] of state.targets) if (!wanted.has(address)) target.droppedAt ??= now;
    state.candidates = [...candidates];
    state.dirty = true;
    const head = state.fresh ? Math.max(0, state.check.rise - 1) : 0;
    if (candidates.length > 0) state.fresh = false;
    for (const address of wanted) {
      const known = state.targets.get(address);
      if (known !== undefined) {
        known.droppedAt = undefined;
        continue;
      }
      const target: Target = { address, healthy: false, successes: head, failures: 0, reported: 0, droppedAt: undefined, epoch: 0, timer: undefined, abort: undefined, gone: false };
      state.targets.set(address, target);
      this.probe(state, target);
    }
  }

  /** One probe of `target`, then the next one is scheduled: never two in flight for one (key, address). */
  private probe(state: KeyState, target: Target): void {
    target.timer = undefined;
    const started = Date.now();
    if (target.droppedAt !== undefined && started - target.droppedAt >= FORGET_AFTER_INTERVALS * interval(state.check)) {
      retire(target);
      state.targets.delete(target.address);
      if (state.targets.size === 0 && state.candidates.length === 0 && this.keys.get(state.key) === state) this.keys.delete(state.key);
      return;
    }
    const epoch = target.epoch;
    target.abort = runProbe(state.check, state.port, target.address, (ok, reason) => {
      target.abort = undefined;
      if (target.gone) return;
      const current = epoch === target.epoch;
      if (current) this.record(state, target, ok, reason);
      // Intervals run start to start, so a slow answer does not stretch the period.
      const wait = current ? Math.max(0, started + interval(state.check) - Date.now()) : 0;
      target.timer = setTimeout(() => this.probe(state, target), wait).unref();
    });
  }

  private record(state: KeyState, target: Target, ok: boolean, reason: string): void {
    target.successes = ok ? target.successes + 1 : 0;
    target.failures = ok ? 0 : target.failures + 1;
    if (ok && !target.healthy && target.successes >= Math.max(1, state.check.rise)) this.flip(state, target, true, reason);
    if (!ok && target.healthy && target.failures >= Math.max(1, state.check.fall)) this.flip(state, target, false, reason);
  }

  private flip(state: KeyState, target: Target, healthy: boolean, reason: string): void {
    target.healthy = healthy;
    state.dirty = true;
    const fields = { key: state.key, address: target.address, port: state.port, reason };
    if (healthy) this.options.log?.info(fields, 'replica healthy');
    else this.options.log?.warn(fields, 'replica unhealthy');
    // An address already left out of the candidates changes no answer: nobody needs to re-sync.
    if (target.droppedAt === undefined && this.changeTimer === undefined) {
      this.changeTimer = setTimeout(() => {
        this.changeTimer = undefined;
        try {
          this.options.onChange();
        } catch (error) {
          this.options.log?.warn({ reason: (error as Error).message }, 'health change listener failed');
        }
      }, CHANGE_DELAY_MS).unref();
    }
  }
}

function interval(check: HealthCheck): number {
  return Math.max(MIN_INTERVAL_MS, check.intervalMs);
}

function retire(target: Target): void {
  target.gone = true;
  clearTimeout(target.timer);
  target.abort?.();
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}

/** Starts one probe; `done` is called exactly once. Returns a function that ends the probe early (it then reports a failure). */
function runProbe(check: HealthCheck, port: number, address: string, done: (ok: boolean, reason: string) => void): () => void {
  let settled = false;
  const finish = (ok: boolean, reason: string): void => {
    if (!settled) done(ok, reason);
    settled = true;
  };
  let stream: net.Socket | http.ClientRequest;
  if (check.kind === 'tcp') {
    const socket = net.connect({ host: address, port });
    socket.once('connect', () => {
      finish(true, 'connected');
      socket.destroy();
    });
    stream = socket;
  } else {
    const host = net.isIPv6(address) ? `[${address}]` : address;
    const headers = { host, connection: 'close', 'user-agent': 'flow-proxy-health' };
    const request = http.request({ host: address, port, path: check.path, method: 'GET', agent: false, headers }, (response) => {
      const status = response.statusCode ?? 0;
      response.on('error', () => undefined); // the body is discarded; an error after the status changes nothing
      response.resume();
      finish(status >= 200 && status < 400, `HTTP ${status}`);
    });
    request.end();
    stream = request;
  }
  stream.on('error', (error: Error) => finish(false, error.message));
  // One deadline for the whole probe (the socket's own timeout is per inactivity); it also ends a body that never does.
  const deadline = setTimeout(() => {
    finish(false, `no answer within ${check.timeoutMs} ms`);
    stream.destroy();
  }, check.timeoutMs).unref();
  stream.once('close', () => {
    clearTimeout(deadline);
    finish(false, 'connection closed');
  });
  return () => stream.destroy();
}
