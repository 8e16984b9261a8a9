/**
 * The hand-written corpus of the differential suite: requests a client sends through a proxy,
 * and responses a backend sends back, each with what an RFC 9112 recipient may do with it.
 *
 * Every case is a function of a nonce `n`: its requests target /d/n/..., so what reaches the
 * backend is attributed to it. Where a smuggled request could hide (in a body a wrong framing
 * would cut short), it targets /d/n/smuggled: it must never reach the backend.
 */
import type { ExpectedRequest, Step } from './differential.js';

export interface RequestCase {
  readonly name: string;
  /** What the client sends. */
  readonly send: (n: string) => string | readonly Step[];
  /**
   * What an RFC 9112 server may process from `send`, in order (origin-form request lines, and
   * the body forwarded when it is certain). The backend may see a prefix-wise subsequence of
   * these and nothing else; an empty list means the request must be refused.
   */
  readonly requests: (n: string) => readonly ExpectedRequest[];
  /**
   * A request pipelined after `send`: 'yes' it must be answered once the case is accepted,
   * 'no' it must never be processed (the connection has to close first), 'maybe' either.
   * Default 'yes'.
   */
  readonly follow?: 'yes' | 'no' | 'maybe';
  /** The built-in plane may refuse this although HAProxy accepts it: why that is legitimate. */
  readonly builtinMayRefuse?: string;
  /** The built-in plane may accept this although HAProxy refuses it: why that is not a safety matter. */
  readonly builtinMayAccept?: string;
  /** HAProxy itself fails a safety property here (documented, not asserted for HAProxy). */
  readonly haproxyOdd?: string;
  /** Another client's request sent afterwards on a new connection: it must get its own answer. */
  readonly then?: (n: string) => { readonly send: string; readonly line: string };
  /**
   * A faulty plane may leave a backend connection in an unknown state here (a body announced
   * but never sent...): the case runs alone, after the others, and the backend connections are
   * closed after it, so that what it leaves is judged here and not in another case.
   */
  readonly isolate?: true;
  /** The backend's exact answer to /d/n/r (else it echoes), and the body the client must get of it (or a prefix, if cut). */
  readonly answer?: { readonly response: string; readonly body: string };
}

export interface ResponseCase {
  readonly name: string;
  readonly method?: 'GET' | 'HEAD';
  /** The backend's bytes for the request (it targets /d/n/r). */
  readonly response: (n: string) => string;
  /** The backend closes the connection after writing (else it keeps it for the next request). */
  readonly close?: boolean;
  /** The body a client must get if the answer is relayed (2xx). */
  readonly body?: string;
  /** The built-in plane may refuse this although HAProxy relays it: why. */
  readonly builtinMayRefuse?: string;
  /** The built-in plane may relay this although HAProxy refuses it: why that is not a safety matter. */
  readonly builtinMayAccept?: string;
  /** HAProxy itself fails a safety property here (documented, not asserted for HAProxy). */
  readonly haproxyOdd?: string;
  /** The case needs the request on a reused backend connection: it runs alone, after the others. */
  readonly isolate?: true;
}

const CRLF = '\r\n';
/** A request or response: start line, field lines, empty line, body. */
export const msg = (start: string, fields: readonly string[], body = '') => `${start}${CRLF}${fields.map((f) => `${f}${CRLF}`).join('')}${CRLF}${body}`;
const len = (body: string) => `Content-Length: ${Buffer.byteLength(body, 'latin1')}`;
const chunk = (data: string) => `${Buffer.byteLength(data, 'latin1').toString(16)}${CRLF}${data}${CRLF}`;
const H = 'Host: t';
/** A complete request hidden in a body: a wrong framing would make it a request of its own. */
export const smuggled = (n: string) => msg(`GET /d/${n}/smuggled HTTP/1.1`, [H]);
const get = (n: string, name = 'a', fields: readonly string[] = []) => msg(`GET /d/${n}/${name} HTTP/1.1`, [H, ...fields]);
const post = (n: string, fields: readonly string[], body: string, name = 'a') => msg(`POST /d/${n}/${name} HTTP/1.1`, [H, ...fields], body);
const line = (text: string, body?: string): ExpectedRequest => (body === undefined ? { line: text } : { line: text, body });
const filler = (count: number, size = 8) => Array.from({ length: count }, (_, i) => `X-Filler-${i}: ${'v'.repeat(size)}`);

const RFC_DUP_LENGTH = 'RFC 9112 6.3: a recipient may reject repeated Content-Length values even when they agree';
const RFC_BARE_LF = 'RFC 9112 2.2: recognising a bare LF as a line terminator is optional';
const RFC_CTL = 'RFC 9110 5.5: other control characters in a field value are invalid (a recipient may only retain them)';
const RFC_CL_TE = 'RFC 9112 6.1: a server may reject a request with both Content-Length and Transfer-Encoding';
/** HAProxy 2.6 forwards these bytes in a field value as they are (the strict backend then refuses the request: HAProxy answers 502). */
const HAPROXY_PASSES_CTL = 'HAProxy 2.6 forwards the control character to the backend unchanged';

