/**
 * HTTP/1.1 forwarding for the built-in plane: streaming both ways with backpressure,
 * keep-alive pools to backends (upstream.ts), hop-by-hop headers removed, X-Forwarded-* added, Upgrade
 * requests (WebSocket) tunnelled. Answers follow the HAProxy plane: 503 when no replica
 * accepts the connection, 504 when the backend is slower than its timeout, 502 for a broken
 * response.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Compression, Destination, Service } from '../../routes/model.js';
import type { AddressBook, AddressEntry } from '../../addresses/book.js';
import type { TrafficSeries } from '../../metrics/metrics.js';
import { connectionTokens, HOP_BY_HOP } from './upstream.js';
import type { UpstreamPool, UpstreamTls } from './upstream.js';
import type { HeaderEdits } from './headers.js';
import type { BasicAuthCheck } from './auth.js';
import type { Clients } from './client.js';
import { stickyCookieOf, withoutStickyCookie } from './balancer.js';
import type { Balancer, Choice } from './balancer.js';
import type { DestinationHealth } from '../../health/destination.js';
import type { HealthMonitor } from '../../health/monitor.js';

/** How a request reached the proxy: what X-Forwarded-Proto/-Port and Forwarded say. */
export interface Arrival {
  readonly proto: 'http' | 'https';
  readonly port: number;
}

/** As the HAProxy plane's `retries 2`. */
const RETRIES = 2;

/** Everything the hot path needs about a destination, computed once per table version. */
export interface Target {
  readonly service: Service;
  readonly destination: Destination;
  /** The DNS name: NAME (vip) or tasks.NAME (tasks). */
  readonly dnsName: string;
  readonly port: number;
  readonly timeoutServerMs: number;
  readonly timeoutConnectMs: number;
  readonly timeoutTunnelMs: number;
  /** Set when the replicas speak TLS on httpsPort: requests that arrived over HTTPS go there. */
  readonly tls?: UpstreamTls & { readonly port: number };
  /** Where its traffic is counted (Prometheus, the statistics page). */
  readonly traffic: TrafficSeries;
  readonly requestEdits?: HeaderEdits;
  readonly responseEdits?: HeaderEdits;
  /** The compression its responses get (its own, or the global one). */
  readonly compression?: Compression;
  /** reqPathSearchReplace, compiled. */
  readonly pathRewrites?: readonly (readonly [RegExp, string])[];
  /** Set when requests need credentials (users, or the global USERS). */
  readonly auth?: BasicAuthCheck;
  readonly balancer: Balancer;
  /** Set when the service has a health check: only replicas that pass it get requests. */
  readonly health?: DestinationHealth;
}

/** Why the service's policy refuses the request with 403 (allowedMethods, deniedMethods, denyHttp), or undefined. */
export function policyRefusal(service: Service, method: string, arrival: Arrival): string | undefined {
  if (service.denyHttp === true && arrival.proto === 'http') return 'this service is only served over HTTPS';
  if (service.allowedMethods !== undefined && !service.allowedMethods.includes(method)) return `method ${method} is not allowed here`;
  if (service.deniedMethods?.includes(method) === true) return `method ${method} is not allowed here`;
  return undefined;
}

/** A message's headers without the hop-by-hop ones and those its Connection header names. */
function endToEndHeaders(message: http.IncomingMessage): http.OutgoingHttpHeaders {
  const incoming = message.headers;
  const listed = connectionTokens(incoming.connection);
  const headers: http.OutgoingHttpHeaders = {};
  for (const name in incoming) {
    if (HOP_BY_HOP.has(name) || (listed !== undefined && listed.has(name))) continue;
    headers[name] = incoming[name];
  }
  return headers;
}

