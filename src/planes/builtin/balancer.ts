/**
 * How the built-in plane chooses a replica for one destination, as HAProxy's `balance` and
 * `cookie ... insert indirect` do on the other plane: round-robin, least connections (requests
 * in flight), or a hash of the client's address; and with sticky sessions, the replica named by
 * the client's FPSERVER cookie while that replica is still there.
 */
import { createHash } from 'node:crypto';
import type { BalanceAlgorithm } from '../../routes/model.js';
import { STICKY_COOKIE } from '../../routes/model.js';

export interface Choice {
  readonly address: string;
  /** Set-Cookie value to send when the client must be (re)pinned to `address`. */
  readonly setCookie: string | undefined;
}

/** FNV-1a: a fast, well-spread hash of a short string. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
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
  /** Cookie value of each replica address seen. */
  private readonly cookies = new Map<string, string>();

  constructor(
    private readonly algorithm: BalanceAlgorithm,
    private readonly sticky: boolean,
    private readonly port: number,
  ) {
    this.needsClient = algorithm === 'source';
  }

  /** A replica among `addresses` not in `avoid` (those already tried), or undefined. */
  /** `client` is read only when needsClient. */
  pick(addresses: readonly string[], client: string, cookie: string | undefined, avoid: ReadonlySet<string>): Choice | undefined {
    const usable = avoid.size === 0 ? addresses : addresses.filter((address) => !avoid.has(address));
    if (usable.length === 0) return undefined;
    if (this.sticky && cookie !== undefined) {
      const pinned = usable.find((address) => this.cookieOf(address) === cookie);
      if (pinned !== undefined) return { address: pinned, setCookie: undefined };
    }
    const address = this.choose(usable, client);
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

  private choose(addresses: readonly string[], client: string): string {
    if (this.algorithm === 'source') return addresses[fnv1a(client) % addresses.length] as string;
    const start = this.cursor++ % addresses.length;
    if (this.cursor > 1_000_000) this.cursor = 0;
    if (this.algorithm === 'roundrobin') return addresses[start] as string;
    // Least connections; ties go round-robin so idle replicas share the work.
    let best = addresses[start] as string;
    let fewest = this.inFlight.get(best) ?? 0;
    for (let i = 1; i < addresses.length && fewest > 0; i++) {
      const address = addresses[(start + i) % addresses.length] as string;
      const count = this.inFlight.get(address) ?? 0;
      if (count < fewest) {
        best = address;
        fewest = count;
      }
    }
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
