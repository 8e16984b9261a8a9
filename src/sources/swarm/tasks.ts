/**
 * The IPv4 addresses of every running task of every Swarm service, read from the Engine API
 * (GET /tasks, GET /services) instead of DNS, so a replica that starts or stops is in or out of
 * rotation within about a second, without HAProxy reloads.
 *
 * One timer drives every listing: it fires debounceMs after an event (service, container or
 * network), pendingEveryMs after a listing that saw tasks on their way to running (on other nodes
 * they produce no local event), and otherwise pollEveryMs after the previous listing, so a missed
 * event only delays. At most one listing is in flight; the cadence stretches with the listing's own
 * cost (next start >= end + its duration, polls >= 10 times its duration), so 10,000 services cannot
 * keep the Engine busy.
 */
import os from 'node:os';
import type Docker from 'dockerode';
import type { TaskAddressSource } from '../../addresses/model.js';
import type { Logger } from '../../log.js';

/** The parts of a task (GET /tasks) read here. */
export interface SwarmTask {
  readonly ID?: string;
  readonly ServiceID?: string;
  readonly DesiredState?: string;
  readonly Status?: { readonly State?: string; readonly Timestamp?: string };
  readonly NetworksAttachments?: readonly SwarmNetworkAttachment[];
}

export interface SwarmNetworkAttachment {
  readonly Network?: { readonly ID?: string; readonly Spec?: { readonly Name?: string; readonly Ingress?: boolean } };
  /** CIDR strings, "10.0.1.5/24"; IPv6 ones are ignored. */
  readonly Addresses?: readonly string[];
}

/** Service name -> sorted addresses, one entry for every service the Engine knows. */
export type TaskAddresses = ReadonlyMap<string, readonly string[]>;

interface Cidr {
  readonly address: string;
  readonly ip: number;
  readonly mask: number;
}

function ipv4ToInt(address: string): number | undefined {
  const parts = address.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

/** "10.0.1.5/24" -> its address and network mask; undefined for IPv6 or malformed strings. */
export function parseIPv4Cidr(cidr: string): Cidr | undefined {
  const [address, prefixText, extra] = cidr.split('/');
  if (address === undefined || extra !== undefined) return undefined;
  const ip = ipv4ToInt(address);
  const prefix = prefixText === undefined ? 32 : /^\d{1,2}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (ip === undefined || !(prefix >= 0 && prefix <= 32)) return undefined;
  // Shifting by 32 is a no-op in JavaScript, hence the explicit case.
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { address, ip, mask };
}

function sameSubnet(cidr: Cidr, ip: number): boolean {
  return ((cidr.ip & cidr.mask) >>> 0) === ((ip & cidr.mask) >>> 0);
}

const isIngress = (attachment: SwarmNetworkAttachment) => attachment.Network?.Spec?.Ingress === true || attachment.Network?.Spec?.Name === 'ingress';

/**
 * The addresses of each service's running tasks that the proxy can reach. An attachment is
 * reachable when its subnet holds one of `ownAddresses` (the proxy shares that overlay network);
 * when no attachment of any task is reachable (the proxy runs outside the overlays, on the host),
 * every attachment counts. The ingress network never does. One address per task (the lowest of
 * its usable ones), so a task on two shared networks does not get twice the traffic. Every
 * service in `serviceNames` (ID -> name) gets an entry, [] when none of its tasks runs; tasks of
 * services not in it are skipped.
 */
export function reachableTaskAddresses(tasks: readonly SwarmTask[], serviceNames: ReadonlyMap<string, string>, ownAddresses: readonly string[]): Map<string, readonly string[]> {
  const own = ownAddresses.map(ipv4ToInt).filter((ip): ip is number => ip !== undefined);
  const candidates: { readonly service: string; readonly cidrs: readonly { readonly cidr: Cidr; readonly reachable: boolean }[] }[] = [];
  let anyReachable = false;
  for (const task of tasks) {
    if (task.Status?.State !== 'running' || (task.DesiredState !== undefined && task.DesiredState !== 'running')) continue;
    const service = task.ServiceID === undefined ? undefined : serviceNames.get(task.ServiceID);
    if (service === undefined) continue;
    const cidrs: { cidr: Cidr; reachable: boolean }[] = [];
    for (const attachment of task.NetworksAttachments ?? []) {
      if (isIngress(attachment)) continue;
      for (const text of attachment.Addresses ?? []) {
        const cidr = parseIPv4Cidr(text);
        if (cidr === undefined) continue;
        const reachable = own.some((ip) => sameSubnet(cidr, ip));
        anyReachable ||= reachable;
        cidrs.push({ cidr, reachable });
      }
    }
    candidates.push({ service, cidrs });
  }
  const found = new Map<string, string[]>([...serviceNames.values()].map((name) => [name, []]));
  for (const { service, cidrs } of candidates) {
    const usable = cidrs.filter((c) => c.reachable || !anyReachable).map((c) => c.cidr.address).sort();
    if (usable[0] !== undefined) found.get(service)?.push(usable[0]);
  }
  for (const list of found.values()) list.sort();
  return found;
}

/** This process's own non-loopback IPv4 addresses. */
export function ownIPv4Addresses(): string[] {
  return Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).filter((i) => i.family === 'IPv4' && !i.internal).map((i) => i.address));
}