/** Upgrade request headers for the backend: end-to-end headers, X-Forwarded-* and the upgrade itself. */
function upgradeHeaders(req: http.IncomingMessage, forwarded: boolean, arrival: Arrival, edits: HeaderEdits | undefined, clients: Clients, proxyAuth: boolean): http.OutgoingHttpHeaders {
  const incoming = req.headers;
  const headers = endToEndHeaders(req);
  const client = clients.source(req.socket);
  const forwardedFor = clients.keepsChain(client) ? incoming['x-forwarded-for'] : undefined;
  headers['x-forwarded-for'] = forwardedFor === undefined ? client : `${forwardedFor}, ${client}`;
  headers['x-forwarded-proto'] = arrival.proto;
  headers['x-forwarded-port'] = String(arrival.port);
  if (incoming.host !== undefined) headers['x-forwarded-host'] = incoming.host;
  if (forwarded) headers.forwarded = incoming.forwarded === undefined ? forwardedElement(client, arrival) : `${incoming.forwarded}, ${forwardedElement(client, arrival)}`;
  if (edits !== undefined) {
    for (const name of edits.dropped) delete headers[name];
    for (const [name, value] of edits.appended) {
      const lower = name.toLowerCase();
      const before = headers[lower];
      headers[lower] = before === undefined ? value : [...(Array.isArray(before) ? before : [String(before)]), value];
    }
  }
  if (proxyAuth) delete headers.authorization;
  headers.connection = 'upgrade';
  headers.upgrade = incoming.upgrade;
  return headers;
}

/** RFC 7239 element for this hop; an IPv6 address is quoted and bracketed. */
function forwardedElement(client: string, arrival: Arrival): string {
  return `for=${client.includes(':') ? `"[${client}]"` : client};proto=${arrival.proto}`;
}

/** Whether a request came over HTTP/2 (an HTTP/1 request line may claim any version). */
export function isHttp2(req: http.IncomingMessage): boolean {
  return (req as { stream?: unknown }).stream !== undefined;
}

/**
 * Why a parsed request must not be forwarded (answered 400 or 431), or undefined. Node's parser
 * accepts these; forwarding them would let a client smuggle or confuse routing.
 */
export function refusal(req: http.IncomingMessage, maxHeaders: number): { status: 400 | 431; reason: string } | undefined {
  if (req.httpVersionMajor === 0) return { status: 400, reason: 'HTTP/0.9 requests are not served' };
  const raw = req.rawHeaders;
  // Node keeps only the first maxHeaders fields in req.headers, but all of them in rawHeaders.
  if (raw.length > 2 * maxHeaders) return { status: 431, reason: `more than ${maxHeaders} header fields` };
  let host: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).length !== 4 || (raw[i] as string).toLowerCase() !== 'host') continue;
    if (host !== undefined && host !== raw[i + 1]) return { status: 400, reason: 'two different Host headers' };
    host = raw[i + 1];
  }
  const transferEncoding = req.headers['transfer-encoding'];
  // RFC 9112 6.1: chunked is the only coding a proxy can frame a request body by.
  if (transferEncoding !== undefined && transferEncoding.trim().toLowerCase() !== 'chunked') {
    return { status: 400, reason: 'Transfer-Encoding other than chunked' };
  }
  if (host === undefined && req.httpVersionMajor === 1 && req.httpVersionMinor >= 1 && !isHttp2(req)) {
    return { status: 400, reason: 'HTTP/1.1 requests need a Host header' };
  }
  const url = req.url ?? '/';
  if (url.charCodeAt(0) !== 47 /* / */ && url !== '*' && host !== undefined) {
    // RFC 9112 3.2.2: in absolute form the target's authority is the host; it must agree with Host.
    const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(url)?.[1];
    if (authority !== undefined && authority.toLowerCase() !== host.toLowerCase()) return { status: 400, reason: 'the request target names another host than Host' };
  }
  return undefined;
}

/** The Host of a request: its Host header, or HTTP/2's :authority. */
export function hostOf(req: http.IncomingMessage): string | undefined {
  return req.headers.host ?? (req.headers[':authority'] as string | undefined);
}

