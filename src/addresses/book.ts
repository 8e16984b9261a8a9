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
import type { TaskAddressSource, WantedName } from './model.js';

export interface AddressEntry {
  addresses: readonly string[];
  /** Round-robin cursor, for planes that balance themselves. */
  next: number;
  /** Failed refreshes in a row. */
  failures: number;
}

export interface AddressBookOptions {
  /** ip:port of DNS servers; empty: the system resolver. */
  readonly dnsServers: readonly string[];
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
  private wanted = new Map<string, number>();
  /** Names in refresh order; `cursor` is the next one due. */
  private order: string[] = [];
  private cursor = 0;
  private refreshSeconds = 1;
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
   * The names to keep fresh (each with how many addresses it may use), resolved again every
   * `refreshSeconds`; names no longer wanted are forgotten. New names are looked up at once.
   */
  follow(names: readonly WantedName[], refreshSeconds: number): void {
    const next = new Map(names.map(({ name, limit }) => [name, limit] as const));
    const added = names.filter(({ name }) => !this.wanted.has(name)).map(({ name }) => name);
    const limitsChanged = names.filter(({ name, limit }) => this.wanted.has(name) && this.wanted.get(name) !== limit).map(({ name }) => name);
    this.wanted = next;
    for (const name of this.entries.keys()) if (!next.has(name)) this.entries.delete(name);
    this.order = [...next.keys()];
    this.cursor = 0;
    this.refreshSeconds = refreshSeconds;
    if (this.timer === undefined && next.size > 0) {
      this.timer = setInterval(() => this.tick(), TICK_MS);
      this.timer.unref();
    }
    for (const name of [...added, ...limitsChanged]) void this.resolve(name);
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
    if (this.order.length === 0) return;
    const due = Math.min(this.order.length, Math.ceil((this.order.length * TICK_MS) / (this.refreshSeconds * 1000)));
    for (let i = 0; i < due; i++) {
      const name = this.order[this.cursor % this.order.length];
      this.cursor = (this.cursor + 1) % this.order.length;
      if (name !== undefined) void this.resolve(name);
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
    const entry = this.entries.get(name) ?? { addresses: [], next: 0, failures: 0 };
    const before = this.entries.has(name) ? entry.addresses : undefined;
    try {
      const found = (await this.lookup(name)).sort().slice(0, this.wanted.get(name) ?? 1);
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
