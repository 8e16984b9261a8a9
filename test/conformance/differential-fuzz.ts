/**
 * Generated cases for the differential suite: byte-level mutations (fast-check) of well-formed
 * requests and backend responses, and the checks each generated case must pass. A case has no
 * hand-written expectation, so the checks are those that hold whatever the bytes: valid HTTP to
 * the client, each answer that of a request this client sent (no desync), at the backend only
 * requests whose targets this client sent and never more than it sent, nothing malformed sent
 * to the backend, and a follow-up request answered as itself.
 */
import fc from 'fast-check';
import {
  anomaliesFor,
  authentic,
  classOf,
  echoed,
  followUp,
  originForm,
  parseResponseStream,
  proxyMade,
  rawExchange,
  runResponse,
  show,
} from './differential.js';
import type { AnswerClass, BackendRequest, ParsedResponse, Plane, ResponseOutcome } from './differential.js';
import { forged, msg, smuggled } from './differential-corpus.js';

export type Mutation =
  | { readonly kind: 'insert' | 'replace'; readonly at: number; readonly bytes: string }
  | { readonly kind: 'delete' | 'duplicate' | 'case'; readonly at: number; readonly count: number }
  | { readonly kind: 'duplicate-line' | 'bare-lf' | 'bare-cr' | 'fold' | 'drop-line'; readonly at: number }
  | { readonly kind: 'insert-line'; readonly at: number; readonly line: string };

/** Bytes worth injecting: line breaks, separators, controls, and whole framing fields. */
const INJECTIONS = [
  '\r', '\n', '\r\n', '\0', ' ', '\t', ':', ',', ';', '"', '=', '\x0b', '\x0c', '\x7f', '\x80', '\xff',
  '0', '1', '9', 'f', 'F', 'x', '-', '+', '.', 'e',
  'chunked', ', chunked', 'identity', ', identity', 'close', 'keep-alive', 'HTTP/1.1', 'HTTP/1.0', '\r\n\r\n', '0\r\n\r\n',
  'Content-Length: 0\r\n', 'Content-Length: 5\r\n', 'Content-Length: 99\r\n', 'Transfer-Encoding: chunked\r\n',
  'Transfer-Encoding: identity\r\n', 'Connection: close\r\n', 'Connection: content-length\r\n', 'Host: x\r\n',
  'Expect: 100-continue\r\n', 'Upgrade: websocket\r\nConnection: upgrade\r\n', 'GET /d/ HTTP/1.1\r\n', 'HTTP/2.0', 'HTTP/0.9',
];

/** Whole field lines to insert at a line boundary: framing and hop-by-hop fields above all. */
const LINES = [
  'Content-Length: 0', 'Content-Length: 5', 'Content-Length: 99', 'Content-Length: 0, 0', 'Transfer-Encoding: chunked',
  'Transfer-Encoding: identity', 'Transfer-Encoding: gzip, chunked', 'Connection: close', 'Connection: keep-alive',
  'Connection: content-length', 'Connection: transfer-encoding', 'Connection: host', 'Connection: upgrade', 'Upgrade: websocket',
  'Host: x', 'Expect: 100-continue', 'Trailer: Content-Length', 'Keep-Alive: timeout=1', 'TE: trailers',
];

const at = fc.integer({ min: 0, max: 9999 });
const bytes = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...INJECTIONS) },
  { weight: 1, arbitrary: fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 3 }) },
);

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom('insert' as const, 'replace' as const), at, bytes }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom('delete' as const, 'duplicate' as const, 'case' as const), at, count: fc.integer({ min: 1, max: 8 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom('duplicate-line' as const, 'bare-lf' as const, 'bare-cr' as const, 'fold' as const, 'drop-line' as const), at }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('insert-line' as const), at, line: fc.constantFrom(...LINES) }) },
);

const mutationsArb = fc.array(mutationArb, { minLength: 1, maxLength: 3 });

/** Offsets of each CRLF in `text`. */
function crlfs(text: string): number[] {
  const found: number[] = [];
  for (let i = text.indexOf('\r\n'); i !== -1; i = text.indexOf('\r\n', i + 2)) found.push(i);
  return found;
}