/** The request head for the backend, from the raw headers Node parsed (and validated). */
function requestHead(req: http.IncomingMessage, chunked: boolean, forwarded: boolean, arrival: Arrival, target: Target, clients: Clients): string {
  const edits = target.requestEdits;
  const raw = req.rawHeaders;
  const listed = connectionTokens(req.headers.connection);
  let head = `${req.method ?? 'GET'} ${forwardedTarget(req, target)} HTTP/1.1\r\n`;
  let forwardedFor: string | undefined;
  let hostSent = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    const lower = name.toLowerCase();
    // HTTP/2 pseudo-headers (:method, :path, :authority, :scheme) are not HTTP/1.1 fields.
    if (lower.charCodeAt(0) === 58 /* : */ || HOP_BY_HOP.has(lower) || (listed !== undefined && listed.has(lower))) continue;
    if (lower === 'host') {
      if (hostSent) continue; // repeated with the same value (refusal() turns away different ones)
      hostSent = true;
    }
    if (lower === 'x-forwarded-for') {
      forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
      continue;
    }
    if (lower === 'x-forwarded-proto' || lower === 'x-forwarded-host' || lower === 'x-forwarded-port') continue;
    // The proxy's credentials are its own: the replicas never see them (as Docker Flow Proxy).
    if (lower === 'authorization' && target.auth !== undefined) continue;
    if (lower === 'cookie' && target.service.sticky === true) {
      const kept = withoutStickyCookie(value);
      if (kept !== undefined) head += `${name}: ${kept}\r\n`;
      continue;
    }
    head += `${name}: ${value}\r\n`;
  }
  const client = clients.source(req.socket);
  if (forwardedFor !== undefined && !clients.keepsChain(client)) forwardedFor = undefined;
  head += `x-forwarded-for: ${forwardedFor === undefined ? client : `${forwardedFor}, ${client}`}\r\nx-forwarded-proto: ${arrival.proto}\r\nx-forwarded-port: ${arrival.port}\r\n`;
  const host = hostOf(req);
  if (host !== undefined) {
    if (req.headers.host === undefined) head += `host: ${host}\r\n`;
    head += `x-forwarded-host: ${host}\r\n`;
  }
  if (forwarded) head += `forwarded: ${forwardedElement(client, arrival)}\r\n`;
  if (edits !== undefined) head = editedHead(head, edits);
  if (chunked) head += 'transfer-encoding: chunked\r\n';
  return `${head}connection: ${target.service.connectionMode === undefined ? 'keep-alive' : 'close'}\r\n\r\n`;
}

/**
 * The service's request edits over the head built so far: fields the proxy added itself
 * (X-Forwarded-*, Host) can be replaced or deleted too, as HAProxy's backend rules run after
 * its frontend's.
 */
function editedHead(head: string, edits: HeaderEdits): string {
  const lines = head.split('\r\n');
  let kept = '';
  for (const line of lines) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon > 0 && edits.dropped.has(line.slice(0, colon).toLowerCase())) continue;
    kept += `${line}\r\n`;
  }
  for (const [name, value] of edits.appended) kept += `${name}: ${value}\r\n`;
  return kept;
}

/** The request target sent to the backend: origin form, with the service's path rewrites applied. */
function forwardedTarget(req: http.IncomingMessage, target: Target): string {
  const url = originForm(req.url ?? '/');
  if (target.pathRewrites === undefined) return url;
  const query = url.indexOf('?');
  let path = query === -1 ? url : url.slice(0, query);
  for (const [search, replace] of target.pathRewrites) path = path.replace(search, replace);
  if (path.charCodeAt(0) !== 47 /* / */) path = `/${path}`;
  return query === -1 ? path : `${path}${url.slice(query)}`;
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

/** The proxy's own answer for `status`: the operator's page (--error-pages) when there is one, else `text`. */
export function errorAnswer(res: http.ServerResponse, status: number, text: string, pages: ReadonlyMap<number, string>): void {
  const page = pages.get(status);
  if (page === undefined || res.headersSent) {
    plainAnswer(res, status, text);
    return;
  }
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(page), 'cache-control': 'no-cache' });
  res.end(page);
}

const NOTHING_TRIED: ReadonlySet<string> = new Set();

