/**
 * Harness of the differential HTTP conformance suite (differential.test.ts): strict HTTP/1.1
 * parsers for what each side of a proxy emits, a backend that records exactly what reaches it,
 * a raw client, and the safety checks run on each data plane with HAProxy as the reference.
 *
 * Every request a case sends carries a nonce in its path (/d/NONCE/...), so requests at the
 * backend and the answers echoed back are attributed to the case that caused them however many
 * cases run at once through the same proxy and the same pooled backend connections.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';

/** RFC 9110 5.6.2 token. */
export const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** RFC 9110 5.5 field value without its surrounding whitespace: no CR, LF, NUL or other controls. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** chunk-size [ chunk-ext ] (RFC 9112 7.1.1), ext values as tokens or quoted strings. */
const CHUNK_LINE =
  /^([0-9a-fA-F]{1,12})((?:[ \t]*;[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:[ \t]*=[ \t]*(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+|"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"))?)*)$/;
const STATUS_LINE = /^HTTP\/1\.[01] ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?$/;
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e]+) HTTP\/1\.([01])$/;
const NONCE_IN_TARGET = /^\/d\/(n[0-9a-z]+)(?:[/?]|$)/;
const MAX_HEAD = 64 * 1024;

export type Header = readonly [name: string, value: string];

export function headerValues(headers: readonly Header[], name: string): string[] {
  const lower = name.toLowerCase();
  return headers.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
}