function toggleCase(text: string): string {
  return [...text].map((c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())).join('');
}

export function mutate(text: string, mutation: Mutation): string {
  const pos = (extra: number) => Math.floor((mutation.at / 10_000) * (text.length + extra));
  switch (mutation.kind) {
    case 'insert': {
      const i = pos(1);
      return text.slice(0, i) + mutation.bytes + text.slice(i);
    }
    case 'replace': {
      const i = pos(0);
      return text.slice(0, i) + mutation.bytes + text.slice(i + mutation.bytes.length);
    }
    case 'delete': {
      const i = pos(0);
      return text.slice(0, i) + text.slice(i + mutation.count);
    }
    case 'duplicate': {
      const i = pos(0);
      return text.slice(0, i + mutation.count) + text.slice(i, i + mutation.count) + text.slice(i + mutation.count);
    }
    case 'case': {
      const i = pos(0);
      return text.slice(0, i) + toggleCase(text.slice(i, i + mutation.count)) + text.slice(i + mutation.count);
    }
    default: {
      const ends = crlfs(text);
      if (ends.length === 0) return text;
      const k = mutation.at % ends.length;
      const i = ends[k] as number;
      const start = k === 0 ? 0 : (ends[k - 1] as number) + 2;
      switch (mutation.kind) {
        case 'bare-lf':
          return `${text.slice(0, i)}${text.slice(i + 1)}`;
        case 'bare-cr':
          return `${text.slice(0, i + 1)}${text.slice(i + 2)}`;
        case 'fold':
          return `${text.slice(0, i + 2)} ${text.slice(i + 2)}`;
        case 'duplicate-line':
          return `${text.slice(0, i + 2)}${text.slice(start, i + 2)}${text.slice(i + 2)}`;
        case 'drop-line':
          return `${text.slice(0, start)}${text.slice(i + 2)}`;
        case 'insert-line':
          return `${text.slice(0, i + 2)}${mutation.line}\r\n${text.slice(i + 2)}`;
      }
    }
  }
}

export const applyMutations = (text: string, mutations: readonly Mutation[]) => mutations.reduce(mutate, text);

const hex = (data: string) => data.length.toString(16);
const H = 'Host: t';

/** Well-formed requests to mutate; bodies hide a request a wrong framing would expose. */
export const REQUEST_BASES: readonly ((n: string) => string)[] = [
  (n) => msg(`GET /d/${n}/f HTTP/1.1`, [H, 'User-Agent: fuzz', 'Accept: */*']),
  (n) => msg(`POST /d/${n}/f HTTP/1.1`, [H, `Content-Length: ${4 + smuggled(n).length}`, 'Content-Type: text/plain'], `x=1&${smuggled(n)}`),
  (n) => msg(`POST /d/${n}/f HTTP/1.1`, [H, 'Transfer-Encoding: chunked', 'Trailer: X-T'], `4;e=1\r\nx=1&\r\n${hex(smuggled(n))}\r\n${smuggled(n)}\r\n0\r\nX-T: 1\r\n\r\n`),
  (n) => msg(`POST /d/${n}/f HTTP/1.0`, [H, 'Connection: keep-alive', `Content-Length: ${4 + smuggled(n).length}`], `x=1&${smuggled(n)}`),
  (n) => msg(`GET http://t/d/${n}/f?q=1 HTTP/1.1`, [H, 'Connection: keep-alive', 'Cookie: a=b; c=d']),
  (n) => msg(`PUT /d/${n}/f HTTP/1.1`, [H, 'Expect: 100-continue', 'Content-Length: 5'], 'hello'),
];

export interface ResponseBase {
  readonly method: 'GET' | 'HEAD';
  readonly response: (n: string) => string;
  /** The body is delimited by the close: the backend always closes. */
  readonly closeDelimited?: boolean;
}

