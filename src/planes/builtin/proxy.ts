/**
 * HTTP/1.1 forwarding for the built-in plane: streaming both ways with backpressure (pipe),
 * keep-alive pools to backends, hop-by-hop headers removed, X-Forwarded-* added, Upgrade
 * requests (WebSocket) tunnelled. Answers follow the HAProxy plane: 503 when no replica
 * accepts the connection, 504 when the backend is slower than its timeout, 502 for a broken
 * response.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Destination, Service } from '../../routes/model.js';
import type { AddressBook, AddressEntry } from './resolver.js';

/** Everything the hot path needs about a destination, computed once per table version. */
export interface Target {
  readonly service: Service;
  readonly destination: Destination;
  /** The DNS name: NAME (vip) or tasks.NAME (tasks). */
  readonly dnsName: string;
  readonly port: number;
  readonly timeoutServerMs: number;
  readonly timeoutTunnelMs: number;
  requests: number;
}

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-authenticate', 'proxy-authorization', 'http2-settings',
]);

/** Request headers for the backend: hop-by-hop (and those named in Connection) removed, X-Forwarded-* set. */
export function forwardHeaders(req: http.IncomingMessage, upgrade: boolean): http.OutgoingHttpHeaders {
  const incoming = req.headers;
  const named = incoming.connection;
  const listed = named === undefined ? undefined : new Set(named.toLowerCase().split(',').map((t) => t.trim()));
  const headers: http.OutgoingHttpHeaders = {};
  for (const name in incoming) {
    if (HOP_BY_HOP.has(name) || (listed !== undefined && listed.has(name))) continue;
    headers[name] = incoming[name];
  }
  const client = req.socket.remoteAddress ?? '';
  const forwardedFor = incoming['x-forwarded-for'];
  headers['x-forwarded-for'] = forwardedFor === undefined ? client : `${forwardedFor}, ${client}`;
  headers['x-forwarded-proto'] = 'http';
  if (incoming.host !== undefined) headers['x-forwarded-host'] = incoming.host;
  if (upgrade) {
    headers.connection = 'upgrade';
    headers.upgrade = incoming.upgrade;
  }
  return headers;
}

function responseHeaders(upstream: http.IncomingMessage): http.OutgoingHttpHeaders {
  const incoming = upstream.headers;
  const named = incoming.connection;
  const listed = named === undefined ? undefined : new Set(named.toLowerCase().split(',').map((t) => t.trim()));
  const headers: http.OutgoingHttpHeaders = {};
  for (const name in incoming) {
    if (HOP_BY_HOP.has(name) || (listed !== undefined && listed.has(name))) continue;
    headers[name] = incoming[name];
  }
  return headers;
}

/** The origin-form path of a request target (absolute-form `http://host/p?q` -> `/p?q`). */
export function originForm(url: string): string {
  if (url.charCodeAt(0) === 47 /* / */) return url;
  const scheme = url.indexOf('://');
  if (scheme === -1) return url;
  const slash = url.indexOf('/', scheme + 3);
  return slash === -1 ? '/' : url.slice(slash);
}

export function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

export function plainAnswer(res: http.ServerResponse, status: number, text: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-cache' });
  res.end(text);
}

const NO_BODY_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE']);

function pickAddress(entry: AddressEntry): string | undefined {
  const { addresses } = entry;
  if (addresses.length === 0) return undefined;
  const address = addresses[entry.next % addresses.length];
  entry.next = (entry.next + 1) % 1_000_000;
  return address;
}

export class Forwarder {
  constructor(
    private readonly book: AddressBook,
    private readonly agent: http.Agent,
  ) {}

  /** Forwards `req` to one of the target's replicas. */
  forward(req: http.IncomingMessage, res: http.ServerResponse, target: Target): void {
    target.requests++;
    const entry = this.book.cached(target.dnsName);
    if (entry !== undefined) {
      this.send(req, res, target, entry, 1);
      return;
    }
    this.book.resolve(target.dnsName).then(
      (resolved) => this.send(req, res, target, resolved, 1),
      () => plainAnswer(res, 503, `service ${target.service.name} has no reachable replicas\n`),
    );
  }