/** Bytes as a readable string: printable ASCII kept, the rest escaped (\r \n \0 \xNN). */
export function show(data: Buffer | string, max = 600): string {
  const text = typeof data === 'string' ? data : data.toString('latin1');
  const cut = text.length > max ? `${text.slice(0, max)}…(${text.length} bytes)` : text;
  return cut.replace(/[^\x20-\x7e]/g, (c) => {
    if (c === '\r') return '\\r';
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\0') return '\\0';
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

/** A request target as the backend echoes it: everything but visible ASCII percent-escaped. */
export function escapeTarget(target: string): string {
  return target.replace(/[^\x21-\x7e]|%/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** The origin form of a request target (absolute-form `http://h/p` -> `/p`). */
export function originForm(target: string): string {
  const absolute = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(target);
  if (absolute === null) return target;
  const rest = target.slice(absolute[0].length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}

export function nonceOf(target: string): string | undefined {
  return NONCE_IN_TARGET.exec(originForm(target))?.[1];
}

let nonces = 0;
/** A fresh nonce, a single path segment: n, a counter and random letters. */
export function newNonce(): string {
  nonces++;
  return `n${nonces.toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

/** Parses field lines strictly (RFC 9112 5): an error string, or the fields. */
export function parseFieldLines(lines: readonly string[]): Header[] | string {
  const out: Header[] = [];
  for (const line of lines) {
    if (/[\r\n]/.test(line)) return `bare CR or LF in ${show(line, 120)}`;
    const colon = line.indexOf(':');
    if (colon <= 0) return `field line without name and colon: ${show(line, 120)}`;
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!TOKEN.test(name)) return `invalid field name ${show(name, 120)}`;
    if (!FIELD_VALUE.test(value)) return `invalid field value ${show(value, 120)}`;
    out.push([name, value]);
  }
  return out;
}

type ChunkedResult =
  | { readonly kind: 'need' }
  | { readonly kind: 'error'; readonly reason: string }
  | { readonly kind: 'ok'; readonly body: Buffer; readonly trailers: Header[]; readonly end: number };

/** Decodes a chunked body strictly from `start`. */
export function decodeChunked(data: Buffer, start: number): ChunkedResult {
  let pos = start;
  const parts: Buffer[] = [];
  for (;;) {
    const eol = data.indexOf('\r\n', pos);
    if (eol === -1) {
      if (data.length - pos > 4096) return { kind: 'error', reason: 'chunk size line too long' };
      if (data.subarray(pos).some((byte) => byte === 10)) return { kind: 'error', reason: `bare LF in chunk size line ${show(data.subarray(pos), 80)}` };
      return { kind: 'need' };
    }
    const line = data.toString('latin1', pos, eol);
    const match = CHUNK_LINE.exec(line);
    if (match === null) return { kind: 'error', reason: `invalid chunk size line ${show(line, 80)}` };
    const size = Number.parseInt(match[1] as string, 16);
    pos = eol + 2;
    if (size === 0) {
      if (data.length < pos + 2) return { kind: 'need' };
      if (data[pos] === 13 && data[pos + 1] === 10) return { kind: 'ok', body: Buffer.concat(parts), trailers: [], end: pos + 2 };
      const end = data.indexOf('\r\n\r\n', pos);
      if (end === -1) return data.length - pos > MAX_HEAD ? { kind: 'error', reason: 'trailer section too long' } : { kind: 'need' };
      const trailers = parseFieldLines(data.toString('latin1', pos, end).split('\r\n'));
      if (typeof trailers === 'string') return { kind: 'error', reason: `trailer: ${trailers}` };
      return { kind: 'ok', body: Buffer.concat(parts), trailers, end: end + 4 };
    }
    if (data.length < pos + size + 2) return { kind: 'need' };
    parts.push(data.subarray(pos, pos + size));
    if (data[pos + size] !== 13 || data[pos + size + 1] !== 10) return { kind: 'error', reason: 'chunk data not followed by CRLF' };
    pos += size + 2;
  }
}

/** Message framing from the fields, strictly: a body length, chunked, none given, or an error. */
function framingOf(headers: readonly Header[]): { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'none' } | { kind: 'error'; reason: string } | { kind: 'codings'; codings: string[] } {
  const lengths = headerValues(headers, 'content-length');
  const encodings = headerValues(headers, 'transfer-encoding');
  if (lengths.length > 0 && encodings.length > 0) return { kind: 'error', reason: 'both Content-Length and Transfer-Encoding' };
  if (encodings.length > 0) {
    const codings = encodings.join(',').split(',').map((t) => t.trim().toLowerCase());
    return codings.at(-1) === 'chunked' && codings.filter((c) => c === 'chunked').length === 1 ? { kind: 'chunked' } : { kind: 'codings', codings };
  }
  if (lengths.length > 1) return { kind: 'error', reason: `${lengths.length} Content-Length fields (${lengths.join(' | ')})` };
  if (lengths.length === 1) {
    const value = lengths[0] as string;
    if (!/^[0-9]{1,15}$/.test(value)) return { kind: 'error', reason: `invalid Content-Length ${show(value, 40)}` };
    return { kind: 'length', length: Number(value) };
  }
  return { kind: 'none' };
}

// ---------------------------------------------------------------------------------------------
// Responses, as a client reads them from the proxy.

export interface ParsedResponse {
  readonly status: number;
  readonly reason: string;
  readonly headers: readonly Header[];
  readonly body: Buffer;
  /** Interim (1xx) statuses received before this response. */
  readonly interim: readonly number[];
  /** False when the connection closed before the message ended. */
  readonly complete: boolean;
}

export interface ResponseStream {
  readonly responses: ParsedResponse[];
  /** Why the bytes stopped being valid HTTP/1.1, if they did. */
  readonly error?: string;
  /** Bytes of the message in progress (not yet complete, or cut by a close). */
  readonly pending: number;
}

export function header(response: ParsedResponse, name: string): string | undefined {
  return headerValues(response.headers, name)[0];
}

/**
 * Parses what a client received, strictly. `methodOf(i)` is the method of the i-th request on
 * the connection (HEAD responses have no body); `closed` tells whether the peer closed.
 */
export function parseResponseStream(data: Buffer, methodOf: (index: number) => string, closed: boolean): ResponseStream {
  const responses: ParsedResponse[] = [];
  let pos = 0;
  let interim: number[] = [];
  const stop = (error?: string): ResponseStream => ({ responses, ...(error === undefined ? {} : { error }), pending: data.length - pos });
  while (pos < data.length) {
    const end = data.indexOf('\r\n\r\n', pos);
    if (end === -1) {
      if (data.length - pos > MAX_HEAD) return stop('response head too long');
      if (closed) return stop(`response cut in its head: ${show(data.subarray(pos), 200)}`);
      return stop();
    }
    const lines = data.toString('latin1', pos, end).split('\r\n');
    const statusLine = lines[0] ?? '';
    const status = STATUS_LINE.exec(statusLine);
    if (status === null || /[\r\n]/.test(statusLine)) return stop(`invalid status line ${show(statusLine, 120)}`);
    const headers = parseFieldLines(lines.slice(1));
    if (typeof headers === 'string') return stop(headers);
    const code = Number(status[1]);
    const bodyStart = end + 4;
    if (code >= 100 && code < 200 && code !== 101) {
      interim.push(code);
      pos = bodyStart;
      continue;
    }
    const method = methodOf(responses.length);
    const base = { status: code, reason: status[2] ?? '', headers, interim };
    interim = [];
    const framing = framingOf(headers);
    if (framing.kind === 'error') return stop(framing.reason);
    if (code === 101 || method === 'HEAD' || code === 204 || code === 304) {
      // RFC 9112 6.1: never in a 204 (a 304 may name the coding the 200 would have had).
      if (code === 204 && (framing.kind === 'chunked' || framing.kind === 'codings')) return stop('204 with Transfer-Encoding');
      responses.push({ ...base, body: Buffer.alloc(0), complete: true });
      pos = bodyStart;
      if (code === 101) return { responses, pending: 0 };
      continue;
    }
    if (framing.kind === 'length') {
      if (data.length < bodyStart + framing.length) {
        if (closed) {
          responses.push({ ...base, body: data.subarray(bodyStart), complete: false });
          pos = data.length;
          return { responses, pending: 0 };
        }
        return stop();
      }
      responses.push({ ...base, body: data.subarray(bodyStart, bodyStart + framing.length), complete: true });
      pos = bodyStart + framing.length;
      continue;
    }
    if (framing.kind === 'chunked') {
      const decoded = decodeChunked(data, bodyStart);
      if (decoded.kind === 'error') return stop(decoded.reason);
      if (decoded.kind === 'need') {
        if (closed) {
          responses.push({ ...base, body: data.subarray(bodyStart), complete: false });
          pos = data.length;
          return { responses, pending: 0 };
        }
        return stop();
      }
      responses.push({ ...base, body: decoded.body, complete: true });
      pos = decoded.end;
      continue;
    }
    // Read until the connection closes (no length, or a coding other than chunked last).
    if (!closed) return stop();
    responses.push({ ...base, body: data.subarray(bodyStart), complete: true });
    pos = data.length;
  }
  return stop();
}

// ---------------------------------------------------------------------------------------------
// Requests, as the backend reads them from the proxy.

export interface ParsedRequest {
  readonly method: string;
  readonly target: string;
  readonly minor: number;
  readonly headers: readonly Header[];
  readonly body: Buffer;
  readonly head: string;
}

type RequestParse =
  | { readonly kind: 'need'; readonly head?: { readonly expectContinue: boolean; readonly method: string; readonly target: string } }
  | { readonly kind: 'error'; readonly reason: string; readonly head: string }
  | { readonly kind: 'ok'; readonly request: ParsedRequest; readonly end: number; readonly anomalies: string[] };

/** Parses one request at the start of `data`, strictly: what a proxy sends must be unambiguous. */
export function parseRequest(data: Buffer): RequestParse {
  const end = data.indexOf('\r\n\r\n');
  if (end === -1) {
    return data.length > MAX_HEAD ? { kind: 'error', reason: 'request head too long', head: show(data, 200) } : { kind: 'need' };
  }
  const head = data.toString('latin1', 0, end);
  const lines = head.split('\r\n');
  const line = REQUEST_LINE.exec(lines[0] ?? '');
  if (line === null) return { kind: 'error', reason: `invalid request line ${show(lines[0] ?? '', 200)}`, head };
  const headers = parseFieldLines(lines.slice(1));
  if (typeof headers === 'string') return { kind: 'error', reason: headers, head };
  const anomalies: string[] = [];
  const hosts = headerValues(headers, 'host');
  if (hosts.length > 1) anomalies.push(`${hosts.length} Host fields (${hosts.join(' | ')})`);
  // RFC 9112 3.2: a client (here the proxy) must send Host in every HTTP/1.1 request.
  if (hosts.length === 0 && line[3] === '1') anomalies.push('no Host field in an HTTP/1.1 request');
  const framing = framingOf(headers);
  if (framing.kind === 'error') return { kind: 'error', reason: framing.reason, head };
  if (framing.kind === 'codings') return { kind: 'error', reason: `request Transfer-Encoding not ending in chunked: ${framing.codings.join(', ')}`, head };
  const request = (body: Buffer): ParsedRequest => ({ method: line[1] as string, target: line[2] as string, minor: Number(line[3]), headers, body, head });
  const bodyStart = end + 4;
  const waiting = { kind: 'need', head: { expectContinue: headerValues(headers, 'expect').some((v) => v.toLowerCase() === '100-continue'), method: line[1] as string, target: line[2] as string } } as const;
  if (framing.kind === 'length') {
    if (data.length < bodyStart + framing.length) return waiting;
    return { kind: 'ok', request: request(data.subarray(bodyStart, bodyStart + framing.length)), end: bodyStart + framing.length, anomalies };
  }
  if (framing.kind === 'chunked') {
    const decoded = decodeChunked(data, bodyStart);
    if (decoded.kind === 'error') return { kind: 'error', reason: decoded.reason, head };
    if (decoded.kind === 'need') return waiting;
    return { kind: 'ok', request: request(decoded.body), end: decoded.end, anomalies };
  }
  return { kind: 'ok', request: request(Buffer.alloc(0)), end: bodyStart, anomalies };
}

// ---------------------------------------------------------------------------------------------
// The recording backend.

export interface BackendRequest extends ParsedRequest {
  readonly connection: number;
  readonly seq: number;
  readonly nonce: string | undefined;
  /** What the proxy sent that a strict parser does not accept as is (the request was still answered). */
  readonly anomalies: readonly string[];
  /**
   * Received on a connection the backend had already closed its side of (after a canned answer
   * with `close`): it could not be answered, so the proxy may legitimately send it again.
   */
  readonly unanswerable: boolean;
}

export interface Anomaly {
  readonly connection: number;
  /** The nonce of the malformed request when its head names one, else of the previous request on the connection. */
  readonly nonce: string | undefined;
  readonly reason: string;
  readonly excerpt: string;
}

export interface CannedResponse {
  readonly bytes: Buffer;
  /** Close the connection once written. */
  readonly close: boolean;
}

const echoResponse = (method: string, target: string, seq: number | string, bodyLength: number) => {
  const body = `echo ${seq}`;
  return `HTTP/1.1 200 OK\r\nx-echo: ${escapeTarget(method)} ${escapeTarget(originForm(target))}\r\nx-body-length: ${bodyLength}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${method === 'HEAD' ? '' : body}`;
};

/**
 * A backend that parses what the proxy sends strictly, records every request and every
 * malformed byte sequence, and answers: /d/NONCE/r with the bytes registered for NONCE,
 * /d/NONCE/early as soon as the head is in (before the body, as servers refusing a request
 * often do), anything else with an echo naming the request (x-echo: METHOD TARGET).
 */
export class RecordingBackend {
  readonly requests: BackendRequest[] = [];
  readonly anomalies: Anomaly[] = [];
  readonly canned = new Map<string, CannedResponse>();
  private readonly byNonce = new Map<string, BackendRequest[]>();
  private readonly anomaliesByNonce = new Map<string, Anomaly[]>();
  private readonly sockets = new Set<net.Socket>();
  private server: net.Server | undefined;
  private connections = 0;
  port = 0;

  async start(): Promise<void> {
    const server = net.createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
  }

  requestsOf(nonce: string): BackendRequest[] {
    return this.byNonce.get(nonce) ?? [];
  }

  anomaliesOf(nonce: string): Anomaly[] {
    return this.anomaliesByNonce.get(nonce) ?? [];
  }

  private accept(socket: net.Socket): void {
    const connection = ++this.connections;
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.setNoDelay(true);
    let buffered: Buffer = Buffer.alloc(0);
    let continued = false;
    let answeredEarly = false;
    let ended = false;
    let lastNonce: string | undefined;
    const anomaly = (reason: string, head: string, excerpt: Buffer) => {
      const firstLine = head.split('\r\n')[0] ?? '';
      const target = /^\S+ (\S+)/.exec(firstLine)?.[1];
      const nonce = (target === undefined ? undefined : nonceOf(target)) ?? /\/d\/(n[0-9a-z]+)/.exec(head)?.[1] ?? lastNonce;
      const recorded: Anomaly = { connection, nonce, reason, excerpt: show(excerpt, 400) };
      this.anomalies.push(recorded);
      if (nonce !== undefined) this.anomaliesByNonce.set(nonce, [...this.anomaliesOf(nonce), recorded]);
    };
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      for (;;) {
        if (buffered.length === 0 || socket.destroyed) return;
        const parsed = parseRequest(buffered);
        if (parsed.kind === 'need') {
          if (parsed.head !== undefined && !continued) {
            continued = true;
            if (/^\/d\/[0-9a-z]+\/early(?:[/?]|$)/.test(originForm(parsed.head.target))) {
              answeredEarly = true;
              socket.write(echoResponse(parsed.head.method, parsed.head.target, 'early', 0));
            } else if (parsed.head.expectContinue) {
              socket.write('HTTP/1.1 100 Continue\r\n\r\n');
            }
          }
          return;
        }
        if (parsed.kind === 'error') {
          anomaly(parsed.reason, parsed.head, buffered);
          socket.destroy();
          return;
        }
        buffered = buffered.subarray(parsed.end);
        continued = false;
        const early = answeredEarly;
        answeredEarly = false;
        const nonce = nonceOf(parsed.request.target);
        lastNonce = nonce ?? lastNonce;
        const request: BackendRequest = { ...parsed.request, connection, seq: this.requests.length, nonce, anomalies: parsed.anomalies, unanswerable: ended };
        this.requests.push(request);
        if (nonce !== undefined) this.byNonce.set(nonce, [...this.requestsOf(nonce), request]);
        for (const reason of parsed.anomalies) anomaly(reason, parsed.request.head, Buffer.from(parsed.request.head, 'latin1'));
        const canned = nonce === undefined || !/^\/d\/[0-9a-z]+\/r(?:[/?]|$)/.test(originForm(request.target)) ? undefined : this.canned.get(nonce);
        if (canned !== undefined) {
          socket.write(canned.bytes);
          if (canned.close) {
            ended = true;
            socket.end();
            return;
          }
          continue;
        }
        if (early) continue;
        if (/^\/d\/[0-9a-z]+\/early(?:[/?]|$)/.test(originForm(request.target))) {
          socket.write(echoResponse(request.method, request.target, 'early', 0));
          continue;
        }
        socket.write(echoResponse(request.method, request.target, request.seq, request.body.length));
      }
    });
  }

  /** Closes every connection, so that no state a faulty proxy left on one carries over to the next cases. */
  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server === undefined ? resolve() : this.server.close(() => resolve())));
  }
}

// ---------------------------------------------------------------------------------------------
// The raw client.

/** Waits (up to its deadline) until what the client received so far passes `until`. */
export interface WaitFor {
  readonly until: (received: Buffer) => boolean;
  readonly timeoutMs: number;
  readonly label: string;
}

export type Step = string | Buffer | WaitFor;

export interface RawResult {
  readonly data: Buffer;
  /** The proxy closed (or reset) the connection. */
  readonly closed: boolean;
  /** The deadline passed before `done` and before a close. */
  readonly timedOut: boolean;
  /** Labels of WaitFor steps whose condition never came. */
  readonly missed: readonly string[];
}

/**
 * Connects, writes the steps in order (a WaitFor waits for what was received), then reads until
 * `done(received)`, a close, or `deadlineMs` after connecting; then the socket is destroyed.
 * `done` is also consulted after each step, for a socket that may be kept for a next exchange.
 */
export function rawExchange(port: number, steps: readonly Step[], done: (received: Buffer) => boolean, deadlineMs: number, keep?: net.Socket): Promise<RawResult & { socket: net.Socket }> {
  return new Promise((resolve) => {
    const socket = keep ?? net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let received: Buffer = Buffer.alloc(0);
    let closed = socket.destroyed;
    const missed: string[] = [];
    let waiting: { step: WaitFor; resume: () => void; timer: NodeJS.Timeout } | undefined;
    let finished = false;
    const finish = (timedOut: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(deadline);
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve({ data: received, closed, timedOut, missed, socket });
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      received = Buffer.concat(chunks);
      if (waiting !== undefined && waiting.step.until(received)) {
        const { resume, timer } = waiting;
        clearTimeout(timer);
        waiting = undefined;
        resume();
        return;
      }
      if (waiting === undefined && stepsDone && done(received)) finish(false);
    };
    const onClose = () => {
      closed = true;
      if (waiting !== undefined) {
        clearTimeout(waiting.timer);
        waiting = undefined;
      }
      finish(false);
    };
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', () => undefined);
    const deadline = setTimeout(() => finish(true), deadlineMs);
    let stepsDone = false;
    const run = (index: number): void => {
      if (finished || closed) return;
      if (index === steps.length) {
        stepsDone = true;
        if (done(received)) finish(false);
        return;
      }
      const step = steps[index] as Step;
      if (typeof step === 'string' || Buffer.isBuffer(step)) {
        socket.write(typeof step === 'string' ? Buffer.from(step, 'latin1') : step);
        run(index + 1);
        return;
      }
      if (step.until(received)) {
        run(index + 1);
        return;
      }
      waiting = {
        step,
        resume: () => run(index + 1),
        timer: setTimeout(() => {
          waiting = undefined;
          missed.push(step.label);
          run(index + 1);
        }, step.timeoutMs),
      };
    };
    if (keep !== undefined) run(0);
    else socket.once('connect', () => run(0));
  });
}

// ---------------------------------------------------------------------------------------------
// Outcomes and verdicts.

/** What the first final answer on a connection was. */
export type AnswerClass = '1xx' | '2xx' | '3xx' | '4xx' | '5xx' | 'closed' | 'aborted' | 'pending' | 'garbage';

export function isRefusal(value: AnswerClass): boolean {
  return value !== '2xx' && value !== '3xx' && value !== '1xx';
}

export function classOf(stream: ResponseStream, result: RawResult, index = 0): AnswerClass {
  const response = stream.responses[index];
  if (response !== undefined) return response.complete ? (`${Math.floor(response.status / 100)}xx` as AnswerClass) : 'aborted';
  if (stream.error !== undefined) return 'garbage';
  if (result.closed) return stream.pending > 0 ? 'aborted' : 'closed';
  return 'pending';
}

/**
 * The differential rule: the built-in plane answers in HAProxy's class, or refuses where
 * HAProxy refuses; it may refuse what HAProxy accepts only where `mayRefuse` says why.
 */
export function differentialProblem(haproxy: AnswerClass, builtin: AnswerClass, mayRefuse: string | undefined): string | undefined {
  // HAProxy relaying invalid HTTP is no reference (its own safety check reports it).
  if (haproxy === builtin || haproxy === 'garbage') return undefined;
  if (isRefusal(haproxy)) return isRefusal(builtin) ? undefined : `built-in plane accepts (${builtin}) what HAProxy refuses (${haproxy})`;
  if (isRefusal(builtin)) return mayRefuse === undefined ? `built-in plane refuses (${builtin}) what HAProxy accepts (${haproxy})` : undefined;
  return `built-in plane answers ${builtin} where HAProxy answers ${haproxy}`;
}

/** Runs `tasks` with at most `limit` at once. */
export async function pool<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const index = next++;
      if (index >= items.length) return;
      results[index] = await task(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

// ---------------------------------------------------------------------------------------------
// Running cases on a plane.

export interface Plane {
  readonly kind: 'builtin' | 'haproxy';
  /** The proxy's HTTP port. */
  readonly port: number;
  readonly backend: RecordingBackend;
}

/** A request an RFC 9112 server processes: 'METHOD /origin-form-target', and the body it forwards when given. */
export interface ExpectedRequest {
  readonly line: string;
  readonly body?: string;
}

export const followUp = (nonce: string, name = 'follow') => `GET /d/${nonce}/${name} HTTP/1.1\r\nHost: t\r\n\r\n`;

export const lineOf = (request: ParsedRequest) => `${request.method} ${originForm(request.target)}`;
export const echoOf = (line: string) => {
  const space = line.indexOf(' ');
  return `${escapeTarget(line.slice(0, space))} ${escapeTarget(line.slice(space + 1))}`;
};
export const echoed = (response: ParsedResponse) => header(response, 'x-echo');
/** A real echo from the backend, not one forged inside a body the proxy misframed. */
const genuine = (response: ParsedResponse) => echoed(response) !== undefined && header(response, 'x-body-length') !== undefined && /^(echo (\d+|early))?$/.test(response.body.toString('latin1'));

/** A genuine echo of one of `requests` (the backend's sequence number matches), not a forged one. */
export function authentic(response: ParsedResponse, requests: readonly BackendRequest[]): boolean {
  const echo = echoed(response);
  if (echo === undefined || !genuine(response)) return false;
  const body = response.body.toString('latin1');
  return body === 'echo early' || body === '' || requests.some((r) => echoOf(lineOf(r)) === echo && body === `echo ${r.seq}`);
}

/** Whether the plane still answers an ordinary request, on a new connection. */
export async function alive(plane: Plane, nonce: string): Promise<boolean> {
  const request = followUp(nonce, 'alive');
  const result = await rawExchange(plane.port, [request], (data) => parseResponseStream(data, () => 'GET', false).responses.length > 0, 5000);
  result.socket.destroy();
  const response = parseResponseStream(result.data, () => 'GET', result.closed).responses[0];
  return response !== undefined && response.status === 200 && echoed(response) === `GET /d/${nonce}/alive`;
}

export interface RunOutcome {
  readonly plane: Plane['kind'];
  readonly nonce: string;
  readonly sent: Buffer;
  readonly result: RawResult;
  readonly stream: ResponseStream;
  readonly first: AnswerClass;
  /** Requests of this case that reached the backend (not counting the liveness check). */
  readonly backend: readonly BackendRequest[];
  readonly problems: string[];
}

/** A one-line account of an outcome, for failure messages and the verbose table. */
export function describeOutcome(outcome: RunOutcome): string {
  const answers = outcome.stream.responses.map((r) => `${r.status}${r.complete ? '' : '(cut)'}${echoed(r) === undefined ? '' : `[${show(echoed(r) ?? '', 80)}]`}`);
  const end = outcome.result.closed ? 'closed' : outcome.result.timedOut ? 'open (deadline)' : 'open';
  const backend = outcome.backend.map((r) => `${show(lineOf(r), 80)}${r.body.length > 0 ? ` +${r.body.length}B` : ''} (connection ${r.connection}${r.unanswerable ? ', closed' : ''})`);
  return `${outcome.plane}: ${answers.join(', ') || 'no answer'}; ${end}${outcome.stream.error === undefined ? '' : `; malformed: ${outcome.stream.error}`}; backend saw [${backend.join(', ')}]`;
}

/**
 * What the proxy sent the backend that is wrong, given what the client sent: a request without
 * Host counts only when the client did send one (a proxy does not invent a missing Host).
 */
export function anomaliesFor(backend: RecordingBackend, nonce: string, sent: string): Anomaly[] {
  const clientHost = /(^|\n)host:/i.test(sent);
  return backend.anomaliesOf(nonce).filter((a) => clientHost || !a.reason.startsWith('no Host field'));
}

/** Is `wanted` a subsequence of `lines`, greedily? Returns the unmatched lines. */
function unmatched(got: readonly BackendRequest[], allowed: readonly ExpectedRequest[]): { extra: BackendRequest[]; matched: [BackendRequest, ExpectedRequest][] } {
  const extra: BackendRequest[] = [];
  const matched: [BackendRequest, ExpectedRequest][] = [];
  let at = 0;
  for (const request of got) {
    const line = lineOf(request);
    let found = -1;
    for (let i = at; i < allowed.length; i++) {
      if ((allowed[i] as ExpectedRequest).line === line) {
        found = i;
        break;
      }
    }
    if (found === -1) extra.push(request);
    else {
      matched.push([request, allowed[found] as ExpectedRequest]);
      at = found + 1;
    }
  }
  return { extra, matched };
}

export interface RequestRun {
  /** The client's steps, `{n}` replaced by the nonce. */
  readonly steps: readonly Step[];
  /** What an RFC 9112 server processes from the steps, in order. */
  readonly expected: readonly ExpectedRequest[];
  /** Requests (of `expected`) that must be answered when the first one is accepted. */
  readonly mustAnswer: number;
  /** Whether the proxy must close the connection after answering `expected`. */
  readonly closes: boolean;
  readonly deadlineMs: number;
  /** Another client's request afterwards (new connection), which must get its own answer. */
  readonly then?: { readonly send: string; readonly line: string };
  /** The backend answers /d/NONCE/r with these bytes; the client must get this body (a prefix of it if cut). */
  readonly answer?: { readonly response: string; readonly body: string };
}

/**
 * Sends a request case and checks the safety properties: valid HTTP back, each answer that of
 * the request in its position (no desync), nothing at the backend that the client did not send
 * (no smuggling), nothing malformed sent to the backend, and the proxy still serving.
 */
export async function runRequest(plane: Plane, nonce: string, run: RequestRun): Promise<RunOutcome> {
  if (run.answer !== undefined) plane.backend.canned.set(nonce, { bytes: Buffer.from(run.answer.response, 'latin1'), close: false });
  const methods = run.expected.map((e) => e.line.split(' ')[0] as string);
  const methodOf = (i: number) => methods[i] ?? 'GET';
  const done = (data: Buffer) => {
    const stream = parseResponseStream(data, methodOf, false);
    return stream.error !== undefined || (!run.closes && stream.responses.filter((r) => r.complete).length >= run.expected.length);
  };
  const result = await rawExchange(plane.port, run.steps, done, run.deadlineMs);
  result.socket.destroy();
  const stream = parseResponseStream(result.data, methodOf, result.closed);
  const problems: string[] = [];
  if (run.then !== undefined) {
    const then = run.then;
    const second = await rawExchange(plane.port, [then.send], (data) => parseResponseStream(data, () => 'GET', false).responses.length > 0, run.deadlineMs);
    second.socket.destroy();
    const answer = parseResponseStream(second.data, () => 'GET', second.closed);
    const response = answer.responses[0];
    if (answer.error !== undefined || response === undefined || echoed(response) !== echoOf(then.line) || !genuine(response)) {
      problems.push(`desync: another client's '${then.line}' afterwards got ${answer.error ?? (response === undefined ? 'no answer' : `${response.status} '${echoed(response) ?? ''}' ${show(response.body, 80)}`)}`);
    }
  }
  const living = await alive(plane, nonce);
  const allowed = run.then === undefined ? run.expected : [...run.expected, { line: run.then.line }];
  const backend = plane.backend.requestsOf(nonce).filter((r) => originForm(r.target) !== `/d/${nonce}/alive`);
  if (stream.error !== undefined) problems.push(`the client got malformed HTTP: ${stream.error}; bytes: ${show(result.data)}`);
  // One answer more than the requests processed is the refusal of the next one, when the proxy made it and closed.
  const surplus = stream.responses.length - run.expected.length;
  const last = stream.responses.at(-1);
  if (surplus > 1 || (surplus === 1 && (last === undefined || echoed(last) !== undefined || !result.closed))) {
    problems.push(`desync: ${stream.responses.length} answers to ${run.expected.length} requests`);
  }
  stream.responses.forEach((response, i) => {
    const echo = echoed(response);
    const wanted = run.expected[i];
    if (echo !== undefined && (wanted === undefined || echo !== echoOf(wanted.line) || !authentic(response, backend))) {
      problems.push(`desync: answer ${i + 1} is that of '${echo}' (body ${show(response.body, 60)}), expected that of '${wanted?.line ?? 'nothing'}'`);
    }
  });
  const { extra, matched } = unmatched(backend, allowed);
  const answer = run.answer;
  const firstAnswer = stream.responses[0];
  if (answer !== undefined && firstAnswer !== undefined && echoed(firstAnswer) === undefined && firstAnswer.status === 200) {
    const body = firstAnswer.body.toString('latin1');
    const wrong = firstAnswer.complete ? body !== answer.body : !answer.body.startsWith(body);
    if (wrong) {
      const at = [...body].findIndex((c, i) => c !== answer.body[i]);
      problems.push(`desync: the answer's body holds other bytes from offset ${at}: ${show(body.slice(at, at + 120))}`);
    }
  }
  stream.responses.forEach((response, i) => {
    const wanted = run.expected[i];
    const canned = run.answer !== undefined && i === 0 && response.status === 200;
    if (echoed(response) === undefined && !canned && wanted !== undefined && matched.some(([, e]) => e === wanted)) {
      problems.push(`the backend processed '${wanted.line}' but the client got ${response.status} (made by the proxy) in its place`);
    }
  });
  // A request processed after the proxy chose to close: its client never learns its fate (and may send it again).
  const begun = stream.responses.length;
  if (result.closed && stream.error === undefined) {
    for (const [request, wanted] of matched) {
      const position = run.expected.indexOf(wanted);
      if (position >= begun && position !== -1) problems.push(`the backend processed '${show(lineOf(request), 80)}' but the proxy closed the connection without its answer`);
    }
  }
  for (const request of extra) problems.push(`the backend received a request the client did not send as such (smuggling): ${show(request.head, 300)}`);
  for (const [request, wanted] of matched) {
    if (wanted.body !== undefined && request.body.toString('latin1') !== wanted.body) {
      problems.push(`'${wanted.line}' reached the backend with body ${show(request.body, 80)}, expected ${show(wanted.body, 80)}`);
    }
  }
  const sentText = run.steps.filter((step): step is string | Buffer => typeof step === 'string' || Buffer.isBuffer(step)).map((step) => (typeof step === 'string' ? step : step.toString('latin1'))).join('');
  for (const anomaly of anomaliesFor(plane.backend, nonce, sentText)) problems.push(`the proxy sent the backend malformed HTTP: ${anomaly.reason}: ${anomaly.excerpt}`);
  for (const label of result.missed) problems.push(`never received ${label}`);
  const first = classOf(stream, result);
  if (first === 'pending') problems.push(`neither an answer nor a close in ${run.deadlineMs} ms`);
  if (first === '2xx' && stream.error === undefined) {
    const answered = stream.responses.filter((r) => r.complete).length;
    if (answered < run.mustAnswer) problems.push(`only ${answered} of ${run.mustAnswer} pipelined requests answered`);
  }
  if (!living) problems.push('the proxy no longer answers an ordinary request');
  return { plane: plane.kind, nonce, sent: Buffer.concat(run.steps.filter((s): s is string | Buffer => typeof s === 'string' || Buffer.isBuffer(s)).map((s) => (typeof s === 'string' ? Buffer.from(s, 'latin1') : s))), result, stream, first, backend, problems };
}

export interface ResponseRun {
  readonly method: 'GET' | 'HEAD';
  readonly response: Buffer;
  readonly close: boolean;
  readonly deadlineMs: number;
  /**
   * First send an ordinary request on the same client connection: the request under test then
   * goes, as a rule, on the pooled backend connection that request just used.
   */
  readonly warm?: boolean;
}

export interface ResponseOutcome extends RunOutcome {
  /** The follow-up request's exchange. */
  readonly canary: { readonly stream: ResponseStream; readonly result: RawResult; readonly reused: boolean };
}

/** Whether an answer was made by the proxy itself (an error page) rather than relayed from the backend. */
export function proxyMade(response: ParsedResponse): boolean {
  // Both planes mark their error answers no-cache (a HEAD's has no body to tell by).
  return response.status >= 502 && response.status <= 504 && header(response, 'cache-control') === 'no-cache';
}

/**
 * Has the backend answer a request with exact bytes, then sends a follow-up request (on the same
 * client connection when it is still usable, else a new one) and checks it gets its own answer:
 * bytes left over from a bad response must never become the answer to another request.
 */
export async function runResponse(plane: Plane, nonce: string, run: ResponseRun): Promise<ResponseOutcome> {
  plane.backend.canned.set(nonce, { bytes: run.response, close: run.close });
  const request = `${run.method} /d/${nonce}/r HTTP/1.1\r\nHost: t\r\n\r\n`;
  const methodOf = (i: number) => (i === 0 ? run.method : 'GET');
  const done = (data: Buffer) => {
    const stream = parseResponseStream(data, methodOf, false);
    return stream.error !== undefined || (stream.responses[0]?.complete === true && stream.pending === 0);
  };
  let socket: net.Socket | undefined;
  if (run.warm === true) {
    const warm = await rawExchange(plane.port, [followUp(nonce, 'warm')], (data) => parseResponseStream(data, () => 'GET', false).responses.length > 0, run.deadlineMs);
    if (warm.closed || warm.timedOut) warm.socket.destroy();
    else socket = warm.socket;
  }
  const result = await rawExchange(plane.port, [request], done, run.deadlineMs, socket);
  const stream = parseResponseStream(result.data, methodOf, result.closed);
  const firstResponse = stream.responses[0];
  const reusable =
    !result.closed && !result.timedOut && stream.error === undefined && stream.responses.length === 1 && firstResponse?.complete === true &&
    firstResponse.status !== 101 && !(header(firstResponse, 'connection') ?? '').toLowerCase().includes('close');
  if (!reusable) result.socket.destroy();
  const canaryRequest = followUp(nonce, 'canary');
  const canaryDone = (data: Buffer) => {
    const s = parseResponseStream(data, () => 'GET', false);
    return s.error !== undefined || s.responses.length > 0;
  };
  let canaryResult = reusable
    ? await rawExchange(plane.port, [canaryRequest], canaryDone, run.deadlineMs, result.socket)
    : await rawExchange(plane.port, [canaryRequest], canaryDone, run.deadlineMs);
  canaryResult.socket.destroy();
  // A persistent connection the proxy closed without a byte of answer: a client sends again on a new one (RFC 9112 9.3.1).
  let canarySends = 1;
  if (reusable && canaryResult.closed && canaryResult.data.length === 0) {
    canarySends = 2;
    canaryResult = await rawExchange(plane.port, [canaryRequest], canaryDone, run.deadlineMs);
    canaryResult.socket.destroy();
  }
  const canaryStream = parseResponseStream(canaryResult.data, () => 'GET', canaryResult.closed);
  const living = await alive(plane, nonce);
  const backend = plane.backend.requestsOf(nonce).filter((r) => originForm(r.target) !== `/d/${nonce}/alive`);
  const problems: string[] = [];
  if (stream.error !== undefined) problems.push(`the client got malformed HTTP: ${stream.error}; bytes: ${show(result.data)}`);
  if (stream.responses.length > 1) problems.push(`desync: ${stream.responses.length} answers to one request: ${show(result.data)}`);
  // (A mutated answer may itself carry an x-echo field: only a genuine echo is another request's answer.)
  if (firstResponse !== undefined && authentic(firstResponse, plane.backend.requests.filter((r) => r.nonce === nonce))) {
    problems.push(`desync: the answer to the request is that of '${echoed(firstResponse)}'`);
  }
  const canary = canaryStream.responses[0];
  if (canaryStream.error !== undefined) problems.push(`the follow-up request got malformed HTTP: ${canaryStream.error}; bytes: ${show(canaryResult.data)}`);
  else if (canary === undefined) problems.push(`the follow-up request (${reusable ? 'same' : 'new'} connection) got no answer${canaryResult.closed ? ' (closed)' : ''}`);
  else if (!canary.complete || canary.status !== 200 || echoed(canary) !== `GET /d/${nonce}/canary` || !authentic(canary, backend)) {
    problems.push(`desync: the follow-up request (${reusable ? 'same' : 'new'} connection) got ${canary.status} '${echoed(canary) ?? ''}' ${show(canary.body, 80)}`);
  }
  if (canaryStream.responses.length > 1) problems.push(`desync: ${canaryStream.responses.length} answers to the follow-up request`);
  // Sent again only when the backend could not have answered the first time, or, for an idempotent
  // request without a body, when a pooled connection was closed without a byte of answer: a
  // keep-alive connection the backend had just closed looks exactly so (RFC 9110 9.2.2 allows the
  // retry; the built-in plane makes it, HAProxy answers 502).
  const idempotentRetry = run.response.length === 0 && ['GET', 'HEAD', 'OPTIONS'].includes(run.method) ? 3 : 1;
  const sends: Record<string, number> = { r: idempotentRetry, canary: canarySends };
  const sentTwice = ['r', 'canary'].filter((name) => backend.filter((r) => originForm(r.target) === `/d/${nonce}/${name}` && !r.unanswerable).length > (sends[name] ?? 1));
  for (const name of sentTwice) problems.push(`the backend received /d/${nonce}/${name} more than once`);
  const others = backend.filter((r) => !['r', 'canary', 'warm'].some((name) => originForm(r.target) === `/d/${nonce}/${name}`));
  for (const other of others) problems.push(`the backend received a request nobody sent: ${show(other.head, 200)}`);
  for (const anomaly of plane.backend.anomaliesOf(nonce)) problems.push(`the proxy sent the backend malformed HTTP: ${anomaly.reason}: ${anomaly.excerpt}`);
  if (!living) problems.push('the proxy no longer answers an ordinary request');
  return {
    plane: plane.kind,
    nonce,
    sent: Buffer.from(request, 'latin1'),
    result,
    stream,
    first: classOf(stream, result),
    backend,
    problems,
    canary: { stream: canaryStream, result: canaryResult, reused: reusable },
  };
}