function sameAddresses(a: TaskAddresses, b: TaskAddresses): boolean {
  if (a.size !== b.size) return false;
  for (const [name, list] of a) {
    const other = b.get(name);
    if (other === undefined || other.length !== list.length || list.some((address, i) => other[i] !== address)) return false;
  }
  return true;
}

/**
 * Tasks a node is bringing up: the manager records them running with no event here when the node
 * is another one. Tasks still waiting for a node (new, pending) may wait forever, and one stuck
 * in the same state for long is not worth fast listings either.
 */
const COMING_UP = new Set(['assigned', 'accepted', 'preparing', 'ready', 'starting']);
const COMING_UP_FOR_MS = 30_000;

function comingUp(task: SwarmTask, now: number): boolean {
  if (task.Status?.State === undefined || !COMING_UP.has(task.Status.State)) return false;
  const since = Date.parse(task.Status.Timestamp ?? '');
  return Number.isNaN(since) || now - since < COMING_UP_FOR_MS;
}

export interface SwarmTaskAddressOptions {
  /** Named in logs and errors only. */
  readonly dockerHost?: string;
  /** How long after an event its listing starts, coalescing a burst into one listing. Default 75. */
  readonly debounceMs?: number;
  /** Listing cadence when nothing happens. Default 1000. */
  readonly pollEveryMs?: number;
  /** Cadence while some task is on its way to running (assigned to a node, for less than 30 s). Default 200. */
  readonly pendingEveryMs?: number;
  /** The service list (ID -> name) is re-read on service events, for unknown IDs, and at least this often. Default 5000. */
  readonly servicesEveryMs?: number;
  /** tasksOf answers undefined once listings have failed for this long. Default 3000. */
  readonly staleAfterMs?: number;
  /** One Engine API request longer than this counts as failed. Default 5000. */
  readonly requestTimeoutMs?: number;
  /** The proxy's own IPv4 addresses, which tell which task networks it can reach. Default ownIPv4Addresses. */
  readonly ownAddresses?: () => readonly string[];
}

export interface ListingStats {
  readonly durationMs: number;
  readonly tasks: number;
  readonly services: number;
  /** Whether the service list was read in this listing too. */
  readonly withServices: boolean;
  readonly at: number;
}

interface ServiceSummary {
  readonly ID?: string;
  readonly Spec?: { readonly Name?: string };
}

export class SwarmTaskAddresses implements TaskAddressSource {
  private readonly debounceMs: number;
  private readonly pollEveryMs: number;
  private readonly pendingEveryMs: number;
  private readonly servicesEveryMs: number;
  private readonly staleAfterMs: number;
  private readonly requestTimeoutMs: number;
  private readonly ownAddresses: () => readonly string[];
  private readonly dockerHost: string;
  private readonly listeners: (() => void)[] = [];

  private current: TaskAddresses | undefined;
  private services: ReadonlyMap<string, string> | undefined;
  private servicesAt = 0;
  private servicesStale = true;
  private failingSince: number | undefined;
  private lastError = '';
  private reportedAvailable = false;
  private lastStats: ListingStats | undefined;
  private listingCount = 0;

  private listing: Promise<boolean> | undefined;
  private listingAbort: AbortController | undefined;
  /** Set when a listing is wanted while one is in flight: how soon after it ends. */
  private againWithin: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private dueAt = 0;
  private earliestNext = 0;

  private started = false;
  private stopped = false;
  private events: NodeJS.ReadableStream | undefined;
  private eventsAbort: AbortController | undefined;
  private retryWake: (() => void) | undefined;

