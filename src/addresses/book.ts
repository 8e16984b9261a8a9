/**
 * Host name -> IPv4 addresses for every backend the route table needs, kept fresh in the
 * background so no request waits on a lookup (except the very first one to a new name), and
 * shared by both data planes. Addresses come from, in order:
 *   - an IPv4 literal (outboundHostname=10.0.0.5) as is;
 *   - for `tasks.NAME`, the Docker Engine's list of running tasks when it is reachable (swarm
 *     mode): a replica that starts or stops is seen within a second, without DNS;
 *   - DNS: the system resolver (getaddrinfo, so /etc/hosts works) or the --dns-servers given.
 * A name that stops resolving keeps its last addresses for a few refreshes (as HAProxy's "hold"
 * settings), so a DNS hiccup does not become a 503.
 */
import { promises as dns } from 'node:dns';
import net from 'node:net';
import type { Logger } from '../log.js';
import { resolveIntervalFor } from './resolve-interval.js';
import type { TaskAddressSource, WantedName } from './model.js';

export interface AddressEntry {
  addresses: readonly string[];
  /** Failed refreshes in a row. */
  failures: number;
}

export interface AddressBookOptions {
  /** ip:port of DNS servers; empty: the system resolver. */
  readonly dnsServers: readonly string[];
  /** Seconds between lookups of each name; undefined scales with the number of names (resolveIntervalFor). */
  readonly resolveInterval: number | undefined;
  /** Swarm task addresses (swarm mode); undefined: DNS only. */
  readonly tasks?: TaskAddressSource;
  readonly log: Logger;
}

const HOLD_FAILURES = 3;
const NOT_FOUND = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN', 'ENONAME', 'EAI_NONAME', 'EAI_NODATA']);
/** The refresh timer's period: each tick refreshes the names that are due, so 10,000 names are spread over the interval. */
const TICK_MS = 250;
const TASKS_PREFIX = 'tasks.';

export type AddressListener = (changed: ReadonlySet<string>) => void;

export class AddressBook {
  private readonly resolver: dns.Resolver | undefined;
  private readonly entries = new Map<string, AddressEntry>();
  private readonly pending = new Map<string, Promise<AddressEntry>>();
  /** Names followed, with how many addresses each may use and how many destinations want it. */
  private readonly wanted = new Map<string, { limit: number; users: number }>();
  /** Walks `wanted` in turn; refreshed names are due again after the interval. */
  private ticker: Iterator<string> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners: AddressListener[] = [];
  private changed = new Set<string>();
  private notifying = false;

  constructor(private readonly options: AddressBookOptions) {
    if (options.dnsServers.length > 0) {
      this.resolver = new dns.Resolver({ timeout: 1000, tries: 2 });
      this.resolver.setServers([...options.dnsServers]);
    }
    options.tasks?.onChange(() => this.refreshTaskNames());
  }

  /** Called, coalesced, with the names whose addresses changed. */
  onChange(listener: AddressListener): void {
    this.listeners.push(listener);
  }

  /**
   * Follows `host` for one more destination (several may share a host): it is looked up at once
   * if new, then again every interval. The cost does not depend on how many names are followed.
   */
  want(host: WantedName): void {
    const known = this.wanted.get(host.name);
    if (known !== undefined) {
      known.users++;
      if (known.limit === host.limit) return;
      known.limit = host.limit;
    } else this.wanted.set(host.name, { limit: host.limit, users: 1 });
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.tick(), TICK_MS);
      this.timer.unref();
    }
    void this.resolve(host.name);
  }

  /** One destination less wants `name`; once none does, it is forgotten. */
  unwant(name: string): void {
    const known = this.wanted.get(name);
    if (known === undefined || --known.users > 0) return;
    this.wanted.delete(name);
    this.entries.delete(name);
  }

  /** Resolves once each name has been looked up at least once (or `timeoutMs` passed). */
  async settled(names: Iterable<string>, timeoutMs: number): Promise<void> {
    const lookups = [...names].filter((name) => !this.entries.has(name)).map((name) => this.resolve(name));
    if (lookups.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(lookups), new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  /** Current addresses, or undefined when the name was never resolved yet. */
  addresses(name: string): readonly string[] | undefined {
    return this.entries.get(name)?.addresses;
  }

  /** Cached entry, or undefined when the name was never resolved yet. */
  cached(name: string): AddressEntry | undefined {
    return this.entries.get(name);
  }

  resolve(name: string): Promise<AddressEntry> {
    let pending = this.pending.get(name);
    if (pending === undefined) {
      pending = this.refresh(name).finally(() => this.pending.delete(name));
      this.pending.set(name, pending);
    }
    return pending;
  }

  private tick(): void {
    const count = this.wanted.size;
    if (count === 0) return;
    const refreshSeconds = resolveIntervalFor(count, this.options.resolveInterval);
    const due = Math.min(count, Math.ceil((count * TICK_MS) / (refreshSeconds * 1000)));
    for (let i = 0; i < due; i++) {
      let step = this.ticker?.next();
      if (step === undefined || step.done === true) {
        this.ticker = this.wanted.keys();
        step = this.ticker.next();
      }
      if (step.done !== true) void this.resolve(step.value);
    }
  }

  private refreshTaskNames(): void {
    for (const name of this.wanted.keys()) if (name.startsWith(TASKS_PREFIX)) void this.resolve(name);
  }

  private async lookup(name: string): Promise<string[]> {
    if (net.isIPv4(name)) return [name];
    if (name.startsWith(TASKS_PREFIX)) {
      const tasks = this.options.tasks?.tasksOf(name.slice(TASKS_PREFIX.length));
      if (tasks !== undefined) return [...tasks];
    }
    if (this.resolver !== undefined) return this.resolver.resolve4(name);
    const found = await dns.lookup(name, { all: true, family: 4 });
    return [...new Set(found.map((entry) => entry.address))];
  }

  private async refresh(name: string): Promise<AddressEntry> {
    const entry = this.entries.get(name) ?? { addresses: [], failures: 0 };
    const before = this.entries.has(name) ? entry.addresses : undefined;
    try {
      const found = (await this.lookup(name)).sort().slice(0, this.wanted.get(name)?.limit ?? 1);
      if (before === undefined || !sameList(before, found)) entry.addresses = found;
      entry.failures = 0;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? '';
      entry.failures++;
      if (entry.failures > HOLD_FAILURES && entry.addresses.length > 0) entry.addresses = [];
      if (!NOT_FOUND.has(code)) this.options.log.warn({ name, code }, 'address lookup failed');
    }
    if (this.wanted.has(name)) {
      this.entries.set(name, entry);
      if (before === undefined || before !== entry.addresses) this.changedName(name);
    }
    return entry;
  }

  private changedName(name: string): void {
    this.changed.add(name);
    if (this.notifying) return;
    this.notifying = true;
    queueMicrotask(() => {
      this.notifying = false;
      const changed = this.changed;
      this.changed = new Set();
      for (const listener of this.listeners) listener(changed);
    });
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}