/** Well-formed responses to mutate; bodies hide a response a wrong framing would expose. */
export const RESPONSE_BASES: readonly ResponseBase[] = [
  { method: 'GET', response: (n) => msg('HTTP/1.1 200 OK', ['Content-Type: text/plain', `Content-Length: ${3 + forged(n).length}`], `ab;${forged(n)}`) },
  { method: 'GET', response: (n) => msg('HTTP/1.1 200 OK', ['Transfer-Encoding: chunked', 'Trailer: X-T'], `3;e=1\r\nab;\r\n${hex(forged(n))}\r\n${forged(n)}\r\n0\r\nX-T: 1\r\n\r\n`) },
  { method: 'GET', response: () => msg('HTTP/1.1 200 OK', ['Content-Type: text/plain'], 'until close'), closeDelimited: true },
  { method: 'GET', response: () => msg('HTTP/1.1 204 No Content', ['X-A: b']) },
  { method: 'GET', response: () => msg('HTTP/1.1 304 Not Modified', ['ETag: "x"']) },
  { method: 'HEAD', response: () => msg('HTTP/1.1 200 OK', ['Content-Length: 5']) },
  { method: 'GET', response: () => `HTTP/1.1 100 Continue\r\n\r\n${msg('HTTP/1.1 200 OK', ['Content-Length: 5'], 'hello')}` },
  { method: 'GET', response: () => msg('HTTP/1.0 200 OK', ['Connection: keep-alive', 'Content-Length: 5'], 'hello') },
];

export interface RequestFuzzCase {
  readonly base: number;
  readonly mutations: readonly Mutation[];
}

export interface ResponseFuzzCase extends RequestFuzzCase {
  readonly close: boolean;
}

export const requestFuzzArb: fc.Arbitrary<RequestFuzzCase> = fc.record({ base: fc.nat({ max: REQUEST_BASES.length - 1 }), mutations: mutationsArb });
/** The backend keeps its connection open in one case of four: then left-over bytes could reach the next request. */
export const responseFuzzArb: fc.Arbitrary<ResponseFuzzCase> = fc.record({
  base: fc.nat({ max: RESPONSE_BASES.length - 1 }),
  mutations: mutationsArb,
  close: fc.nat({ max: 3 }).map((x) => x !== 0),
});

export function requestBytes(fuzz: RequestFuzzCase, nonce: string): Buffer {
  return Buffer.from(applyMutations((REQUEST_BASES[fuzz.base] as (n: string) => string)(nonce), fuzz.mutations), 'latin1');
}

export function responseBytes(fuzz: ResponseFuzzCase, nonce: string): Buffer {
  const base = RESPONSE_BASES[fuzz.base] as ResponseBase;
  return Buffer.from(applyMutations(base.response(nonce), fuzz.mutations), 'latin1');
}

export interface FuzzOutcome {
  readonly plane: Plane['kind'];
  readonly first: AnswerClass;
  readonly problems: string[];
  /** Requests of the case that reached the backend. */
  readonly backend: readonly BackendRequest[];
  readonly answers: string;
}

const countOf = (haystack: string, needle: string) => haystack.split(needle).length - 1;
const answersOf = (responses: readonly ParsedResponse[]) => responses.map((r) => `${r.status}${r.complete ? '' : '(cut)'}${echoed(r) === undefined ? '' : `[${echoed(r)}]`}`).join(', ') || 'no answer';

