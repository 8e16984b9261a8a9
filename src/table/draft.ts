/**
 * The route table a batch of changes is building, with the index that keeps conflict checks
 * proportional to the change rather than to the table: which service holds each (domain, path).
 */
import type { RouteSource, RouteTableSnapshot, Service, ServiceEntry } from '../routes/model.js';
import { routeKey, routesOf } from '../routes/model.js';
import type { RouteChange } from './store.js';

/** Route key (routeKey) -> name of the service it is routed to. */
export type RouteHolders = ReadonlyMap<string, string>;

/** Why one entry of a change was refused. */
export interface EntryRefusal {
  /** Position of the entry in the change. */
  readonly index: number;
  readonly name: string;
  readonly status: 400 | 409;
  readonly message: string;
}

export interface IndexedEntry {
  readonly index: number;
  readonly entry: ServiceEntry;
}

export interface PutJudgement {
  /** Sorted by index; empty when the change can be made. */
  readonly refused: readonly EntryRefusal[];
  /** The entries that change the table: neither unchanged nor ignored (empty when any is refused). */
  readonly changing: readonly IndexedEntry[];
}

/** What a service holds alone: its routes, and the default backend if it is one. */
interface Claim {
  readonly key: string;
  /** As a refusal names it. */
  readonly what: string;
  readonly destination: number;
}

const DEFAULT_BACKEND_KEY = '*default*';

function claimsOf(service: Service): Claim[] {
  const claims = routesOf(service).map((route) => ({ key: routeKey(route), what: describe(route), destination: route.destination.index }));
  if (service.isDefaultBackend === true) claims.push({ key: DEFAULT_BACKEND_KEY, what: 'the default backend (isDefaultBackend)', destination: -1 });
  return claims;
}

export function holdersOf(services: ReadonlyMap<string, ServiceEntry>): Map<string, string> {
  const holders = new Map<string, string>();
  for (const [name, entry] of services) {
    for (const { key } of claimsOf(entry.service)) holders.set(key, name);
  }
  return holders;
}

/**
 * Decides, without changing anything, what adding or replacing `entries` together would do.
 *
 * Precedence: a route sent by hand (source 'api') wins over one discovered from labels (source
 * 'swarm'): a 'swarm' entry for a name held by an 'api' one is ignored (not refused, not
 * checked), as is an entry with the parameters already in the table (unchanged). A (domain, path)
 * may belong to one destination of one service: it is checked against the table as it would be
 * after the change (routes of services the change replaces are free) and between the entries.
 */
export function judgePuts(draft: Draft, entries: readonly ServiceEntry[]): PutJudgement {
  const refused: EntryRefusal[] = [];
  const firstAt = new Map<string, number>();
  const candidates: IndexedEntry[] = [];
  entries.forEach((entry, index) => {
    const name = entry.service.name;
    const first = firstAt.get(name);
    if (first !== undefined) {
      refused.push({ index, name, status: 400, message: `serviceName ${name} is given again (first as entry ${first}); send each service once per request` });
      return;
    }
    firstAt.set(name, index);
    const existing = draft.service(name);
    if (entry.source === 'swarm' && existing?.source === 'api') return;
    const twice = routeGivenTwice(entry.service);
    if (twice !== undefined) {
      refused.push({ index, name, status: 400, message: twice });
      return;
    }
    if (existing !== undefined && sameParams(existing, entry)) return;
    candidates.push({ index, entry });
  });
  const replaced = new Set(candidates.map(({ entry }) => entry.service.name));
  const claimed = new Map<string, { name: string; index: number }>();
  const conflictOf = ({ key, what }: Claim, name: string): string | undefined => {
    const holder = draft.holder(key);
    if (holder !== undefined && holder !== name && !replaced.has(holder)) {
      return `${what} is already routed to service ${holder}; remove it from ${holder} first or choose another path or domain`;
    }
    const other = claimed.get(key);
    if (other !== undefined && other.name !== name) {
      return `${what} is also given to service ${other.name} (entry ${other.index}) in this request; give it to one of them`;
    }
    return undefined;
  };
  for (const { index, entry } of candidates) {
    const name = entry.service.name;
    const claims = claimsOf(entry.service);
    const conflict = claims.map((claim) => conflictOf(claim, name)).find((message) => message !== undefined);
    if (conflict !== undefined) refused.push({ index, name, status: 409, message: conflict });
    else for (const { key } of claims) claimed.set(key, { name, index });
  }
  refused.sort((a, b) => a.index - b.index);
  return { refused, changing: refused.length === 0 ? candidates : [] };
}