  constructor(
    private readonly docker: Docker,
    private readonly log: Logger,
    options: SwarmTaskAddressOptions = {},
  ) {
    this.debounceMs = options.debounceMs ?? 75;
    this.pollEveryMs = options.pollEveryMs ?? 1000;
    this.pendingEveryMs = options.pendingEveryMs ?? 200;
    this.servicesEveryMs = options.servicesEveryMs ?? 5000;
    this.staleAfterMs = options.staleAfterMs ?? 3000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 5000;
    this.ownAddresses = options.ownAddresses ?? ownIPv4Addresses;
    this.dockerHost = options.dockerHost ?? 'the Docker Engine';
  }

  /**
   * Follows the events stream and runs the first listing. Rejects when that listing fails, but
   * keeps listing in the background: tasksOf answers as soon as one succeeds.
   */
  async start(): Promise<void> {
    if (this.started) throw new Error('SwarmTaskAddresses started twice');
    this.started = true;
    void this.follow();
    const ok = await this.list();
    if (!ok) {
      throw new Error(`cannot list Swarm tasks through the Engine API at ${this.dockerHost} (${this.lastError}); task addresses come from DNS until a listing succeeds`);
    }
  }

  tasksOf(service: string): readonly string[] | undefined {
    if (this.current === undefined || this.unavailable(Date.now())) return undefined;
    return this.current.get(service);
  }

  /** Every known service's addresses, as tasksOf answers them; undefined when tasksOf answers undefined. */
  snapshot(): TaskAddresses | undefined {
    if (this.current === undefined || this.unavailable(Date.now())) return undefined;
    return this.current;
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.listingAbort?.abort();
    this.eventsAbort?.abort();
    (this.events as { destroy?: () => void } | undefined)?.destroy?.();
    this.retryWake?.();
  }

  /** The last successful listing: how long it took and how much it read. */
  get lastListing(): ListingStats | undefined {
    return this.lastStats;
  }

  /** How many listings ran (successful or not), for tests and metrics. */
  get listings(): number {
    return this.listingCount;
  }

  private unavailable(now: number): boolean {
    return this.failingSince !== undefined && now - this.failingSince >= this.staleAfterMs;
  }

