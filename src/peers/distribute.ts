/**
 * distribute=true (Docker Flow Proxy's parameter): a change applied by this replica is sent on
 * to every other replica at once. Each peer gets the same request without distribute and with
 * the change's stamp (Flow-Proxy-Stamp), so it applies it as the same change and goes no
 * further; a peer that is momentarily away is tried again for about a second. The reply says
 * which replicas applied the change. (Peers that miss it catch up through replication.ts.)
 */
import type { Logger } from '../log.js';
import { formatStamp } from './ledger.js';
import type { Stamp } from './ledger.js';
import { jsonOf } from './peers.js';
import type { PeerRequest, Peers } from './peers.js';

export interface PeerResult {
  /** The peer's address. */
  readonly Address: string;
  readonly Status: 'OK' | 'NOK';
  readonly Message: string;
}

export const STAMP_HEADER = 'flow-proxy-stamp';

/** Attempts per peer, the last one about a second after the first. */
const ATTEMPTS = 4;
const FIRST_RETRY_MS = 150;
const REQUEST_TIMEOUT_MS = 2000;

export class PeerDistributor {
  constructor(
    private readonly peers: Peers,
    private readonly log: Logger,
  ) {}

  /**
   * Sends the request (without distribute, with the change's stamp) to every other replica;
   * resolves once each answered or gave up.
   */
  async distribute(method: PeerRequest['method'], path: string, query: Readonly<Record<string, string>>, stamp: Stamp | undefined, body?: string): Promise<PeerResult[]> {
    const peers = await this.peers.find('for distribute');
    const forwarded = Object.fromEntries(Object.entries(query).filter(([key]) => key !== 'distribute'));
    const request: PeerRequest = {
      method,
      path: `${path}?${new URLSearchParams(forwarded).toString()}`,
      headers: stamp === undefined ? {} : { [STAMP_HEADER]: formatStamp(stamp) },
      ...(body === undefined ? {} : { body }),
    };
    return Promise.all(peers.map((address) => this.send(address, request)));
  }

  private async send(address: string, request: PeerRequest): Promise<PeerResult> {
    let last = 'not tried';
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, FIRST_RETRY_MS * 2 ** (attempt - 1)));
      try {
        const response = await this.peers.request(address, request, REQUEST_TIMEOUT_MS);
        const body = jsonOf(response) as { Message?: unknown };
        const message = typeof body.Message === 'string' ? body.Message : '';
        // A refusal is the peer's answer; a 5xx (its table busy or its disk full) may pass.
        if (response.status < 500) return { Address: address, Status: response.status < 300 ? 'OK' : 'NOK', Message: message };
        last = `status ${response.status}: ${message}`;
      } catch (error) {
        last = (error as Error).message;
      }
    }
    this.log.warn({ peer: address, method: request.method, path: request.path.split('?')[0], reason: last }, 'change not distributed to a peer replica');
    return { Address: address, Status: 'NOK', Message: `unreachable after ${ATTEMPTS} attempts: ${last}` };
  }
}
