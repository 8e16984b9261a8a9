/**
 * distribute=true (Docker Flow Proxy's parameter): a change applied by this replica is sent on
 * to every other replica of the proxy service, found as `tasks.<SERVICE_NAME>` in DNS (Swarm's
 * DNS answers it on every node, managers and workers alike). Each peer gets the same request
 * without distribute, so it applies it and goes no further; a peer that is momentarily away is
 * tried again for about a second. The reply says which replicas applied the change.
 */
import { promises as dns } from 'node:dns';
import os from 'node:os';
import type { Logger } from '../log.js';

export interface PeerResult {
  /** The peer's address. */
  readonly Address: string;
  readonly Status: 'OK' | 'NOK';
  readonly Message: string;
}

export interface DistributorOptions {
  /** The proxy's own Swarm service name (SERVICE_NAME): peers are tasks.NAME. */
  readonly serviceName: string;
  readonly apiPort: number;
  /** The address the API listens on; 0.0.0.0 means every local address is this replica's. */
  readonly apiAddress: string;
  /** ip:port of DNS servers; empty: the system resolver. */
  readonly dnsServers: readonly string[];
  /** Headers that authenticate this replica to its peers (the API token or basic credentials). */
  readonly authorization: string | undefined;
  readonly log: Logger;
}

/** Attempts per peer, the last one about a second after the first. */
const ATTEMPTS = 4;
const FIRST_RETRY_MS = 150;
const REQUEST_TIMEOUT_MS = 2000;

export class PeerDistributor {
  private readonly resolver: dns.Resolver | undefined;

  constructor(private readonly options: DistributorOptions) {
    if (options.dnsServers.length > 0) {
      this.resolver = new dns.Resolver({ timeout: 1000, tries: 2 });
      this.resolver.setServers([...options.dnsServers]);
    }
  }

  /** Sends `GET path?query` (without distribute) to every other replica; resolves once each answered or gave up. */
  async distribute(path: string, query: Readonly<Record<string, string>>): Promise<PeerResult[]> {
    const peers = await this.peers();
    const forwarded = Object.fromEntries(Object.entries(query).filter(([key]) => key !== 'distribute'));
    return Promise.all(peers.map((address) => this.send(address, path, forwarded)));
  }

  private async peers(): Promise<string[]> {
    const name = `tasks.${this.options.serviceName}`;
    let addresses: string[];
    try {
      addresses = this.resolver === undefined ? (await dns.lookup(name, { all: true, family: 4 })).map((entry) => entry.address) : await this.resolver.resolve4(name);
    } catch (error) {
      this.options.log.warn({ name, reason: (error as Error).message }, 'no peer replicas found for distribute');
      return [];
    }
    const own = this.ownAddresses();
    return [...new Set(addresses)].filter((address) => !own.has(address)).sort();
  }

  private ownAddresses(): Set<string> {
    if (this.options.apiAddress !== '0.0.0.0') return new Set([this.options.apiAddress]);
    const own = new Set<string>();
    for (const list of Object.values(os.networkInterfaces())) for (const entry of list ?? []) own.add(entry.address);
    return own;
  }

  private async send(address: string, path: string, query: Readonly<Record<string, string>>): Promise<PeerResult> {
    const url = `http://${address}:${this.options.apiPort}${path}?${new URLSearchParams(query).toString()}`;
    let last = 'not tried';
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, FIRST_RETRY_MS * 2 ** (attempt - 1)));
      try {
        const response = await fetch(url, {
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
          ...(this.options.authorization === undefined ? {} : { headers: { authorization: this.options.authorization } }),
        });
        const body = (await response.json().catch(() => ({}))) as { Message?: unknown };
        const message = typeof body.Message === 'string' ? body.Message : '';
        // A refusal is the peer's answer; a 5xx (its table busy or its disk full) may pass.
        if (response.status < 500) return { Address: address, Status: response.ok ? 'OK' : 'NOK', Message: message };
        last = `status ${response.status}: ${message}`;
      } catch (error) {
        last = (error as Error).message;
      }
    }
    this.options.log.warn({ peer: address, path, reason: last }, 'change not distributed to a peer replica');
    return { Address: address, Status: 'NOK', Message: `unreachable after ${ATTEMPTS} attempts: ${last}` };
  }
}
