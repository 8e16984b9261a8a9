/**
 * A lean HTTP/1.1 client for the hot path: pooled keep-alive sockets per backend address, the
 * request head written as one string, the response head parsed just enough for framing
 * (Content-Length, chunked, or until close) and the body streamed into the client's response
 * with backpressure. It replaced Node's http.request, which kept the plane below http-proxy's
 * throughput (docs/benchmarks.md); this client avoids its per-request objects.
 * Request parsing, and with it every protection against malformed input, stays with Node's
 * HTTP server.
 */
import net from 'node:net';
import tls from 'node:tls';
import type http from 'node:http';
import type { Writable } from 'node:stream';
import { editFlatHeaders } from './headers.js';
import { chooseCoding, compressedHead, compressor } from './compression.js';
import type { CompressionRequest } from './compression.js';
import type { Compression } from '../../routes/model.js';
import type { HeaderEdits } from './headers.js';

const MAX_RESPONSE_HEAD = 64 * 1024;
/** RFC 9110 5.6.2 token: a header name. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** RFC 9110 5.5 field value (obs-text allowed), surrounding whitespace already trimmed: no CR, LF, NUL or other controls. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const STATUS_LINE = /^HTTP\/1\.[01] ([1-5][0-9]{2})(?: ([\t\x20-\x7e\x80-\xff]*))?$/;
/** RFC 9112 7.1: hex size, then optional extensions (no CR, LF or other controls). */
const CHUNK_SIZE = /^([0-9a-fA-F]+)[ \t]*(?:;[\t\x20-\x7e\x80-\xff]*)?$/;

/** A header (or trailer) field line: a token, a colon, a value without control characters. */
function validField(line: string): boolean {
  const colon = line.indexOf(':');
  return colon > 0 && TOKEN.test(line.slice(0, colon)) && FIELD_VALUE.test(line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, ''));
}

/** RFC 9110 9.2.2: these may be sent again when a connection fails before the answer. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const IDLE_SOCKET_MS = 4000;
const CRLF_CRLF = Buffer.from('\r\n\r\n');

/** Request and response headers that describe one connection, not the message (RFC 9110 7.6.1). */
export const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-authenticate', 'proxy-authorization', 'http2-settings',
]);

export type UpstreamFailure = 'connect' | 'timeout' | 'protocol';

export interface Exchange {
  readonly method: string;
  readonly head: string;
  /** Set when the request has a body; `chunked` when Node decoded a chunked request. */
  readonly body: http.IncomingMessage | undefined;
  readonly chunked: boolean;
  readonly res: http.ServerResponse;
  /** HTTP/2 responses carry no reason phrase. */
  readonly http2: boolean;
  /** Backend inactivity while the exchange runs (timeoutServer). */
  readonly timeoutMs: number;
  /** Establishing a new connection (TIMEOUT_CONNECT). */
  readonly connectTimeoutMs: number;
  /** Called when nothing was sent to the client yet; `retryable` when the request can be sent again. */
  onFailure(kind: UpstreamFailure, retryable: boolean): void;
  /** The service's edits of the response head (addResHeader, ...). */
  readonly responseEdits?: HeaderEdits;
  /** Set when the service's responses may be compressed for this client. */
  readonly compression?: { readonly rule: Compression; readonly request: CompressionRequest };
  /** The connection is closed after the response (connectionMode); its head says so. */
  readonly closeAfter?: boolean;
  /** A Set-Cookie the proxy adds to the response (sticky sessions). */
  readonly setCookie?: string;
}

/**
 * Names listed in a Connection header value, lower-cased. A message's framing and its Host are
 * never connection options: listing them removes nothing (as HAProxy), or a body could be
 * forwarded without its length and read by the backend as another request.
 */
export function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const tokens = new Set(value.toLowerCase().split(',').map((t) => t.trim()));
  tokens.delete('content-length');
  tokens.delete('host');
  return tokens;
}

const enum Framing {
  None,
  Length,
  Chunked,
  UntilClose,
}

const enum ChunkState {
  Size,
  Data,
  DataEnd,
  Trailers,
}

class UpstreamConnection {
  private exchange: Exchange | undefined;
  /** Where the response body goes: the client's response, or a compressor piped into it. */
  private sink: Writable | undefined;
  private head: Buffer | undefined;
  private framing = Framing.None;
  private remaining = 0;
  private chunkState = ChunkState.Size;
  private line = '';
  private responded = false;
  private reusable = true;
  private connected = false;
  /** The client's response is full: the socket is paused until it drains. */
  private waitingForDrain = false;
  /** Whether the current exchange runs on a connection an earlier exchange used. */
  private reused = false;
  /** Whether the backend sent anything for the current exchange. */
  private received = false;

