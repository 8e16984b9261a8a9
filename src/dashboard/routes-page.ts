/**
 * The route table as the dashboard pages through it: services sorted by name, narrowed by a
 * search over names, paths and domains, one page at a time. At 10,000 services a browser gets
 * 50 rows, never the table.
 */
import { backendHost } from '../addresses/names.js';
import type { AddressMode, RouteSource, RouteTableSnapshot, ServiceEntry } from '../routes/model.js';
import type { Settings } from '../settings/settings.js';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 100;
const MAX_QUERY_LENGTH = 200;
/** Addresses listed per row; the count is always exact. */
const MAX_LISTED_REPLICAS = 10;

export interface RouteQuery {
  readonly offset: number;
  readonly limit: number;
  /** Lower-case; empty matches every service. */
  readonly q: string;
}

function wholeNumber(raw: unknown, fallback: number, min: number, max: number): number {
  if (typeof raw !== 'string' || !/^\d{1,9}$/.test(raw)) return fallback;
  return Math.min(max, Math.max(min, Number(raw)));
}

/** Reads offset, limit and q from a query string; what is missing or malformed gets its default. */
export function parseRouteQuery(query: Readonly<Record<string, unknown>>): RouteQuery {
  const q = typeof query.q === 'string' ? query.q.trim().toLowerCase().slice(0, MAX_QUERY_LENGTH) : '';
  return {
    offset: wholeNumber(query.offset, 0, 0, Number.MAX_SAFE_INTEGER),
    limit: wholeNumber(query.limit, DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE),
    q,
  };
}

/** Whether a service's name, one of its paths or one of its domains contains `needle` (lower-case). */
export function matchesSearch(entry: ServiceEntry, needle: string): boolean {
  if (needle === '') return true;
  const { service } = entry;
  if (service.name.toLowerCase().includes(needle)) return true;
  return service.destinations.some((d) => d.paths.some((p) => p.toLowerCase().includes(needle)) || d.domains.some((h) => h.includes(needle)));
}

const sortedCache = new WeakMap<ReadonlyMap<string, ServiceEntry>, readonly string[]>();

/** Service names in code-unit order, sorted once per table version. */
export function sortedNames(snapshot: RouteTableSnapshot): readonly string[] {
  let names = sortedCache.get(snapshot.services);
  if (names === undefined) {
    names = [...snapshot.services.keys()].sort();
    sortedCache.set(snapshot.services, names);
  }
  return names;
}

export interface PageSelection {
  /** Services that match the search. */
  readonly total: number;
  /** The offset served: past the end, the last page. */
  readonly offset: number;
  readonly entries: readonly ServiceEntry[];
}

export function selectPage(snapshot: RouteTableSnapshot, query: RouteQuery): PageSelection {
  const matching: ServiceEntry[] = [];
  for (const name of sortedNames(snapshot)) {
    const entry = snapshot.services.get(name);
    if (entry !== undefined && matchesSearch(entry, query.q)) matching.push(entry);
  }
  const lastPageStart = matching.length === 0 ? 0 : Math.floor((matching.length - 1) / query.limit) * query.limit;
  const offset = Math.min(query.offset, lastPageStart);
  return { total: matching.length, offset, entries: matching.slice(offset, offset + query.limit) };
}

export interface RouteRow {
  readonly service: string;
  /** Who configured it: the API, or Swarm (service labels, or a Swarm Listener's notifications). */
  readonly source: RouteSource;
  readonly paths: readonly string[];
  readonly domains: readonly string[];
  readonly ports: readonly number[];
  /** How replicas are addressed; 'outbound' for a host outside the Swarm (outboundHostname). */
  readonly addressMode: AddressMode | 'outbound';
  /** The host name replicas are looked up by. */
  readonly backend: string;
  /** Replica addresses in rotation (at most MAX_LISTED_REPLICAS); null until first looked up. */
  readonly replicas: readonly string[] | null;
  readonly replicaCount: number | null;
}

function unique<T>(values: Iterable<T>): T[] {
  return [...new Set(values)];
}

/** `addressesOf` answers for a backend host name, as the address book does. */
export function describeRoute(
  entry: ServiceEntry,
  settings: Pick<Settings, 'addressMode' | 'maxTasks'>,
  addressesOf: (host: string) => readonly string[] | undefined,
): RouteRow {
  const { service } = entry;
  const host = backendHost(service, settings);
  const addresses = addressesOf(host.name)?.slice(0, host.limit);
  return {
    service: service.name,
    source: entry.source,
    paths: unique(service.destinations.flatMap((d) => d.paths)),
    domains: unique(service.destinations.flatMap((d) => d.domains)),
    ports: unique(service.destinations.map((d) => d.port)),
    addressMode: service.outboundHostname !== undefined ? 'outbound' : (service.addressMode ?? settings.addressMode),
    backend: host.name,
    replicas: addresses === undefined ? null : addresses.slice(0, MAX_LISTED_REPLICAS),
    replicaCount: addresses === undefined ? null : addresses.length,
  };
}