/** The names a removal would remove: present, and with `onlyFrom`, configured by that source. */
export function judgeRemoves(draft: Draft, names: readonly string[], onlyFrom: RouteSource | undefined): string[] {
  return [...new Set(names)].filter((name) => {
    const existing = draft.service(name);
    return existing !== undefined && (onlyFrom === undefined || existing.source === onlyFrom);
  });
}

/** The reply's message for a change refused entry by entry. */
export function refusalSummary(refused: readonly EntryRefusal[], total: number): string {
  const [first] = refused;
  if (first === undefined) return '';
  const more = refused.length > 1 ? `; ${refused.length - 1} more in Refused` : '';
  const which = first.name === '' ? `entry ${first.index}` : `entry ${first.index} (${first.name})`;
  return `${refused.length} of ${total} services refused, so nothing was changed: ${which}: ${first.message}${more}; correct or leave out the refused entries and send the request again`;
}

/**
 * A version in the making: the changes of a batch over the table it starts from, which stays as
 * it is. Deciding a change costs what the change touches, not the size of the table; only a
 * version that is committed copies the table (table()).
 */
export class Draft {
  /** name -> entry, or undefined where removed. */
  private readonly services = new Map<string, ServiceEntry | undefined>();
  /** route key -> service, or undefined where no service holds it any more. */
  private readonly holders = new Map<string, string | undefined>();

  constructor(
    private readonly base: RouteTableSnapshot,
    private readonly baseHolders: RouteHolders,
  ) {}

  service(name: string): ServiceEntry | undefined {
    return this.services.has(name) ? this.services.get(name) : this.base.services.get(name);
  }

  /** The service a route key (routeKey) is routed to. */
  holder(key: string): string | undefined {
    return this.holders.has(key) ? this.holders.get(key) : this.baseHolders.get(key);
  }

  /** Adds or replaces entries judged by judgePuts against this draft. */
  put(entries: readonly ServiceEntry[]): void {
    // Every replaced service lets go of its routes before any is taken: entries may swap routes.
    for (const { service } of entries) this.release(service.name);
    for (const entry of entries) {
      this.services.set(entry.service.name, entry);
      for (const { key } of claimsOf(entry.service)) this.holders.set(key, entry.service.name);
    }
  }

  remove(names: readonly string[]): void {
    for (const name of names) {
      this.release(name);
      this.services.set(name, undefined);
    }
  }

  /** The services of the version: a new map, the base table's is left as it is. */
  table(): Map<string, ServiceEntry> {
    const services = new Map(this.base.services);
    for (const [name, entry] of this.services) {
      if (entry === undefined) services.delete(name);
      else services.set(name, entry);
    }
    return services;
  }

  /** What differs from the table the draft started from, one entry per service. */
  changes(): RouteChange[] {
    const changes: RouteChange[] = [];
    for (const [name, after] of this.services) {
      const before = this.base.services.get(name);
      if (before !== after) changes.push({ name, before, after });
    }
    return changes;
  }

  /** Brings `holders`, the index of the base table, up to this draft's version. */
  updateHolders(holders: Map<string, string>): void {
    for (const [key, name] of this.holders) {
      if (name === undefined) holders.delete(key);
      else holders.set(key, name);
    }
  }

  private release(name: string): void {
    const existing = this.service(name);
    if (existing === undefined) return;
    for (const { key } of claimsOf(existing.service)) {
      if (this.holder(key) === name) this.holders.set(key, undefined);
    }
  }
}

function sameParams(a: ServiceEntry, b: ServiceEntry): boolean {
  return a.source === b.source && JSON.stringify(a.params) === JSON.stringify(b.params);
}

/** A (domain, path) pair may belong to one destination of a service only. */
function routeGivenTwice(service: Service): string | undefined {
  const own = new Map<string, number>();
  for (const { key, what, destination } of claimsOf(service)) {
    const index = own.get(key);
    if (index !== undefined && index !== destination) {
      return `${what} is given to two destinations of ${service.name} (indexes ${index} and ${destination}); give it to one`;
    }
    own.set(key, destination);
  }
  return undefined;
}

function describe(route: { domain: string | null; path: string }): string {
  return route.domain === null ? `servicePath ${route.path}` : `serviceDomain ${route.domain} with path ${route.path}`;
}