  private send(req: http.IncomingMessage, res: http.ServerResponse, target: Target, entry: AddressEntry, retries: number): void {
    const address = pickAddress(entry);
    if (address === undefined) {
      plainAnswer(res, 503, `service ${target.service.name} has no reachable replicas\n`);
      return;
    }
    const upstream = http.request({
      host: address,
      port: target.port,
      method: req.method,
      path: originForm(req.url ?? '/'),
      headers: forwardHeaders(req, false),
      agent: this.agent,
      setHost: false,
    });
    let answered = false;
    upstream.setTimeout(target.timeoutServerMs, () => {
      upstream.destroy();
      if (!answered) {
        answered = true;
        plainAnswer(res, 504, `service ${target.service.name} did not answer in time\n`);
      }
    });
    upstream.on('response', (upstreamRes) => {
      answered = true;
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.statusMessage, responseHeaders(upstreamRes));
      upstreamRes.pipe(res);
      upstreamRes.on('error', () => res.destroy());
    });
    upstream.on('error', (error: NodeJS.ErrnoException) => {
      if (answered) {
        res.destroy();
        return;
      }
      answered = true;
      const connectFailed = error.code === 'ECONNREFUSED' || error.code === 'EHOSTUNREACH' || error.code === 'ECONNRESET';
      // A replica that refuses the connection gets one retry on the next one, when the request
      // body has not been consumed (the same as HAProxy's redispatch).
      if (connectFailed && retries > 0 && entry.addresses.length > 1 && NO_BODY_METHODS.has(req.method ?? '') && req.readableLength === 0) {
        this.send(req, res, target, entry, retries - 1);
        return;
      }
      plainAnswer(res, connectFailed ? 503 : 502, `service ${target.service.name} ${connectFailed ? 'has no reachable replicas' : 'sent no valid response'}\n`);
    });
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    // A retry comes after the request has ended: there is nothing left to pipe.
    if (req.readableEnded) upstream.end();
    else req.pipe(upstream);
  }

  /** Tunnels an Upgrade request (WebSocket) to a replica, then copies bytes both ways. */
  upgrade(req: http.IncomingMessage, socket: Socket, head: Buffer, target: Target): void {
    target.requests++;
    socket.on('error', () => socket.destroy());
    const go = (entry: AddressEntry) => {
      const address = pickAddress(entry);
      if (address === undefined) {
        socket.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      const upstream = http.request({
        host: address,
        port: target.port,
        method: req.method,
        path: originForm(req.url ?? '/'),
        headers: forwardHeaders(req, true),
        setHost: false,
      });
      upstream.on('upgrade', (upstreamRes, upstreamSocket, upstreamHead) => {
        const lines = [`HTTP/1.1 ${upstreamRes.statusCode ?? 101} ${upstreamRes.statusMessage ?? 'Switching Protocols'}`];
        for (let i = 0; i < upstreamRes.rawHeaders.length; i += 2) lines.push(`${upstreamRes.rawHeaders[i]}: ${upstreamRes.rawHeaders[i + 1]}`);
        socket.write(`${lines.join('\r\n')}\r\n\r\n`);
        if (upstreamHead.length > 0) socket.write(upstreamHead);
        if (head.length > 0) upstreamSocket.write(head);
        for (const side of [socket, upstreamSocket]) {
          side.setTimeout(target.timeoutTunnelMs, () => {
            socket.destroy();
            upstreamSocket.destroy();
          });
          side.on('error', () => {
            socket.destroy();
            upstreamSocket.destroy();
          });
        }
        upstreamSocket.pipe(socket).pipe(upstreamSocket);
      });
      upstream.on('response', (upstreamRes) => {
        // The backend declined the upgrade: relay its answer, framed by closing the connection.
        const lines = [`HTTP/1.1 ${upstreamRes.statusCode ?? 502} ${upstreamRes.statusMessage ?? ''}`];
        for (const [name, value] of Object.entries(responseHeaders(upstreamRes))) lines.push(`${name}: ${String(value)}`);
        socket.write(`${lines.join('\r\n')}\r\nconnection: close\r\n\r\n`);
        upstreamRes.pipe(socket);
      });
      upstream.on('error', () => socket.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n'));
      upstream.end();
    };
    const entry = this.book.cached(target.dnsName);
    if (entry !== undefined) go(entry);
    else this.book.resolve(target.dnsName).then(go, () => socket.destroy());
  }
}
