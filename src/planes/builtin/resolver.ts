/**
 * Service name -> addresses, from DNS, kept fresh in the background so the request path reads a
 * cache and never waits on DNS except for the very first request to a new name. Replicas coming
 * and going are followed at each refresh; a name that stops resolving keeps its last addresses
 * for a few refreshes (as HAProxy's "hold" settings) so a DNS hiccup does not become a 503.
 */
import { promises as dns } from 'node:dns';
import type { Logger } from '../../log.js';

export interface AddressEntry {
  addresses: readonly string[];
  /** Round-robin cursor. */
  next: number;
  /** Failed refreshes in a row. */
  failures: number;
}

const HOLD_FAILURES = 3;
const NOT_FOUND = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN', 'ENONAME']);

export class AddressBook {
  private readonly resolver = new dns.Resolver({ timeout: 1000, tries: 2 });
  private readonly entries = new Map<string, AddressEntry>();
  private readonly pending = new Map<string, Promise<AddressEntry>>();
  private wanted = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    servers: readonly string[],
    private readonly log: Logger,
  ) {
    if (servers.length > 0) this.resolver.setServers([...servers]);
  }

  /** The names to keep fresh (and how many addresses each may use); others are forgotten. */
  follow(names: ReadonlyMap<string, number>, refreshSeconds: number): void {
    this.wanted = new Map(names);
    for (const name of this.entries.keys()) if (!names.has(name)) this.entries.delete(name);
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = setInterval(() => void this.refreshAll(), refreshSeconds * 1000);
    this.timer.unref();
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

  private async refresh(name: string): Promise<AddressEntry> {
    const entry = this.entries.get(name) ?? { addresses: [], next: 0, failures: 0 };
    try {
      const found = await this.resolver.resolve4(name);
      entry.addresses = found.sort().slice(0, this.wanted.get(name) ?? 1);
      entry.failures = 0;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? '';
      entry.failures++;
      if (entry.failures > HOLD_FAILURES) entry.addresses = [];
      if (!NOT_FOUND.has(code)) this.log.warn({ name, code }, 'DNS resolution failed');
    }
    if (this.wanted.has(name)) this.entries.set(name, entry);
    return entry;
  }

  private async refreshAll(): Promise<void> {
    await Promise.all([...this.wanted.keys()].map((name) => this.resolve(name)));
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }
}