export const REQUEST_CASES: readonly RequestCase[] = [
  // --- well-formed edge cases ---
  { name: 'GET', send: (n) => get(n), requests: (n) => [line(`GET /d/${n}/a`, '')] },
  { name: 'HEAD', send: (n) => msg(`HEAD /d/${n}/a HTTP/1.1`, [H]), requests: (n) => [line(`HEAD /d/${n}/a`)] },
  // No route matches '*': both planes answer 404 themselves.
  { name: 'OPTIONS *', send: () => msg('OPTIONS * HTTP/1.1', [H]), requests: () => [line('OPTIONS *')] },
  { name: 'absolute-form target', send: (n) => msg(`GET http://t/d/${n}/abs HTTP/1.1`, [H]), requests: (n) => [line(`GET /d/${n}/abs`)] },
  { name: 'absolute-form target naming another host', send: (n) => msg(`GET http://other.test/d/${n}/abs?q=1 HTTP/1.1`, [H]), requests: (n) => [line(`GET /d/${n}/abs?q=1`)] },
  { name: 'three pipelined GETs', send: (n) => get(n, 'a') + get(n, 'b') + get(n, 'c'), requests: (n) => ['a', 'b', 'c'].map((x) => line(`GET /d/${n}/${x}`)) },
  { name: 'pipelined POST then GET', send: (n) => post(n, [len('hello')], 'hello') + get(n, 'b'), requests: (n) => [line(`POST /d/${n}/a`, 'hello'), line(`GET /d/${n}/b`)] },
  { name: 'GET with a body', send: (n) => msg(`GET /d/${n}/a HTTP/1.1`, [H, len('hello')], 'hello'), requests: (n) => [line(`GET /d/${n}/a`, 'hello')] },
  { name: 'POST with Content-Length: 0', send: (n) => post(n, ['Content-Length: 0'], ''), requests: (n) => [line(`POST /d/${n}/a`, '')] },
  { name: 'Content-Length with leading zeros', send: (n) => post(n, ['Content-Length: 005'], 'hello'), requests: (n) => [line(`POST /d/${n}/a`, 'hello')] },
  { name: 'Expect: 100-continue, body sent at once', send: (n) => post(n, [len('hello'), 'Expect: 100-continue'], 'hello'), requests: (n) => [line(`POST /d/${n}/a`, 'hello')] },
  {
    name: 'Expect: 100-continue, body sent after the 100',
    send: (n) => [
      post(n, [len('hello'), 'Expect: 100-continue'], ''),
      { label: 'a 100 Continue', timeoutMs: 1500, until: (data: Buffer) => data.toString('latin1').startsWith('HTTP/1.1 100') },
      'hello',
    ],
    requests: (n) => [line(`POST /d/${n}/a`, 'hello')],
  },
  { name: 'chunked body', send: (n) => post(n, ['Transfer-Encoding: chunked'], `${chunk('hel')}${chunk('lo')}0\r\n\r\n`), requests: (n) => [line(`POST /d/${n}/a`, 'hello')] },
  { name: 'chunk extensions', send: (n) => post(n, ['Transfer-Encoding: chunked'], '5;ext=1\r\nhello\r\n0;last="yes"\r\n\r\n'), requests: (n) => [line(`POST /d/${n}/a`, 'hello')] },
  { name: 'chunked trailers', send: (n) => post(n, ['Transfer-Encoding: chunked', 'Trailer: X-Trailer'], '5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n'), requests: (n) => [line(`POST /d/${n}/a`, 'hello')] },
  { name: 'chunk size with leading zeros and upper-case hex', send: (n) => post(n, ['Transfer-Encoding: chunked'], '0005\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n'), requests: (n) => [line(`POST /d/${n}/a`, 'hello0123456789')] },
  {
    name: 'a 64 KiB chunked body',
    send: (n) => post(n, ['Transfer-Encoding: chunked'], `${chunk('a'.repeat(16384)).repeat(4)}0\r\n\r\n`),
    requests: (n) => [line(`POST /d/${n}/a`, 'a'.repeat(65536))],
  },
  { name: 'Transfer-Encoding: CHUNKED in upper case', send: (n) => post(n, ['Transfer-Encoding: CHUNKED'], '5\r\nhello\r\n0\r\n\r\n'), requests: (n) => [line(`POST /d/${n}/a`, 'hello')] },
  { name: 'Transfer-Encoding with a tab before the value', send: (n) => post(n, ['Transfer-Encoding:\tchunked'], '5\r\nhello\r\n0\r\n\r\n'), requests: (n) => [line(`POST /d/${n}/a`, 'hello')] },
  { name: 'Connection: close, then a pipelined request', send: (n) => get(n, 'a', ['Connection: close']), requests: (n) => [line(`GET /d/${n}/a`)], follow: 'no' },
  { name: 'HTTP/1.0 without keep-alive, then a pipelined request', send: (n) => msg(`GET /d/${n}/a HTTP/1.0`, [H]), requests: (n) => [line(`GET /d/${n}/a`)], follow: 'no' },
  { name: 'HTTP/1.0 with keep-alive, then a pipelined request', send: (n) => msg(`GET /d/${n}/a HTTP/1.0`, [H, 'Connection: keep-alive']), requests: (n) => [line(`GET /d/${n}/a`)] },
  { name: 'HTTP/1.0 POST with a Content-Length and keep-alive', send: (n) => msg(`POST /d/${n}/a HTTP/1.0`, [H, 'Connection: keep-alive', len('hello')], 'hello'), requests: (n) => [line(`POST /d/${n}/a`, 'hello')] },
  { name: 'HTTP/1.1 minor version 2 is served as 1.1', send: (n) => msg(`GET /d/${n}/a HTTP/1.2`, [H]), requests: (n) => [line(`GET /d/${n}/a`)], follow: 'maybe', builtinMayRefuse: 'RFC 9112 2.3: HTTP/1.2 may be answered as 1.1 or refused with 505' },
  { name: 'an 8 KiB header value', send: (n) => get(n, 'a', [`X-Big: ${'b'.repeat(8000)}`]), requests: (n) => [line(`GET /d/${n}/a`)] },
  { name: 'an 8000-byte request target', send: (n) => msg(`GET /d/${n}/${'p'.repeat(8000)} HTTP/1.1`, [H]), requests: (n) => [line(`GET /d/${n}/${'p'.repeat(8000)}`)] },
  { name: 'a 14 KiB request head', send: (n) => get(n, 'a', filler(14, 1000)), requests: (n) => [line(`GET /d/${n}/a`)] },
  {
    name: 'a 15.5 KiB request head, between the planes\' limits',
    send: (n) => get(n, 'a', filler(15, 1020)),
    requests: (n) => [line(`GET /d/${n}/a`)],
    follow: 'maybe',
    builtinMayAccept: "HAProxy holds a head in tune.bufsize (16 KiB) less tune.maxrewrite (1 KiB); the built-in plane's limit is Node's maxHeaderSize, 16 KiB",
  },
  { name: 'a 20 KiB request head', send: (n) => get(n, 'a', filler(20, 1000)), requests: () => [], follow: 'no' },
  { name: '90 header fields', send: (n) => get(n, 'a', filler(90)), requests: (n) => [line(`GET /d/${n}/a`)] },
  // Beyond the plane's count of fields, Content-Length would be lost, and with it the body.
  { name: 'a POST whose Content-Length is its 102nd field', send: (n) => post(n, [...filler(100), len('hello')], 'hello'), requests: (n) => [line(`POST /d/${n}/a`, 'hello')], follow: 'maybe' },
  {
    name: 'a POST whose Content-Length is its 102nd field, answered before its body is read, then another client',
    send: (n) => post(n, [...filler(100), len('z'.repeat(30))], 'z'.repeat(30), 'early'),
    requests: (n) => [line(`POST /d/${n}/early`, 'z'.repeat(30))],
    follow: 'maybe',
    isolate: true,
    then: (n) => ({ send: get(n, 'after'), line: `GET /d/${n}/after` }),
  },
  { name: 'a chunked POST whose Transfer-Encoding is its 102nd field', send: (n) => post(n, [...filler(100), 'Transfer-Encoding: chunked'], '5\r\nhello\r\n0\r\n\r\n'), requests: (n) => [line(`POST /d/${n}/a`, 'hello')], follow: 'maybe' },
  { name: 'extension method PURGE', send: (n) => msg(`PURGE /d/${n}/a HTTP/1.1`, [H]), requests: (n) => [line(`PURGE /d/${n}/a`)] },
  // Node's parser (llhttp) knows a fixed list of methods: others are refused with 400 and the
  // connection closed. Stricter than HAProxy, never unsafe.
  { name: 'extension method FOO', send: (n) => msg(`FOO /d/${n}/a HTTP/1.1`, [H]), requests: (n) => [line(`FOO /d/${n}/a`)], follow: 'maybe', builtinMayRefuse: 'llhttp refuses methods outside its list (RFC 9110 9.1 lets a server answer 501)' },
  { name: 'lower-case method get (a distinct token)', send: (n) => msg(`get /d/${n}/a HTTP/1.1`, [H]), requests: (n) => [line(`get /d/${n}/a`)], follow: 'maybe', builtinMayRefuse: 'llhttp refuses methods outside its list (RFC 9110 9.1 lets a server answer 501)' },
  { name: 'an empty line before the request line', send: (n) => `\r\n${get(n)}`, requests: (n) => [line(`GET /d/${n}/a`)], builtinMayRefuse: 'RFC 9112 2.2: ignoring a leading empty line is a SHOULD' },
  { name: 'empty, tabbed and padded field values', send: (n) => get(n, 'a', ['X-Empty:', 'X-Tab:\tv\t', 'X-Pad:   v   ']), requests: (n) => [line(`GET /d/${n}/a`)] },
  { name: 'obs-text in a field value', send: (n) => get(n, 'a', ['X-Latin: caf\xe9']), requests: (n) => [line(`GET /d/${n}/a`)] },
  { name: 'query with encoded and reserved characters', send: (n) => msg(`GET /d/${n}/q?a=%20&b=c/d?e&f=%00 HTTP/1.1`, [H]), requests: (n) => [line(`GET /d/${n}/q?a=%20&b=c/d?e&f=%00`)] },
  { name: 'Host with a port', send: (n) => msg(`GET /d/${n}/a HTTP/1.1`, ['Host: t:8080']), requests: (n) => [line(`GET /d/${n}/a`)] },
  { name: 'two identical Content-Length fields', send: (n) => post(n, [len('hello'), len('hello')], 'hello'), requests: (n) => [line(`POST /d/${n}/a`, 'hello')], builtinMayRefuse: RFC_DUP_LENGTH },
  { name: 'Content-Length: 5, 5', send: (n) => post(n, ['Content-Length: 5, 5'], 'hello'), requests: (n) => [line(`POST /d/${n}/a`, 'hello')], builtinMayRefuse: RFC_DUP_LENGTH },
  { name: 'Expect with an unknown expectation', send: (n) => get(n, 'a', ['Expect: something']), requests: (n) => [line(`GET /d/${n}/a`)], follow: 'maybe', builtinMayRefuse: 'RFC 9110 10.1.1: a server may answer 417 to an expectation it does not support' },
  {
    name: 'Connection naming Transfer-Encoding on a chunked POST',
    send: (n) => post(n, ['Connection: keep-alive, Transfer-Encoding', 'Transfer-Encoding: chunked'], `5\r\nhello\r\n0\r\n\r\n`),
    requests: (n) => [line(`POST /d/${n}/a`, 'hello')],
  },
  {
    // A hop-by-hop option may name any field; the proxy must still frame the body it forwards.
    name: 'Connection naming Content-Length, with a request in the body',
    send: (n) => post(n, ['Connection: Content-Length', len(smuggled(n))], smuggled(n)),
    requests: (n) => [line(`POST /d/${n}/a`, smuggled(n))],
    isolate: true,
  },
  {
    name: 'Connection naming Host',
    send: (n) => get(n, 'a', ['Connection: keep-alive, Host']),
    requests: (n) => [line(`GET /d/${n}/a`)],
  },
  {
    // The backend answers /early as soon as it has the head: a body the proxy announced but
    // never sent would make it read the next request on that connection as that body.
    name: 'an Upgrade request with a body, answered before the body is read',
    send: (n) => msg(`GET /d/${n}/early HTTP/1.1`, [H, 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', len('x'.repeat(40))], 'x'.repeat(40)),
    requests: (n) => [line(`GET /d/${n}/early`)],
    follow: 'maybe',
    isolate: true,
    builtinMayRefuse: 'the bytes after an Upgrade request belong to the new protocol; a body as well is ambiguous, so the built-in plane answers 400',
    then: (n) => ({
      send: msg(`GET /d/${n}/after HTTP/1.1`, [H, 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==']),
      line: `GET /d/${n}/after`,
    }),
  },
  {
    name: 'a POST answered before its body is read, then another client',
    send: (n) => post(n, [len('y'.repeat(60))], 'y'.repeat(60), 'early'),
    requests: (n) => [line(`POST /d/${n}/early`)],
    follow: 'maybe',
    isolate: true,
    then: (n) => ({ send: get(n, 'after'), line: `GET /d/${n}/after` }),
  },

  {
    // The garbage arrives with the request, before the request is answered: the answer comes first, then the refusal.
    name: 'garbage pipelined in the same segment as a valid request',
    send: (n) => `${get(n)}BAD\x01REQUEST\r\n\r\n`,
    requests: (n) => [line(`GET /d/${n}/a`)],
    follow: 'no',
  },
  {
    // The proxy refuses the garbage: never by writing its refusal into the middle of the answer in progress.
    name: 'garbage pipelined while a 2 MiB answer streams',
    send: (n) => [
      msg(`GET /d/${n}/r HTTP/1.1`, [H]),
      { label: 'the head of the answer', timeoutMs: 2000, until: (data: Buffer) => data.includes('HTTP/1.1 200') },
      'BAD\x01REQUEST\r\n\r\n',
    ],
    requests: (n) => [line(`GET /d/${n}/r`)],
    follow: 'no',
    builtinMayAccept: 'HAProxy may cut the answer short when it reads the garbage, depending on timing: both are safe',
    builtinMayRefuse: 'cutting the answer short when the garbage is read is as safe (HAProxy does so at times)',
    answer: { response: `HTTP/1.1 200 OK\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n${'b'.repeat(2 * 1024 * 1024)}`, body: 'b'.repeat(2 * 1024 * 1024) },
  },

  // --- malformed: lengths ---
  { name: 'two different Content-Length fields', send: (n) => post(n, ['Content-Length: 5', `Content-Length: ${5 + smuggled(n).length}`], `hello${smuggled(n)}`), requests: () => [], follow: 'no' },
  { name: 'Content-Length: 5, 6', send: (n) => post(n, ['Content-Length: 5, 6'], 'hello!'), requests: () => [], follow: 'no' },
  ...['+5', '-5', '0x5', '5e0', '5.0', '5 5', '', ' 5,', '99999999999999999999', '4\x00'].map(
    (value): RequestCase => ({ name: `Content-Length: ${JSON.stringify(value)}`, send: (n) => post(n, [`Content-Length: ${value}`], 'hello'), requests: () => [], follow: 'no' }),
  ),

  // --- malformed: CL.TE, TE.CL, TE.TE ---
  {
    name: 'CL.TE: Content-Length and chunked, a request after the last chunk',
    send: (n) => post(n, [len(`0\r\n\r\n${smuggled(n)}`), 'Transfer-Encoding: chunked'], `0\r\n\r\n${smuggled(n)}`),
    // RFC 9112 6.1: reject, or decode as chunked and close the connection after answering.
    requests: (n) => [line(`POST /d/${n}/a`, '')],
    follow: 'no',
    builtinMayRefuse: RFC_CL_TE,
  },
  {
    name: 'TE.CL: chunked and a short Content-Length, a request inside the chunk',
    send: (n) => post(n, ['Transfer-Encoding: chunked', 'Content-Length: 4'], `${chunk(smuggled(n))}0\r\n\r\n`),
    requests: (n) => [line(`POST /d/${n}/a`, smuggled(n))],
    follow: 'no',
    builtinMayRefuse: RFC_CL_TE,
  },
  ...[
    'Transfer-Encoding: chunked, identity',
    'Transfer-Encoding: identity',
    'Transfer-Encoding: xchunked',
    'Transfer-Encoding: "chunked"',
    'Transfer-Encoding: chunked;q=1',
    'Transfer-Encoding: chunked\r\nTransfer-Encoding: identity',
    'Transfer-Encoding : chunked',
    'Transfer-Encoding\t: chunked',
    'Transfer-Encoding\x0b: chunked',
    'Transfer-Encoding: \x0bchunked',
    'Transfer\x00-Encoding: chunked',
  ].map(
    (te): RequestCase => ({
      name: `TE.TE: ${JSON.stringify(te)} with a Content-Length`,
      send: (n) => post(n, [te, len(`0\r\n\r\n${smuggled(n)}`)], `0\r\n\r\n${smuggled(n)}`),
      // Neither a length the recipient may trust nor chunked last: 400 (RFC 9112 6.1, 5.1).
      requests: () => [],
      follow: 'no',
    }),
  ),
  {
    // After the Host line, a line starting with a space is obs-fold of Host (RFC 9112 5.2): the
    // Content-Length frames the body. HAProxy accepts it so.
    name: 'TE.TE: " Transfer-Encoding: chunked" (folded into the field before), with a Content-Length',
    send: (n) => post(n, [' Transfer-Encoding: chunked', len(`0\r\n\r\n${smuggled(n)}`)], `0\r\n\r\n${smuggled(n)}`),
    requests: (n) => [line(`POST /d/${n}/a`, `0\r\n\r\n${smuggled(n)}`)],
    follow: 'maybe',
    builtinMayRefuse: 'RFC 9112 5.2: a server may reject obs-fold with 400',
  },
  {
    name: 'TE.TE: identity then chunked on two lines, with a Content-Length',
    send: (n) => post(n, ['Transfer-Encoding: identity', 'Transfer-Encoding: chunked', len(`0\r\n\r\n${smuggled(n)}`)], `0\r\n\r\n${smuggled(n)}`),
    requests: (n) => [line(`POST /d/${n}/a`, '')],
    follow: 'no',
    builtinMayRefuse: 'RFC 9112 6.1: a server may refuse (501) a transfer coding it does not know',
  },
  {
    name: 'TE.TE: chunked applied twice',
    send: (n) => post(n, ['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'], `5\r\nhello\r\n0\r\n\r\n`),
    requests: (n) => [line(`POST /d/${n}/a`, 'hello')],
    follow: 'maybe',
    builtinMayRefuse: 'RFC 9112 6.1: chunked must not be applied more than once',
  },
  {
    name: 'TE.TE: Transfer-Encoding folded onto the next line (obs-fold), with a Content-Length',
    send: (n) => post(n, ['Transfer-Encoding:', ' chunked', len(`0\r\n\r\n${smuggled(n)}`)], `0\r\n\r\n${smuggled(n)}`),
    // RFC 9112 5.2: reject, or unfold (then it is CL.TE: chunked, then close).
    requests: (n) => [line(`POST /d/${n}/a`, '')],
    follow: 'no',
    builtinMayRefuse: RFC_CL_TE,
  },
  {
    name: 'chunked in an HTTP/1.0 request with a Content-Length',
    send: (n) => msg(`POST /d/${n}/a HTTP/1.0`, [H, 'Connection: keep-alive', 'Transfer-Encoding: chunked', len(`0\r\n\r\n${smuggled(n)}`)], `0\r\n\r\n${smuggled(n)}`),
    // RFC 9112 6.1: faulty framing; processed at most once, then the connection closes.
    requests: (n) => [line(`POST /d/${n}/a`)],
    follow: 'no',
    builtinMayRefuse: RFC_CL_TE,
  },
  {
    name: 'Transfer_Encoding (underscore) is not framing',
    send: (n) => post(n, ['Transfer_Encoding: chunked', len(`0\r\n\r\n${smuggled(n)}`)], `0\r\n\r\n${smuggled(n)}`),
    requests: (n) => [line(`POST /d/${n}/a`, `0\r\n\r\n${smuggled(n)}`)],
  },

  // --- malformed: line endings and control characters ---
  {
    name: 'bare LF line endings throughout',
    send: (n) => `GET /d/${n}/a HTTP/1.1\nHost: t\n\n`,
    requests: (n) => [line(`GET /d/${n}/a`)],
    follow: 'maybe',
    builtinMayRefuse: RFC_BARE_LF,
  },
  {
    name: 'a bare LF hiding Transfer-Encoding inside another field, with a Content-Length',
    send: (n) => post(n, ['X-A: a\nTransfer-Encoding: chunked', len(`0\r\n\r\n${smuggled(n)}`)], `0\r\n\r\n${smuggled(n)}`),
    // Either the LF ends a line (then CL.TE: chunked and close), or the request is refused.
    requests: (n) => [line(`POST /d/${n}/a`, '')],
    follow: 'no',
    builtinMayRefuse: RFC_BARE_LF,
  },
  {
    name: 'a bare CR hiding Transfer-Encoding inside another field, with a Content-Length',
    send: (n) => post(n, ['X-A: a\rTransfer-Encoding: chunked', len(`0\r\n\r\n${smuggled(n)}`)], `0\r\n\r\n${smuggled(n)}`),
    // RFC 9112 2.2: refuse, or replace the CR by SP (then the Content-Length frames the body).
    requests: (n) => [line(`POST /d/${n}/a`, `0\r\n\r\n${smuggled(n)}`)],
    follow: 'maybe',
  },
  { name: 'bare CR as a line terminator', send: (n) => `GET /d/${n}/a HTTP/1.1\rHost: t\r\r\n\r\n`, requests: () => [], follow: 'maybe' },
  { name: 'NUL in a field value', send: (n) => get(n, 'a', ['X-A: a\x00b']), requests: (n) => [line(`GET /d/${n}/a`)], follow: 'maybe', haproxyOdd: HAPROXY_PASSES_CTL },
  { name: 'NUL in a field name', send: (n) => get(n, 'a', ['X-\x00A: b']), requests: () => [], follow: 'no' },
  { name: 'NUL in the request target', send: (n) => msg(`GET /d/${n}/a\x00b HTTP/1.1`, [H]), requests: () => [], follow: 'no' },
  { name: 'control character 0x01 in a field value', send: (n) => get(n, 'a', ['X-A: a\x01b']), requests: (n) => [line(`GET /d/${n}/a`)], follow: 'maybe', builtinMayRefuse: RFC_CTL, haproxyOdd: HAPROXY_PASSES_CTL },
  { name: 'DEL in a field value', send: (n) => get(n, 'a', ['X-A: a\x7fb']), requests: (n) => [line(`GET /d/${n}/a`)], follow: 'maybe', builtinMayRefuse: RFC_CTL, haproxyOdd: HAPROXY_PASSES_CTL },
  { name: 'obs-fold in an ordinary field', send: (n) => get(n, 'a', ['X-Folded: a', ' b']), requests: (n) => [line(`GET /d/${n}/a`)], follow: 'maybe', builtinMayRefuse: 'RFC 9112 5.2: a server may reject obs-fold with 400' },
  {
    name: 'whitespace before the first field line',
    send: (n) => `GET /d/${n}/a HTTP/1.1\r\n X-A: b\r\n${H}\r\n\r\n`,
    requests: (n) => [line(`GET /d/${n}/a`)],
    follow: 'maybe',
    builtinMayRefuse: 'RFC 9112 2.2: reject, or ignore the whitespace-preceded line',
  },

  // --- malformed: tokens and syntax ---
  { name: 'invalid token in the method', send: (n) => msg(`G(T /d/${n}/a HTTP/1.1`, [H]), requests: () => [], follow: 'no' },
  { name: 'space before the colon', send: (n) => get(n, 'a', ['X-A : b']), requests: () => [], follow: 'no' },
  { name: 'space inside a field name', send: (n) => get(n, 'a', ['X A: b']), requests: () => [], follow: 'no' },
  { name: 'a field line without a colon', send: (n) => get(n, 'a', ['NoColon']), requests: () => [], follow: 'no' },
  { name: 'an empty field name', send: (n) => get(n, 'a', [': value']), requests: () => [], follow: 'no' },
  { name: 'a field name with a non-token character', send: (n) => get(n, 'a', ['X(A): b']), requests: () => [], follow: 'no' },
  { name: 'extra word after the version', send: (n) => msg(`GET /d/${n}/a HTTP/1.1 x`, [H]), requests: () => [], follow: 'no' },
  { name: 'a space inside the request target', send: (n) => msg(`GET /d/${n}/a b HTTP/1.1`, [H]), requests: () => [], follow: 'no' },
  { name: 'HTTP/0.9 request line', send: (n) => `GET /d/${n}/a\r\n\r\n`, requests: () => [], follow: 'no' },
  { name: 'lower-case protocol name', send: (n) => msg(`GET /d/${n}/a http/1.1`, [H]), requests: () => [], follow: 'no' },
  // HAProxy serves it as HTTP/1.1; RFC 9112 2.3 lets a server answer 505 instead.
  { name: 'HTTP/2.0 in an HTTP/1 request line', send: (n) => msg(`GET /d/${n}/a HTTP/2.0`, [H]), requests: (n) => [line(`GET /d/${n}/a`)], follow: 'maybe', builtinMayRefuse: 'RFC 9112 2.3: 505 HTTP Version Not Supported' },
  {
    name: 'missing Host in HTTP/1.1',
    send: (n) => msg(`GET /d/${n}/a HTTP/1.1`, []),
    requests: (n) => [line(`GET /d/${n}/a`)],
    follow: 'maybe',
    builtinMayRefuse: 'RFC 9112 3.2: a server must answer 400',
    haproxyOdd: 'HAProxy 2.6 forwards the HTTP/1.1 request without a Host',
  },
  // RFC 9112 3.2 wants a 400; HAProxy merges two identical values into one Host instead, which is as safe.
  { name: 'two identical Host fields', send: (n) => get(n, 'a', ['Host: t']), requests: (n) => [line(`GET /d/${n}/a`)], builtinMayRefuse: 'RFC 9112 3.2: a server must answer 400' },
  { name: 'two different Host fields', send: (n) => get(n, 'a', ['Host: evil.test']), requests: () => [], follow: 'no' },
  // RFC 9112 3.2 wants a 400 for an invalid Host; HAProxy passes it on, unchanged.
  { name: 'a Host with a space', send: (n) => msg(`GET /d/${n}/a HTTP/1.1`, ['Host: t x']), requests: (n) => [line(`GET /d/${n}/a`)], follow: 'maybe', builtinMayRefuse: 'RFC 9112 3.2: a server must answer 400' },

  // --- malformed: chunked bodies ---
  { name: 'chunk size over 64 bits', send: (n) => post(n, ['Transfer-Encoding: chunked'], `ffffffffffffffffff1\r\nhello\r\n0\r\n\r\n`), requests: (n) => [line(`POST /d/${n}/a`)], follow: 'no' },
  { name: 'chunk size 0x5', send: (n) => post(n, ['Transfer-Encoding: chunked'], `0x5\r\nhello\r\n0\r\n\r\n`), requests: (n) => [line(`POST /d/${n}/a`)], follow: 'no' },
  { name: 'negative chunk size', send: (n) => post(n, ['Transfer-Encoding: chunked'], `-5\r\nhello\r\n0\r\n\r\n`), requests: (n) => [line(`POST /d/${n}/a`)], follow: 'no' },
  { name: 'chunk data longer than its size', send: (n) => post(n, ['Transfer-Encoding: chunked'], `3\r\nhello\r\n0\r\n\r\n`), requests: (n) => [line(`POST /d/${n}/a`)], follow: 'no' },
  { name: 'chunk size followed by a space', send: (n) => post(n, ['Transfer-Encoding: chunked'], `5 \r\nhello\r\n0\r\n\r\n`), requests: (n) => [line(`POST /d/${n}/a`, 'hello')], follow: 'maybe', builtinMayRefuse: 'RFC 9112 7.1: whitespace after a chunk size is only allowed before an extension' },
  { name: 'bare LF chunk lines', send: (n) => post(n, ['Transfer-Encoding: chunked'], `5\nhello\n0\n\n`), requests: (n) => [line(`POST /d/${n}/a`, 'hello')], follow: 'maybe', builtinMayRefuse: RFC_BARE_LF },
  {
    name: 'a trailer with Content-Length is not framing',
    send: (n) => post(n, ['Transfer-Encoding: chunked'], `0\r\nContent-Length: ${smuggled(n).length}\r\n\r\n`) + smuggled(n),
    // The request after the last chunk is the client's own next request.
    requests: (n) => [line(`POST /d/${n}/a`, ''), line(`GET /d/${n}/smuggled`)],
    builtinMayRefuse: 'RFC 9110 6.5.1: framing fields have no meaning in trailers; refusing them is stricter',
  },
];

/** A response forging the backend's answer to the follow-up request: it must never reach that request. */
export const forged = (n: string) => `HTTP/1.1 200 OK\r\nx-echo: GET /d/${n}/canary\r\nx-body-length: 0\r\ncontent-length: 11\r\n\r\necho 999999`;
const ok = (fields: readonly string[], body = 'ok') => msg('HTTP/1.1 200 OK', fields, body);

export const RESPONSE_CASES: readonly ResponseCase[] = [
  // --- well-formed ---
  { name: 'Content-Length', response: () => ok(['Content-Length: 2']), body: 'ok' },
  { name: 'chunked', response: () => ok(['Transfer-Encoding: chunked'], `${chunk('o')}${chunk('k')}0\r\n\r\n`), body: 'ok' },
  { name: 'chunk extensions', response: () => ok(['Transfer-Encoding: chunked'], '2;a=b\r\nok\r\n0;c="d"\r\n\r\n'), body: 'ok' },
  { name: 'trailers', response: () => ok(['Transfer-Encoding: chunked', 'Trailer: X-T'], '2\r\nok\r\n0\r\nX-T: 1\r\n\r\n'), body: 'ok' },
  { name: 'a trailer with Content-Length', response: (n) => ok(['Transfer-Encoding: chunked'], `2\r\nok\r\n0\r\nContent-Length: ${forged(n).length}\r\n\r\n`), body: 'ok' },
  { name: 'a close-delimited body', response: () => ok([], 'until close'), close: true, body: 'until close' },
  { name: 'HTTP/1.0 with a Content-Length', response: () => msg('HTTP/1.0 200 OK', ['Content-Length: 2'], 'ok'), body: 'ok' },
  { name: 'HTTP/1.0 close-delimited', response: () => msg('HTTP/1.0 200 OK', [], 'until close'), close: true, body: 'until close' },
  { name: 'HEAD answered with a Content-Length and no body', method: 'HEAD', response: () => ok(['Content-Length: 5'], ''), body: '' },
  { name: 'Content-Length: 0', response: () => ok(['Content-Length: 0'], ''), body: '' },
  { name: 'Content-Length with leading zeros', response: () => ok(['Content-Length: 0002']), body: 'ok' },
  { name: 'Content-Length: 2, 2', response: () => ok(['Content-Length: 2, 2']), body: 'ok', builtinMayRefuse: RFC_DUP_LENGTH },
  { name: 'two identical Content-Length fields', response: () => ok(['Content-Length: 2', 'Content-Length: 2']), body: 'ok', builtinMayRefuse: RFC_DUP_LENGTH },
  { name: '100 Continue, then 200', response: () => `HTTP/1.1 100 Continue\r\n\r\n${ok(['Content-Length: 2'])}`, body: 'ok' },
  { name: '103 Early Hints with a field, then 200', response: () => `HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n${ok(['Content-Length: 2'])}`, body: 'ok' },
  { name: 'two interim answers, then 200', response: () => `HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n${ok(['Content-Length: 2'])}`, body: 'ok' },
  { name: 'no reason phrase', response: () => msg('HTTP/1.1 200', ['Content-Length: 2'], 'ok'), body: 'ok' },
  { name: 'an empty reason phrase', response: () => msg('HTTP/1.1 200 ', ['Content-Length: 2'], 'ok'), body: 'ok' },
  { name: 'an 8 KiB field', response: () => ok([`X-Big: ${'b'.repeat(8000)}`, 'Content-Length: 2']), body: 'ok' },
  { name: 'obs-text in a field value', response: () => ok(['X-Latin: caf\xe9', 'Content-Length: 2']), body: 'ok' },
  { name: 'a 64 KiB chunked body', response: () => ok(['Transfer-Encoding: chunked'], `${chunk('z'.repeat(16384)).repeat(4)}0\r\n\r\n`), body: 'z'.repeat(65536) },
  { name: 'Connection naming Content-Length', response: () => ok(['Connection: Content-Length', 'Content-Length: 2']), body: 'ok' },

  // --- no body allowed, but bytes follow ---
  { name: 'HEAD answered with a body', method: 'HEAD', response: (n) => ok(['Content-Length: 2'], 'ok') + forged(n), builtinMayRefuse: 'bytes after a complete answer: the backend connection is unusable' },
  { name: '204 with a Content-Length and a body', response: (n) => msg('HTTP/1.1 204 No Content', ['Content-Length: 2'], 'ok') + forged(n), builtinMayRefuse: 'bytes after a complete answer' },
  { name: '304 with a body', response: (n) => msg('HTTP/1.1 304 Not Modified', ['Content-Length: 2'], 'ok') + forged(n), builtinMayRefuse: 'bytes after a complete answer' },
  { name: '204 followed by a forged response', response: (n) => msg('HTTP/1.1 204 No Content', []) + forged(n), builtinMayRefuse: 'bytes after a complete answer' },
  { name: 'a complete response followed by a forged one', response: (n) => ok(['Content-Length: 2']) + forged(n), builtinMayRefuse: 'bytes after a complete answer' },
  { name: 'a chunked response followed by a forged one', response: (n) => ok(['Transfer-Encoding: chunked'], '2\r\nok\r\n0\r\n\r\n') + forged(n), builtinMayRefuse: 'bytes after a complete answer' },
  { name: '101 to a request that asked no upgrade', response: (n) => msg('HTTP/1.1 101 Switching Protocols', ['Connection: Upgrade', 'Upgrade: websocket']) + forged(n), close: true },
  // Bytes were answered: the request reached the backend, which may have acted on it.
  { name: 'a partial head, then close', response: () => 'HTTP/1.1 200 OK\r\nContent-Le', close: true, isolate: true },
  { name: 'a 1xx whose head has a line without a colon', response: () => `HTTP/1.1 100 Continue\r\nNoColon\r\n\r\n${ok(['Content-Length: 2'])}` },
  { name: 'a 1xx with a body', response: () => `HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\nhello${ok(['Content-Length: 2'])}` },

  // --- malformed framing ---
  { name: 'Content-Length and chunked', response: (n) => ok(['Content-Length: 40', 'Transfer-Encoding: chunked'], '2\r\nok\r\n0\r\n\r\n') + forged(n), body: 'ok', builtinMayRefuse: 'RFC 9112 6.3: ought to be handled as an error' },
  { name: 'two different Content-Length fields', response: (n) => ok(['Content-Length: 2', `Content-Length: ${2 + forged(n).length}`], `ok${forged(n)}`) },
  { name: 'Content-Length: 2, 3', response: () => ok(['Content-Length: 2, 3'], 'okk') },
  { name: 'Content-Length: +2', response: () => ok(['Content-Length: +2']) },
  { name: 'Content-Length: -2', response: () => ok(['Content-Length: -2']) },
  { name: 'Content-Length: 2e0', response: () => ok(['Content-Length: 2e0']) },
  { name: 'Content-Length over 64 bits', response: () => ok(['Content-Length: 99999999999999999999']) },
  { name: 'Content-Length longer than the body, then close', response: () => ok(['Content-Length: 10'], 'ok'), close: true },
  { name: 'Transfer-Encoding: gzip, chunked', response: () => ok(['Transfer-Encoding: gzip, chunked'], '2\r\nok\r\n0\r\n\r\n'), builtinMayRefuse: 'the built-in plane decodes no transfer coding but chunked' },
  { name: 'Transfer-Encoding: identity, close-delimited', response: () => ok(['Transfer-Encoding: identity'], 'until close'), close: true, builtinMayRefuse: 'RFC 9112 6.3: a response whose codings do not end in chunked is read until close; refusing it is stricter' },
  { name: 'Transfer-Encoding: xchunked with a Content-Length', response: (n) => ok(['Transfer-Encoding: xchunked', 'Content-Length: 2'], `ok${forged(n)}`), close: true, builtinMayRefuse: 'unknown coding' },
  {
    name: 'chunked in an HTTP/1.0 response',
    response: (n) => msg('HTTP/1.0 200 OK', ['Connection: keep-alive', 'Transfer-Encoding: chunked'], '2\r\nok\r\n0\r\n\r\n') + forged(n),
    builtinMayRefuse: 'RFC 9112 6.1: faulty framing in HTTP/1.0',
    haproxyOdd: 'HAProxy reads the body until the backend closes (RFC 9112 6.1), so the answer never ends while the backend keeps the connection; the follow-up on that client connection waits behind it',
  },
  { name: 'chunk size that is not hex', response: () => ok(['Transfer-Encoding: chunked'], 'zz\r\nok\r\n0\r\n\r\n') },
  { name: 'chunk size with garbage after the digits', response: () => ok(['Transfer-Encoding: chunked'], '2zz\r\nok\r\n0\r\n\r\n') },
  { name: 'chunk size 0x2', response: () => ok(['Transfer-Encoding: chunked'], '0x2\r\nok\r\n0\r\n\r\n') },
  { name: 'negative chunk size', response: () => ok(['Transfer-Encoding: chunked'], '-2\r\nok\r\n0\r\n\r\n') },
  { name: 'chunk size over 64 bits', response: () => ok(['Transfer-Encoding: chunked'], 'ffffffffffffffffff2\r\nok\r\n0\r\n\r\n') },
  { name: 'chunk data not followed by CRLF', response: () => ok(['Transfer-Encoding: chunked'], '2\r\nokXX\r\n0\r\n\r\n') },
  { name: 'chunk data longer than its size', response: (n) => ok(['Transfer-Encoding: chunked'], `2\r\nokay${forged(n)}\r\n0\r\n\r\n`) },
  { name: 'bare LF chunk lines', response: () => ok(['Transfer-Encoding: chunked'], '2\nok\n0\n\n'), body: 'ok', builtinMayRefuse: RFC_BARE_LF },

  // --- malformed head ---
  { name: 'obs-fold', response: () => ok(['X-Folded: a', ' b', 'Content-Length: 2']), body: 'ok', builtinMayRefuse: 'RFC 9112 5.2: obs-fold in a response may be rejected (502)' },
  { name: 'bare LF line endings', response: () => 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok', close: true, body: 'ok', builtinMayRefuse: RFC_BARE_LF, isolate: true },
  { name: 'a bare LF inside a field value', response: () => ok(['X-A: a\nContent-Length: 0', 'Content-Length: 2']) },
  { name: 'a bare CR inside a field value', response: () => ok(['X-A: a\rb', 'Content-Length: 2']) },
  { name: 'NUL in a field value', response: () => ok(['X-A: a\x00b', 'Content-Length: 2']), haproxyOdd: 'HAProxy 2.6 relays the NUL to the client' },
  { name: 'NUL in a field name', response: () => ok(['X-\x00A: b', 'Content-Length: 2']) },
  { name: 'control character 0x01 in a field value', response: () => ok(['X-A: a\x01b', 'Content-Length: 2']), builtinMayRefuse: RFC_CTL, haproxyOdd: 'HAProxy 2.6 relays the control character to the client' },
  { name: 'space before the colon', response: () => ok(['Content-Length : 2']), builtinMayRefuse: 'RFC 9112 5.1: a proxy must remove it or reject' },
  { name: 'a field line without a colon', response: () => ok(['NoColon', 'Content-Length: 2']) },
  { name: 'a field name with a non-token character', response: () => ok(['X(A): b', 'Content-Length: 2']) },
  { name: 'status line garbage', response: () => msg('HTTP/1.1 2OO OK', ['Content-Length: 2'], 'ok') },
  { name: 'status line without a version', response: () => msg('200 OK', ['Content-Length: 2'], 'ok') },
  { name: 'HTTP/2.0 status line', response: () => msg('HTTP/2.0 200 OK', ['Content-Length: 2'], 'ok'), builtinMayRefuse: 'not an HTTP/1 response (HAProxy relays it as 1.1)' },
  { name: 'status 600', response: () => msg('HTTP/1.1 600 Odd', ['Content-Length: 2'], 'ok'), builtinMayRefuse: 'RFC 9110 15: status codes are 100-599' },
  { name: 'status 099', response: () => msg('HTTP/1.1 099 Odd', ['Content-Length: 2'], 'ok') },
  { name: 'status code of two digits', response: () => msg('HTTP/1.1 20 OK', ['Content-Length: 2'], 'ok'), haproxyOdd: 'HAProxy 2.6 relays the invalid status line to the client' },
  { name: 'no space after the status code', response: () => msg('HTTP/1.1 200OK', ['Content-Length: 2'], 'ok') },
  { name: 'a 20 KiB response head', response: () => ok([...filler(20, 1000), 'Content-Length: 2']), body: 'ok', builtinMayAccept: "HAProxy's buffer (tune.bufsize 16 KiB) bounds the head it can hold; the built-in plane allows 64 KiB" },
];