/** Sends mutated request bytes, then a follow-up request, on one connection. */
export async function runFuzzRequest(plane: Plane, nonce: string, sent: Buffer, deadlineMs: number): Promise<FuzzOutcome> {
  const canaryEcho = `GET /d/${nonce}/canary`;
  const methodOf = () => 'GET';
  const done = (data: Buffer) => {
    const stream = parseResponseStream(data, methodOf, false);
    return stream.error !== undefined || stream.responses.some((r) => echoed(r) === canaryEcho);
  };
  const result = await rawExchange(plane.port, [sent, followUp(nonce, 'canary')], done, deadlineMs);
  result.socket.destroy();
  const stream = parseResponseStream(result.data, methodOf, result.closed);
  const text = `${sent.toString('latin1')}${followUp(nonce, 'canary')}`;
  const backend = plane.backend.requestsOf(nonce);
  const all = plane.backend.requests;
  const problems: string[] = [];
  if (stream.error !== undefined) problems.push(`the client got malformed HTTP: ${stream.error}; bytes: ${show(result.data, 300)}`);
  stream.responses.forEach((response, i) => {
    const echo = echoed(response);
    if (echo === undefined) return;
    const seq = /^echo (\d+)$/.exec(response.body.toString('latin1'))?.[1];
    const source = seq === undefined ? undefined : all[Number(seq)];
    if (source === undefined || !authentic(response, [source]) || !text.includes(originForm(source.target))) {
      problems.push(`desync: answer ${i + 1} ('${echo}', ${show(response.body, 40)}) is not that of a request this client sent`);
    }
    if (echo === canaryEcho && i !== stream.responses.length - 1) problems.push('desync: answers after the answer to the last request');
  });
  const targets = countOf(text, `/d/${nonce}`);
  if (backend.length > targets) problems.push(`the backend received ${backend.length} requests; the client sent ${targets} targets`);
  for (const request of backend) {
    if (!text.includes(originForm(request.target))) problems.push(`the backend received a target the client never sent: ${show(request.head, 200)}`);
  }
  // Whether the client sent a Host is read in the generated request's head only (the follow-up has one).
  for (const anomaly of anomaliesFor(plane.backend, nonce, sent.toString('latin1').split(/\r?\n\r?\n/)[0] ?? '')) problems.push(`the proxy sent the backend malformed HTTP: ${anomaly.reason}: ${anomaly.excerpt}`);
  return { plane: plane.kind, first: classOf(stream, result), problems, backend, answers: `${answersOf(stream.responses)}${result.closed ? '; closed' : ''}` };
}

export const smuggledThrough = (outcome: FuzzOutcome, nonce: string) => outcome.backend.some((r) => originForm(r.target) === `/d/${nonce}/smuggled`);

export interface ResponseFuzzOutcome extends FuzzOutcome {
  readonly outcome: ResponseOutcome;
  /** The answer the client got, when relayed from the backend in full. */
  readonly relayed: ParsedResponse | undefined;
  /** Whether the relayed answer differs from what a strict reading of the backend's bytes gives. */
  readonly unlike: string | undefined;
}

/** Has the backend answer with mutated bytes, then checks the follow-up request (runResponse). */
export async function runFuzzResponse(plane: Plane, nonce: string, fuzz: ResponseFuzzCase, deadlineMs: number): Promise<ResponseFuzzOutcome> {
  const base = RESPONSE_BASES[fuzz.base] as ResponseBase;
  const response = responseBytes(fuzz, nonce);
  const close = fuzz.close || base.closeDelimited === true;
  const outcome = await runResponse(plane, nonce, { method: base.method, response, close, deadlineMs });
  const first = outcome.stream.responses[0];
  const relayed = first !== undefined && first.complete && !proxyMade(first) ? first : undefined;
  let unlike: string | undefined;
  if (relayed !== undefined) {
    // A strict reading of what the backend sent, as the client would read it directly.
    const reference = parseResponseStream(response, (i) => (i === 0 ? base.method : 'GET'), close);
    const expected = reference.responses[0];
    if (expected === undefined || !expected.complete) unlike = `a strict reader refuses the backend's answer (${reference.error ?? 'incomplete'})`;
    else if (expected.status !== relayed.status) unlike = `status ${relayed.status}, the backend sent ${expected.status}`;
    else if (base.method !== 'HEAD' && !expected.body.equals(relayed.body)) unlike = `body ${show(relayed.body, 60)}, the backend framed ${show(expected.body, 60)}`;
  }
  return {
    plane: plane.kind,
    first: outcome.first,
    problems: outcome.problems,
    backend: outcome.backend,
    answers: `${answersOf(outcome.stream.responses)}${outcome.result.closed ? '; closed' : ''}`,
    outcome,
    relayed,
    unlike,
  };
}