export class Forwarder {
  constructor(
    private readonly book: AddressBook,
    private readonly pool: UpstreamPool,
    /** Whether to send RFC 7239's Forwarded header. */
    private readonly forwarded: boolean,
    private readonly errorPages: ReadonlyMap<number, string>,
    private readonly clients: Clients,
    private readonly health: HealthMonitor,
  ) {}

  private choose(req: http.IncomingMessage, target: Target, entry: AddressEntry, refused: ReadonlySet<string>): Choice | undefined {
    const cookie = target.service.sticky === true ? stickyCookieOf(req.headers.cookie) : undefined;
    const { health } = target;
    const addresses = health === undefined ? entry.addresses : this.health.healthy(health.key, health.check, health.port, entry.addresses);
    return target.balancer.pick(addresses, target.balancer.needsClient ? this.clients.source(req.socket) : '', cookie, refused);
  }

  /** Forwards `req` to one of the target's replicas. */
  forward(req: http.IncomingMessage, res: http.ServerResponse, target: Target, arrival: Arrival): void {
    const entry = this.book.cached(target.dnsName);
    if (entry !== undefined) {
      this.send(req, res, target, entry, RETRIES, arrival, NOTHING_TRIED);
      return;
    }
    this.book.resolve(target.dnsName).then(
      (resolved) => this.send(req, res, target, resolved, RETRIES, arrival, NOTHING_TRIED),
      () => errorAnswer(res, 503, `service ${target.service.name} has no reachable replicas\n`, this.errorPages),
    );
  }

  /** `refused`: replicas that refused the connection for this request, not tried again. */
  private send(req: http.IncomingMessage, res: http.ServerResponse, target: Target, entry: AddressEntry, retries: number, arrival: Arrival, refused: ReadonlySet<string>): void {
    const choice = this.choose(req, target, entry, refused);
    if (choice === undefined) {
      errorAnswer(res, 503, `service ${target.service.name} has no reachable replicas\n`, this.errorPages);
      return;
    }
    const { address } = choice;
    const finished = target.balancer.started(address);
    if (finished !== undefined) res.once('close', finished);
    // Passive ejection: exchanges that fail count against the replica, answers for it.
    const { health } = target;
    let failed = false;
    // 5xx answers count as failures too (not 501/505, which say nothing of the replica's health), as HAProxy's observe layer7.
    if (health !== undefined) res.once('finish', () => failed || this.health.report(health.key, address, res.statusCode < 500 || res.statusCode === 501 || res.statusCode === 505));
    const http2 = isHttp2(req);
    const length = req.headers['content-length'];
    // An HTTP/2 request without content-length has a body unless its HEADERS frame ended the stream.
    const chunked =
      req.headers['transfer-encoding'] !== undefined ||
      (http2 && length === undefined && !(req as unknown as { stream: { endAfterHeaders: boolean } }).stream.endAfterHeaders);
    const hasBody = chunked || (length !== undefined && length !== '0');
    const secure = arrival.proto === 'https' ? target.tls : undefined;
    const { connectionMode } = target.service;
    // httpclose: the client's connection ends with this response too (Node sends Connection: close).
    if (connectionMode === 'httpclose') res.shouldKeepAlive = false;
    this.pool.send(address, secure?.port ?? target.port, {
      ...(connectionMode === undefined ? {} : { closeAfter: true }),
      ...(choice.setCookie === undefined ? {} : { setCookie: choice.setCookie }),
      method: req.method ?? 'GET',
      head: requestHead(req, chunked, this.forwarded, arrival, target, this.clients),
      body: hasBody ? req : undefined,
      chunked,
      res,
      http2,
      timeoutMs: target.timeoutServerMs,
      connectTimeoutMs: target.timeoutConnectMs,
      ...(target.responseEdits === undefined ? {} : { responseEdits: target.responseEdits }),
      ...(target.compression === undefined
        ? {}
        : {
            compression: {
              rule: target.compression,
              request: { method: req.method ?? 'GET', acceptEncoding: req.headers['accept-encoding'], http11: req.httpVersionMajor > 1 || req.httpVersionMinor >= 1 },
            },
          }),
      onFailure: (kind, retryable) => {
        failed = true;
        if (health !== undefined && (kind === 'connect' || kind === 'timeout')) this.health.report(health.key, address, false);
        // Sent again when that is safe: a request that never reached a replica goes to the next
        // one (as HAProxy's redispatch); an idempotent one whose pooled connection had been closed
        // is sent on a new connection.
        finished?.();
        if (retries > 0 && retryable) {
          const tried = kind === 'connect' ? new Set([...refused, address]) : refused;
          if (kind !== 'connect' || entry.addresses.some((other) => !tried.has(other))) {
            this.send(req, res, target, entry, retries - 1, arrival, tried);
            return;
          }
        }
        if (kind === 'timeout') errorAnswer(res, 504, `service ${target.service.name} did not answer in time\n`, this.errorPages);
        else if (kind === 'connect') errorAnswer(res, 503, `service ${target.service.name} has no reachable replicas\n`, this.errorPages);
        else errorAnswer(res, 502, `service ${target.service.name} sent no valid response\n`, this.errorPages);
      },
    }, secure);
  }

