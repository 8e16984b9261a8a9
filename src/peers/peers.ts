/**
 * The other replicas of this proxy: the tasks of its own Swarm service, found as
 * `tasks.<SERVICE_NAME>` in DNS (Swarm's DNS answers it on every node, managers and workers
 * alike), less this replica's own addresses. Peers are reached on the API port, with this
 * replica's own API credentials (every replica of a service shares them).
 */
import { promises as dns } from 'node:dns';
import http from 'node:http';
import os from 'node:os';
import type { Logger } from '../log.js';

export interface PeerOptions {
  /** The proxy's own Swarm service name (SERVICE_NAME): peers are tasks.NAME. */
  readonly serviceName: string;
  readonly apiPort: number;
  /** The address the API listens on; 0.0.0.0 means every local address is this replica's. */
  readonly apiAddress: string;
  /** ip:port of DNS servers; empty: the system resolver. */
  readonly dnsServers: readonly string[];
  /** The Authorization header that authenticates this replica to its peers (the API token or basic credentials). */
  readonly authorization: string | undefined;
  readonly log: Logger;
}

export interface PeerRequest {
  readonly method: 'GET' | 'PUT' | 'DELETE';
  /** Path and query. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
}

export interface PeerAnswer {
  readonly status: number;
  readonly body: string;
}

/** The answer's JSON body, or an empty object when it has none. */
export function jsonOf(answer: PeerAnswer): unknown {
  try {
    return JSON.parse(answer.body) as unknown;
  } catch {
    return {};
  }
}

export class Peers {
  private readonly resolver: dns.Resolver | undefined;
  /** The peers found by the last lookup. */
  private known: ReadonlySet<string> = new Set();
  private lastFailure: string | undefined;
  private first = true;

  constructor(readonly options: PeerOptions) {
    if (options.dnsServers.length > 0) {
      this.resolver = new dns.Resolver({ timeout: 1000, tries: 2 });
      this.resolver.setServers([...options.dnsServers]);
    }
  }

  /** The addresses of the other replicas, sorted; empty (and logged as `why`) when the name does not resolve. */
  async find(why: string): Promise<string[]> {
    const name = `tasks.${this.options.serviceName}`;
    let addresses: string[];
    try {
      addresses = this.resolver === undefined ? (await dns.lookup(name, { all: true, family: 4 })).map((entry) => entry.address) : await this.resolver.resolve4(name);
    } catch (error) {
      const reason = (error as Error).message;
      // Said once per reason: rounds look every second.
      if (reason !== this.lastFailure) this.options.log.warn({ name, reason }, `no peer replicas found ${why}`);
      this.lastFailure = reason;
      addresses = [];
    }
    if (addresses.length > 0) this.lastFailure = undefined;
    const own = this.ownAddresses();
    const listed = [...new Set(addresses)].sort();
    const peers = listed.filter((address) => !own.has(address));
    this.known = new Set(peers);
    this.first = peers.length === 0 || own.has(listed[0] ?? '');
    return peers;
  }

  /**
   * Whether this replica comes first, by address, among the replicas the last lookup listed (or
   * found no other): the one replica that does what only one should (ordering ACME
   * certificates). A replica Swarm does not list yet is not first.
   */
  leads(): boolean {
    return this.first;
  }

  /** Whether `address` was a peer at the last lookup. */
  isPeer(address: string): boolean {
    return this.known.has(address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address);
  }

  /**
   * A request to a peer's API. It leaves from the address the API listens on, when that is one
   * address, so the peer sees it coming from a replica.
   */
  request(address: string, outgoing: PeerRequest, timeoutMs: number): Promise<PeerAnswer> {
    const { authorization, apiAddress, apiPort } = this.options;
    return new Promise((resolve, reject) => {
      const sent = http.request(
        {
          host: address,
          port: apiPort,
          method: outgoing.method,
          path: outgoing.path,
          headers: { ...outgoing.headers, ...(authorization === undefined ? {} : { authorization }) },
          timeout: timeoutMs,
          ...(apiAddress === '0.0.0.0' ? {} : { localAddress: apiAddress }),
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          response.on('error', reject);
        },
      );
      sent.on('timeout', () => sent.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      sent.on('error', reject);
      sent.end(outgoing.body);
    });
  }

  private ownAddresses(): Set<string> {
    if (this.options.apiAddress !== '0.0.0.0') return new Set([this.options.apiAddress]);
    const own = new Set<string>();
    for (const list of Object.values(os.networkInterfaces())) for (const entry of list ?? []) own.add(entry.address);
    return own;
  }
}
