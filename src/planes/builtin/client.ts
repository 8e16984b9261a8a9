/**
 * Who a request comes from, as the HAProxy plane sees it: the connection's source (the TCP peer,
 * or the address a PROXY protocol header named), and for allowedIps/deniedIps the last
 * X-Forwarded-For address when the source is a trusted proxy (TRUSTED_PROXIES).
 */
import { BlockList, isIP } from 'node:net';
import type { Socket } from 'node:net';
import type http from 'node:http';
import type { Service } from '../../routes/model.js';
import { clientAddressOf } from './proxy-protocol.js';

/** '::ffff:10.0.0.1' -> '10.0.0.1': HAProxy compares IPv4 clients with IPv4 ranges. */
function plainAddress(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

function blockListOf(ranges: readonly string[]): BlockList {
  const list = new BlockList();
  for (const range of ranges) {
    const slash = range.indexOf('/');
    const address = slash === -1 ? range : range.slice(0, slash);
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (slash === -1) list.addAddress(address, family);
    else list.addSubnet(address, Number(range.slice(slash + 1)), family);
  }
  return list;
}

function contains(list: BlockList, address: string): boolean {
  const family = isIP(address);
  return family !== 0 && list.check(address, family === 6 ? 'ipv6' : 'ipv4');
}

export class Clients {
  private readonly trusted: BlockList | undefined;
  private readonly serviceLists = new WeakMap<Service, { allowed?: BlockList; denied?: BlockList }>();

  constructor(trustedProxies: readonly string[] | undefined) {
    this.trusted = trustedProxies === undefined ? undefined : blockListOf(trustedProxies);
  }

  /** The connection's source address. */
  source(socket: Socket): string {
    return plainAddress(clientAddressOf(socket));
  }

  /** Whether a request from `source` keeps the X-Forwarded-For it came with (every one when no proxy is named trusted). */
  keepsChain(source: string): boolean {
    return this.trusted === undefined || contains(this.trusted, source);
  }

  /** The client allowedIps and deniedIps check. */
  client(req: http.IncomingMessage): string {
    const source = this.source(req.socket);
    if (this.trusted === undefined || !contains(this.trusted, source)) return source;
    const header = req.headers['x-forwarded-for'];
    const chain = Array.isArray(header) ? header.join(',') : header;
    const last = chain?.slice(chain.lastIndexOf(',') + 1).trim();
    return last !== undefined && isIP(last) !== 0 ? plainAddress(last) : source;
  }

  /** Why the service's IP lists refuse the request with 403, or undefined. */
  refusal(service: Service, req: http.IncomingMessage): string | undefined {
    if (service.allowedIps === undefined && service.deniedIps === undefined) return undefined;
    let lists = this.serviceLists.get(service);
    if (lists === undefined) {
      lists = {
        ...(service.allowedIps === undefined ? {} : { allowed: blockListOf(service.allowedIps) }),
        ...(service.deniedIps === undefined ? {} : { denied: blockListOf(service.deniedIps) }),
      };
      this.serviceLists.set(service, lists);
    }
    const client = this.client(req);
    if ((lists.allowed !== undefined && !contains(lists.allowed, client)) || (lists.denied !== undefined && contains(lists.denied, client))) {
      return `client ${client} is not allowed here`;
    }
    return undefined;
  }
}