  /** Tunnels an Upgrade request (WebSocket) to a replica, then copies bytes both ways. */
  upgrade(req: http.IncomingMessage, socket: Socket, head: Buffer, target: Target, arrival: Arrival): void {
    socket.on('error', () => socket.destroy());
    const length = req.headers['content-length'];
    if (req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')) {
      // The bytes after an Upgrade request belong to the new protocol: a body as well is ambiguous.
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const go = (entry: AddressEntry) => {
      const address = this.choose(req, target, entry, NOTHING_TRIED)?.address;
      if (address === undefined) {
        socket.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      const secure = arrival.proto === 'https' ? target.tls : undefined;
      const options: https.RequestOptions = {
        host: address,
        port: secure?.port ?? target.port,
        method: req.method,
        path: forwardedTarget(req, target),
        headers: upgradeHeaders(req, this.forwarded, arrival, target.requestEdits, this.clients, target.auth !== undefined),
        setHost: false,
        // Never pooled: a declined upgrade must not leave its connection to another client.
        agent: false,
      };
      const upstream =
        secure === undefined
          ? http.request(options)
          : https.request({ ...options, servername: secure.servername, rejectUnauthorized: secure.verify, agent: false });
      // Until the backend answers, timeoutServer applies and a client that leaves takes the
      // backend connection with it; once answered, the tunnel timers take over.
      let answered = false;
      const refuse = (status: string) => {
        if (answered) return;
        answered = true;
        upstream.destroy();
        socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      };
      upstream.setTimeout(target.timeoutServerMs, () => refuse('504 Gateway Timeout'));
      socket.once('close', () => {
        if (!answered) {
          answered = true;
          upstream.destroy();
        }
      });
      upstream.on('upgrade', (upstreamRes, upstreamSocket, upstreamHead) => {
        if (answered) {
          upstreamSocket.destroy();
          return;
        }
        answered = true;
        // Counted as HAProxy counts it: the backend's answer, here 101.
        target.traffic.answered(upstreamRes.statusCode ?? 101);
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
        if (answered) return;
        answered = true;
        upstream.setTimeout(0);
        // The backend declined the upgrade: relay its answer, framed by closing the connection.
        target.traffic.answered(upstreamRes.statusCode ?? 502);
        const lines = [`HTTP/1.1 ${upstreamRes.statusCode ?? 502} ${upstreamRes.statusMessage ?? ''}`];
        for (const [name, value] of Object.entries(endToEndHeaders(upstreamRes))) lines.push(`${name}: ${String(value)}`);
        socket.write(`${lines.join('\r\n')}\r\nconnection: close\r\n\r\n`);
        upstreamRes.pipe(socket);
      });
      upstream.on('error', () => refuse('503 Service Unavailable'));
      upstream.end();
    };
    const entry = this.book.cached(target.dnsName);
    if (entry !== undefined) go(entry);
    else this.book.resolve(target.dnsName).then(go, () => socket.destroy());
  }
}