  /** Wants a listing to start within `delayMs`, never earlier than the cost-based gap allows. */
  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.listing !== undefined) {
      this.againWithin = Math.min(this.againWithin ?? Infinity, delayMs);
      return;
    }
    const now = Date.now();
    const at = Math.max(now + delayMs, this.earliestNext);
    if (this.timer !== undefined && this.dueAt <= at) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.dueAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.list();
    }, at - now);
    this.timer.unref();
  }

  private list(): Promise<boolean> {
    if (this.listing !== undefined) return this.listing;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const started = Date.now();
    let pending = false;
    let ok = false;
    const run = this.listOnce().then(
      (result) => {
        pending = result.pending;
        ok = true;
        return true;
      },
      (error: unknown) => {
        this.failed(started, error instanceof Error ? error.message : String(error));
        return false;
      },
    );
    this.listing = run.finally(() => {
      const ended = Date.now();
      // A failed listing's duration (up to the request timeout) says nothing of what a listing costs.
      const duration = ok ? ended - started : 0;
      this.listing = undefined;
      this.listingCount++;
      this.earliestNext = ended + duration;
      const cadence = Math.max(pending ? this.pendingEveryMs : this.pollEveryMs, 10 * duration);
      const again = this.againWithin;
      this.againWithin = undefined;
      this.schedule(Math.min(again ?? Infinity, cadence));
    });
    return this.listing;
  }

  private async listOnce(): Promise<{ pending: boolean }> {
    const started = Date.now();
    const abort = new AbortController();
    this.listingAbort = abort;
    const timeout = setTimeout(() => abort.abort(), this.requestTimeoutMs);
    timeout.unref();
    try {
      let withServices = this.servicesStale || this.services === undefined || started - this.servicesAt >= this.servicesEveryMs;
      const servicesRead = withServices ? this.readServices(abort.signal) : undefined;
      // Marked fresh before the reads: an event arriving during them marks the list stale again.
      if (withServices) this.servicesStale = false;
      const tasksRead = this.docker.listTasks({ filters: { 'desired-state': ['running'] }, abortSignal: abort.signal }) as Promise<SwarmTask[]>;
      const [tasks, services] = await Promise.all([tasksRead, servicesRead]).catch((error: unknown) => {
        if (withServices) this.servicesStale = true;
        throw error;
      });
      let names = services ?? this.services ?? new Map<string, string>();
      if (!withServices && tasks.some((t) => t.ServiceID !== undefined && !names.has(t.ServiceID))) {
        withServices = true;
        names = await this.readServices(abort.signal);
      }
      if (withServices) {
        this.services = names;
        this.servicesAt = started;
      }
      if (this.stopped) return { pending: false };
      const next = reachableTaskAddresses(tasks, names, this.ownAddresses());
      const changed = this.current === undefined ? next.size > 0 : !sameAddresses(this.current, next) || !this.reportedAvailable;
      const recovered = this.failingSince !== undefined;
      this.current = next;
      this.failingSince = undefined;
      this.reportedAvailable = true;
      this.lastStats = { durationMs: Date.now() - started, tasks: tasks.length, services: names.size, withServices, at: Date.now() };
      if (recovered) this.log.info({ dockerHost: this.dockerHost }, 'Swarm task listing works again');
      if (changed) this.emit();
      const now = Date.now();
      return { pending: tasks.some((t) => comingUp(t, now)) };
    } catch (error) {
      if (abort.signal.aborted && !this.stopped) throw new Error(`no answer within ${this.requestTimeoutMs} ms`);
      throw error;
    } finally {
      clearTimeout(timeout);
      if (this.listingAbort === abort) this.listingAbort = undefined;
    }
  }

  private async readServices(signal: AbortSignal): Promise<Map<string, string>> {
    const listed = (await this.docker.listServices({ abortSignal: signal })) as ServiceSummary[];
    const names = new Map<string, string>();
    for (const service of listed) {
      if (service.ID !== undefined && service.Spec?.Name !== undefined) names.set(service.ID, service.Spec.Name);
    }
    return names;
  }

  private failed(started: number, reason: string): void {
    if (this.stopped) return;
    this.lastError = reason;
    if (this.failingSince === undefined) {
      this.failingSince = started;
      this.log.warn({ reason, dockerHost: this.dockerHost }, 'cannot list Swarm tasks; retrying');
    }
    if (this.reportedAvailable && this.unavailable(Date.now())) {
      this.reportedAvailable = false;
      this.log.warn({ dockerHost: this.dockerHost, forMs: Date.now() - this.failingSince }, 'Swarm task addresses unavailable; falling back to DNS');
      this.emit();
    }
  }

  private emit(): void {
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (error) {
        this.log.error({ reason: (error as Error).message }, 'a task address listener failed');
      }
    }
  }

  private async follow(): Promise<void> {
    let retryMs = 1000;
    let failing = false;
    while (!this.stopped) {
      const abort = new AbortController();
      this.eventsAbort = abort;
      try {
        const stream = (await this.docker.getEvents({
          filters: { type: ['service', 'container', 'network'], event: ['create', 'update', 'remove', 'start', 'die', 'destroy', 'connect', 'disconnect'] },
          abortSignal: abort.signal,
        })) as NodeJS.ReadableStream;
        this.events = stream;
        if (failing) this.log.info({ dockerHost: this.dockerHost }, 'following Swarm events again');
        failing = false;
        retryMs = 1000;
        // Events may have been missed while the stream was down.
        this.servicesStale = true;
        if (this.current !== undefined) this.schedule(this.debounceMs);
        await new Promise<void>((resolve) => {
          let partial = '';
          stream.on('data', (chunk: Buffer | string) => {
            const lines = (partial + chunk.toString()).split('\n');
            partial = lines.pop() ?? '';
            for (const line of lines) this.onEvent(line);
          });
          stream.on('end', resolve);
          stream.on('error', resolve);
          stream.on('close', resolve);
        });
      } catch (error) {
        if (!this.stopped && !failing) this.log.warn({ reason: (error as Error).message, dockerHost: this.dockerHost }, 'cannot follow Swarm events; retrying');
        failing = true;
      }
      this.events = undefined;
      if (this.stopped) break;
      // A dropped stream may mean events were missed, or that the Engine is going away: list now.
      if (this.current !== undefined) this.schedule(this.debounceMs);
      await new Promise<void>((resolve) => {
        this.retryWake = resolve;
        setTimeout(resolve, retryMs).unref();
      });
      this.retryWake = undefined;
      retryMs = Math.min(retryMs * 2, 5000);
    }
  }

  private onEvent(line: string): void {
    if (line.trim() === '') return;
    let type: unknown;
    try {
      type = (JSON.parse(line) as { Type?: unknown }).Type;
    } catch {
      type = undefined;
    }
    if (type !== 'container' && type !== 'network') this.servicesStale = true;
    this.schedule(this.debounceMs);
  }
}
