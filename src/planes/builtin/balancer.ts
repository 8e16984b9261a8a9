/**
 * How the built-in plane chooses a replica for one destination, as HAProxy's `balance` and
 * `cookie ... insert indirect` do on the other plane: round-robin, least connections (requests
 * in flight), or a hash of the client's address; and with sticky sessions, the replica named by
 * the client's FPSERVER cookie while that replica is still there. Replicas may be weighted, as
 * HAProxy's servers: a replica of weight 3 gets three times the share of one of weight 1.
 */
import { createHash } from 'node:crypto';
import type { BalanceAlgorithm } from '../../routes/model.js';
import { STICKY_COOKIE } from '../../routes/model.js';

export interface Choice {
  readonly address: string;
  /** Set-Cookie value to send when the client must be (re)pinned to `address`. */
  readonly setCookie: string | undefined;
}

/** How many shares of the work a replica takes; undefined means one each. */
export type WeightOf = ((address: string) => number) | undefined;

/** FNV-1a: a fast, well-spread hash of a short string. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

/** The replica `hash` lands on, each replica owning a part of the hash space in proportion to its weight. */
function byHash(addresses: readonly string[], hash: number, weightOf: (address: string) => number): string {
  const total = addresses.reduce((sum, address) => sum + weightOf(address), 0);
  let point = hash % total;
  return addresses.find((address) => (point -= weightOf(address)) < 0) as string;
}

/** The FPSERVER cookie (`name=value; ...` pairs) in a Cookie header, or undefined. */
export function stickyCookieOf(header: string | undefined): string | undefined {
  if (header === undefined || !header.includes(STICKY_COOKIE)) return undefined;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq !== -1 && pair.slice(0, eq).trim() === STICKY_COOKIE) return pair.slice(eq + 1).trim();
  }
  return undefined;
}

/** A Cookie header without the FPSERVER pair (the replica never sees it, as HAProxy's `indirect`); undefined when nothing is left. */
export function withoutStickyCookie(header: string): string | undefined {
  const kept = header.split(';').filter((pair) => pair.slice(0, pair.indexOf('=')).trim() !== STICKY_COOKIE);
  return kept.length === 0 ? undefined : kept.map((pair) => pair.trim()).join('; ');
}

export class Balancer {
  /** Only source hashing reads the client's address: others are not given it (it costs lookups per request). */
  readonly needsClient: boolean;
  private cursor = 0;
  private readonly inFlight = new Map<string, number>();
  /** Weighted round-robin: how far each replica is owed a turn. */
  private readonly credits = new Map<string, number>();
  /** Cookie value of each replica address seen. */
  private readonly cookies = new Map<string, string>();

  constructor(
    readonly algorithm: BalanceAlgorithm,
    private readonly sticky: boolean,
    private readonly port: number,
  ) {
    this.needsClient = algorithm === 'source';
  }

  /** A replica among `addresses` not in `avoid` (those already tried), or undefined. */
  /** `client` is read only when needsClient. */
  pick(addresses: readonly string[], client: string, cookie: string | undefined, avoid: ReadonlySet<string>, weightOf: WeightOf = undefined): Choice | undefined {
    const usable = avoid.size === 0 ? addresses : addresses.filter((address) => !avoid.has(address));
    if (usable.length === 0) return undefined;
    if (this.sticky && cookie !== undefined) {
      const pinned = usable.find((address) => this.cookieOf(address) === cookie);
      if (pinned !== undefined) return { address: pinned, setCookie: undefined };
    }
    const address = this.choose(usable, client, weightOf);
    return { address, setCookie: this.sticky ? `${STICKY_COOKIE}=${this.cookieOf(address)}; path=/` : undefined };
  }

  /** Counts a request in flight to `address` until the returned function is called; undefined when nothing is counted (not least connections). */
  started(address: string): (() => void) | undefined {
    if (this.algorithm !== 'leastconn') return undefined;
    this.inFlight.set(address, (this.inFlight.get(address) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.inFlight.get(address) ?? 1) - 1;
      if (left === 0) this.inFlight.delete(address);
      else this.inFlight.set(address, left);
    };
  }

  private choose(addresses: readonly string[], client: string, weightOf: WeightOf): string {
    if (this.algorithm === 'source') return byHash(addresses, fnv1a(client), weightOf ?? (() => 1));
    if (this.algorithm === 'roundrobin' && weightOf !== undefined) return this.smoothWeighted(addresses, weightOf);
    const start = this.cursor++ % addresses.length;
    if (this.cursor > 1_000_000) this.cursor = 0;
    if (this.algorithm === 'roundrobin') return addresses[start] as string;
    // Least connections per unit of weight; ties go round-robin so idle replicas share the work.
    const load = (address: string) => (this.inFlight.get(address) ?? 0) / (weightOf?.(address) ?? 1);
    let best = addresses[start] as string;
    let lowest = load(best);
    for (let i = 1; i < addresses.length && lowest > 0; i++) {
      const address = addresses[(start + i) % addresses.length] as string;
      const value = load(address);
      if (value < lowest) {
        best = address;
        lowest = value;
      }
    }
    return best;
  }

  /**
   * Smooth weighted round-robin (nginx's): each replica gains its weight, the one owed most is
   * chosen and gives back the total. Weights 3 and 1 give a a b a, a a b a, ...: the shares are
   * exact over every cycle, and no replica gets a burst.
   */
  private smoothWeighted(addresses: readonly string[], weightOf: (address: string) => number): string {
    // Replicas come and go for the life of the port: keep the map from growing with them.
    if (this.credits.size > 1024) this.credits.clear();
    let total = 0;
    let best = addresses[0] as string;
    let bestCredit = -Infinity;
    for (const address of addresses) {
      const weight = weightOf(address);
      const credit = (this.credits.get(address) ?? 0) + weight;
      this.credits.set(address, credit);
      total += weight;
      if (credit > bestCredit) {
        best = address;
        bestCredit = credit;
      }
    }
    this.credits.set(best, bestCredit - total);
    return best;
  }

  private cookieOf(address: string): string {
    let value = this.cookies.get(address);
    if (value === undefined) {
      // Replicas come and go for the life of the service: keep the cache from growing with them.
      if (this.cookies.size >= 1024) this.cookies.clear();
      value = createHash('sha256').update(`${address}:${this.port}`).digest('hex').slice(0, 16);
      this.cookies.set(address, value);
    }
    return value;
  }
}