  constructor(
    readonly socket: net.Socket,
    private readonly release: (connection: UpstreamConnection) => void,
  ) {
    socket.setNoDelay(true);
    socket.once('connect', () => {
      this.connected = true;
      if (this.exchange !== undefined) socket.setTimeout(this.exchange.timeoutMs);
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => this.onClose());
    socket.on('close', () => this.onClose());
    socket.on('timeout', () => this.onTimeout());
    socket.on('drain', () => this.exchange?.body?.resume());
  }

  get idle(): boolean {
    return this.exchange === undefined;
  }

  start(exchange: Exchange, reused: boolean): void {
    this.exchange = exchange;
    this.sink = undefined;
    this.reused = reused;
    this.received = false;
    this.head = undefined;
    this.responded = false;
    this.reusable = true;
    // A replica that drops connection attempts costs TIMEOUT_CONNECT, then the next one is tried.
    this.socket.setTimeout(this.connected ? exchange.timeoutMs : exchange.connectTimeoutMs);
    this.socket.write(exchange.head);
    exchange.res.once('close', () => {
      // The client went away mid-exchange: this connection's state is unknown, drop it.
      if (this.exchange === exchange) {
        this.exchange = undefined;
        this.socket.destroy();
      }
    });
    const body = exchange.body;
    if (body === undefined) return;
    body.on('data', (data: Buffer) => {
      const ok = exchange.chunked
        ? this.socket.write(`${data.length.toString(16)}\r\n`) && this.socket.write(data) && this.socket.write('\r\n')
        : this.socket.write(data);
      if (!ok) body.pause();
    });
    body.on('end', () => {
      if (exchange.chunked) this.socket.write('0\r\n\r\n');
    });
  }

  private onData(chunk: Buffer): void {
    const exchange = this.exchange;
    if (exchange === undefined) {
      this.socket.destroy(); // a backend must not talk on an idle connection
      return;
    }
    this.received = true;
    if (!this.responded) {
      const buffered = this.head === undefined ? chunk : Buffer.concat([this.head, chunk]);
      const end = buffered.indexOf(CRLF_CRLF);
      if (end === -1) {
        if (buffered.length > MAX_RESPONSE_HEAD) this.fail('protocol');
        else this.head = buffered;
        return;
      }
      this.head = undefined;
      const rest = buffered.subarray(end + 4);
      if (!this.respond(exchange, buffered.toString('latin1', 0, end))) {
        // An interim 1xx answer: the real head follows.
        if (rest.length > 0) this.onData(rest);
        return;
      }
      if (rest.length > 0) this.body(exchange, rest);
      else if (this.framing === Framing.None || (this.framing === Framing.Length && this.remaining === 0)) this.finish(exchange);
      return;
    }
    this.body(exchange, chunk);
  }

  /**
   * Parses the response head strictly (RFC 9112, as HAProxy does) and starts the client's
   * response; false for 1xx interim answers and for a head that fails (a 502 for the client).
   */
  private respond(exchange: Exchange, head: string): boolean {
    const lines = head.split('\r\n');
    const statusMatch = STATUS_LINE.exec(lines[0] ?? '');
    if (statusMatch === null) {
      this.fail('protocol');
      return false;
    }
    const status = Number(statusMatch[1]);
    if (status < 200) {
      // An interim answer is not relayed, but it is checked like a final one; a 101 can only
      // answer an Upgrade, which never travels on these pooled connections.
      const fields = lines.slice(1);
      // RFC 9112 6.1, 6.2: an interim answer has no content, so no framing fields either.
      if (status === 101 || !fields.every(validField) || fields.some((f) => /^(?:content-length|transfer-encoding)[ \t]*:/i.test(f))) this.fail('protocol');
      return false;
    }
    const headers: string[] = [];
    let length: string | undefined;
    let transferEncoding: string | undefined;
    let connection: string | undefined;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i] as string;
      const colon = line.indexOf(':');
      const name = line.slice(0, colon);
      const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
      // No obs-fold, no whitespace before the colon, no control characters: a bad head is a 502.
      if (colon <= 0 || !TOKEN.test(name) || !FIELD_VALUE.test(value)) {
        this.fail('protocol');
        return false;
      }
      const lower = name.toLowerCase();
      if (lower === 'content-length') {
        // Repeated lengths are only accepted when they all agree (RFC 9112 6.3).
        for (const item of value.split(',')) {
          const trimmed = item.trim();
          if (!/^[0-9]{1,15}$/.test(trimmed) || (length !== undefined && Number(length) !== Number(trimmed))) {
            this.fail('protocol');
            return false;
          }
          length = trimmed;
        }
        continue; // set again below from the framing actually used
      }
      if (lower === 'transfer-encoding') transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`;
      else if (lower === 'connection') connection = value;
      if (HOP_BY_HOP.has(lower)) continue;
      headers.push(name, value);
    }
    const codings = transferEncoding?.toLowerCase().split(',').map((t) => t.trim());
    // Only chunked is decoded; any other coding would reach the client undecodable.
    if (codings !== undefined && (codings.length !== 1 || codings[0] !== 'chunked')) {
      this.fail('protocol');
      return false;
    }
    const listed = connectionTokens(connection);
    if (listed !== undefined) {
      if (listed.has('close')) this.reusable = false;
      for (let i = headers.length - 2; i >= 0; i -= 2) if (listed.has((headers[i] as string).toLowerCase())) headers.splice(i, 2);
    }
    if (lines[0]?.startsWith('HTTP/1.0') && !listed?.has('keep-alive')) this.reusable = false;
    if (exchange.method === 'HEAD' || status === 204 || status === 304) {
      this.framing = Framing.None;
      if (length !== undefined && exchange.method === 'HEAD') headers.push('content-length', length);
    } else if (codings !== undefined) {
      // Transfer-Encoding wins over a Content-Length, which is dropped: the client gets the body
      // framed once, by Node. A backend that sends both is not trusted with another request.
      if (length !== undefined) this.reusable = false;
      this.framing = Framing.Chunked;
      this.chunkState = ChunkState.Size;
      this.line = '';
    } else if (length !== undefined) {
      this.framing = Framing.Length;
      this.remaining = Number(length);
      headers.push('content-length', length);
    } else {
      this.framing = Framing.UntilClose;
      this.reusable = false;
    }
    if (exchange.responseEdits !== undefined) editFlatHeaders(headers, exchange.responseEdits);
    if (exchange.setCookie !== undefined) headers.push('set-cookie', exchange.setCookie);
    const coding = exchange.compression === undefined || this.framing === Framing.None ? undefined : chooseCoding(exchange.compression.rule, exchange.compression.request, status, headers);
    if (coding !== undefined) compressedHead(headers, coding);
    try {
      if (exchange.http2) exchange.res.writeHead(status, headers);
      else exchange.res.writeHead(status, statusMatch[2] || undefined, headers);
      this.sink = exchange.res;
      if (coding !== undefined) {
        const zipped = compressor(coding);
        zipped.on('error', () => exchange.res.destroy());
        exchange.res.once('close', () => zipped.destroy());
        zipped.pipe(exchange.res);
        this.sink = zipped;
      }
    } catch {
      // Whatever Node still refuses in a head costs this exchange, never the process.
      this.fail('protocol');
      return false;
    }
    this.responded = true;
    return true;
  }

  private write(exchange: Exchange, data: Buffer): void {
    const sink = this.sink ?? exchange.res;
    if (!sink.write(data) && !this.waitingForDrain) {
      this.waitingForDrain = true;
      this.socket.pause();
      // The backend is not idle while the client reads slowly: its timer waits too.
      this.socket.setTimeout(0);
      sink.once('drain', () => {
        if (this.exchange !== exchange) return; // finish() already resumed the socket
        this.waitingForDrain = false;
        this.socket.setTimeout(exchange.timeoutMs);
        this.socket.resume();
      });
    }
  }

  private body(exchange: Exchange, chunk: Buffer): void {
    switch (this.framing) {
      case Framing.None:
        this.fail('protocol'); // bytes after a complete response
        return;
      case Framing.UntilClose:
        this.write(exchange, chunk);
        return;
      case Framing.Length: {
        if (chunk.length > this.remaining) {
          this.fail('protocol');
          return;
        }
        this.remaining -= chunk.length;
        // The last piece goes out with the end of the response: one write (syscall) less.
        if (this.remaining === 0) this.finish(exchange, chunk);
        else this.write(exchange, chunk);
        return;
      }
      case Framing.Chunked:
        this.chunked(exchange, chunk);
    }
  }

  /** Decodes a chunked body, writing the data to the client (Node frames it again). */
  private chunked(exchange: Exchange, chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.chunkState === ChunkState.Data) {
        const take = Math.min(this.remaining, chunk.length - pos);
        this.write(exchange, chunk.subarray(pos, pos + take));
        this.remaining -= take;
        pos += take;
        if (this.remaining === 0) this.chunkState = ChunkState.DataEnd;
        continue;
      }
      const newline = chunk.indexOf(10, pos);
      const end = newline === -1 ? chunk.length : newline + 1;
      this.line += chunk.toString('latin1', pos, end);
      pos = end;
      if (newline === -1) {
        if (this.line.length > 4096) this.fail('protocol');
        return;
      }
      const raw = this.line;
      this.line = '';
      // Every line of the chunked framing ends with CRLF, and nothing else may sit in it.
      if (!raw.endsWith('\r\n') || raw.indexOf('\r') !== raw.length - 2) {
        this.fail('protocol');
        return;
      }
      const line = raw.slice(0, -2);
      if (this.chunkState === ChunkState.Size) {
        const size = CHUNK_SIZE.exec(line)?.[1];
        if (size === undefined || size.length > 12) {
          this.fail('protocol');
          return;
        }
        this.remaining = Number.parseInt(size, 16);
        this.chunkState = this.remaining === 0 ? ChunkState.Trailers : ChunkState.Data;
      } else if (this.chunkState === ChunkState.DataEnd) {
        if (line !== '') {
          this.fail('protocol'); // chunk data longer than its size said
          return;
        }
        this.chunkState = ChunkState.Size;
      } else if (line === '') {
        this.finish(exchange);
        if (pos < chunk.length) this.fail('protocol');
        return;
      } else if (!validField(line)) {
        this.fail('protocol'); // a trailer that is not a header field
        return;
      }
    }
  }

  private finish(exchange: Exchange, last?: Buffer): void {
    (this.sink ?? exchange.res).end(last);
    this.sink = undefined;
    this.exchange = undefined;
    // The response is complete; what it still buffers is its own. The socket must read again.
    if (this.waitingForDrain) {
      this.waitingForDrain = false;
      this.socket.resume();
    }
    if (this.reusable && exchange.closeAfter !== true && exchange.body?.readableEnded !== false) {
      this.socket.setTimeout(IDLE_SOCKET_MS);
      this.release(this);
    } else {
      this.socket.destroy();
    }
  }

  private onTimeout(): void {
    if (this.exchange === undefined) this.socket.destroy();
    else if (!this.connected) this.fail('connect', true);
    else this.fail('timeout');
  }

  private onClose(): void {
    const exchange = this.exchange;
    if (exchange === undefined) return;
    if (this.responded && this.framing === Framing.UntilClose) {
      this.exchange = undefined;
      (this.sink ?? exchange.res).end();
      this.sink = undefined;
      return;
    }
    if (!this.connected) {
      // Never connected: nothing was sent, no replica listens there (503).
      this.fail('connect', true);
      return;
    }
    // Closed without an answer (502). The backend may have acted on the request: it is sent
    // again only when that is safe, on a pooled connection it may have closed while idle.
    this.fail('protocol', this.reused && !this.received && IDEMPOTENT.has(exchange.method));
  }

  private fail(kind: UpstreamFailure, retryable = false): void {
    const exchange = this.exchange;
    this.exchange = undefined;
    this.sink = undefined;
    this.socket.destroy();
    if (exchange === undefined) return;
    if (this.responded) exchange.res.destroy();
    else exchange.onFailure(kind, retryable && exchange.body === undefined);
  }
}

/** How to reach replicas that speak TLS themselves (httpsPort). */
export interface UpstreamTls {
  /** Server name sent by SNI and checked against the replica's certificate. */
  readonly servername: string;
  readonly verify: boolean;
}

/** Keep-alive connections per backend address:port (and TLS or not). */
export class UpstreamPool {
  private readonly idle = new Map<string, UpstreamConnection[]>();

  /** Idle connections held, for status: connections a backend closed, and addresses gone, are forgotten. */
  get idleConnections(): number {
    let count = 0;
    for (const list of this.idle.values()) count += list.length;
    return count;
  }

  send(address: string, port: number, exchange: Exchange, secure?: UpstreamTls): void {
    const key = secure === undefined ? `${address}:${port}` : `${address}:${port}:tls:${secure.servername}:${secure.verify}`;
    const free = this.idle.get(key);
    let connection = free?.pop();
    while (connection !== undefined && connection.socket.destroyed) connection = free?.pop();
    if (connection !== undefined) {
      connection.start(exchange, true);
      return;
    }
    const socket =
      secure === undefined
        ? net.connect({ host: address, port })
        : tls.connect({ host: address, port, servername: secure.servername, rejectUnauthorized: secure.verify, ALPNProtocols: ['http/1.1'] });
    const created = new UpstreamConnection(socket, (done) => {
      let list = this.idle.get(key);
      if (list === undefined) this.idle.set(key, (list = []));
      if (list.length < 256 && !done.socket.destroyed) list.push(done);
      else done.socket.destroy();
    });
    socket.once('close', () => {
      const list = this.idle.get(key);
      if (list === undefined) return;
      const at = list.indexOf(created);
      if (at !== -1) list.splice(at, 1);
      if (list.length === 0) this.idle.delete(key);
    });
    created.start(exchange, false);
  }

  destroy(): void {
    for (const list of this.idle.values()) for (const connection of list) connection.socket.destroy();
    this.idle.clear();
  }
}
