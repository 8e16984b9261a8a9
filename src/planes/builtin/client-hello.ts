// Reads the SNI host name from the first bytes of a TLS connection (RFC 8446/5246/6066) so that TLS
// pass-through can pick a backend without terminating TLS, then forward exactly the bytes it read.
// It only looks: the caller keeps its buffer and calls again with more bytes while this says 'incomplete'.

export type ClientHelloResult =
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'hello'; readonly serverName: string | undefined }
  | { readonly kind: 'invalid'; readonly reason: string };

const RECORD_HEADER = 5;
const MAX_FRAGMENT = 2 ** 14; // RFC 8446 5.1: a plaintext record carries at most 2^14 bytes
const MAX_MESSAGE = 2 ** 14; // ClientHello with its 4-byte header; real ones are well under 2 KiB
/** Most bytes worth buffering: 'incomplete' is only ever returned for a shorter buffer. The slack lets a client
 * spread a hello over a few records; a hello cut into many tiny records past this bound is refused. */
export const MAX_CLIENT_HELLO_BYTES = MAX_MESSAGE + 64 * RECORD_HEADER;
const HOST_NAME = /^[A-Za-z0-9.-]{1,255}$/;
const INCOMPLETE: ClientHelloResult = { kind: 'incomplete' };
const invalid = (reason: string): ClientHelloResult => ({ kind: 'invalid', reason });

/** Bounds-checked cursor over [at, end) of a buffer: a read past `end` gives undefined instead of throwing. */
class Cursor {
  constructor(private readonly buf: Buffer, private at = 0, private readonly end = buf.length) {}
  get left(): number { return this.end - this.at; }
  int(size: 1 | 2): number | undefined {
    if (this.left < size) return undefined;
    const value = this.buf.readUIntBE(this.at, size);
    this.at += size;
    return value;
  }
  take(length: number): Cursor | undefined {
    if (this.left < length) return undefined;
    const part = new Cursor(this.buf, this.at, this.at + length);
    this.at += length;
    return part;
  }
  /** A vector `<..>` whose length is a `size`-byte prefix; undefined when that length runs past this cursor. */
  vector(size: 1 | 2): Cursor | undefined {
    const length = this.int(size);
    return length === undefined ? undefined : this.take(length);
  }
  text(): string { return this.buf.toString('latin1', this.at, this.end); }
}

export function readClientHello(data: Buffer): ClientHelloResult {
  // The handshake layer is a byte stream cut into records at the sender's whim, so the message is reassembled
  // from the fragments of consecutive handshake records. Records are taken whole so that every byte checked is
  // one that will be forwarded; bytes after the hello's last record (CCS, early data) are not looked at.
  const fragments: Buffer[] = [];
  let gathered = 0;
  let messageLength: number | undefined; // header included; known once 4 bytes are gathered
  for (let at = 0; ;) {
    // Each header byte is checked as soon as it arrives, so HTTP, SSLv2 (high bit set) and junk fail at once.
    if (data.length > at && data[at] !== 22) return invalid(`record type ${data[at]} is not a handshake`);
    if (data.length > at + 1 && data[at + 1] !== 3) return invalid('record version is not TLS');
    const minor = data[at + 2];
    if (minor !== undefined && (minor < 1 || minor > 4)) return invalid(`record version 3.${minor} is not TLS 1.0-1.3`);
    if (data.length < at + RECORD_HEADER) return INCOMPLETE;
    const length = data.readUInt16BE(at + 3);
    if (length === 0 || length > MAX_FRAGMENT) return invalid(`record length ${length} out of range`);
    const end = at + RECORD_HEADER + length;
    if (end > MAX_CLIENT_HELLO_BYTES) return invalid(`ClientHello spans more than ${MAX_CLIENT_HELLO_BYTES} bytes`);
    if (data.length < end) return INCOMPLETE;
    fragments.push(data.subarray(at + RECORD_HEADER, end));
    gathered += length;
    at = end;
    if (messageLength === undefined && gathered >= 4) {
      const head = Buffer.concat(fragments, 4);
      if (head[0] !== 1) return invalid(`handshake type ${head[0]} is not a ClientHello`);
      messageLength = 4 + head.readUIntBE(1, 3);
      if (messageLength > MAX_MESSAGE) return invalid(`ClientHello length ${messageLength - 4} is too large`);
    }
    if (messageLength !== undefined && gathered >= messageLength) {
      // Only the ClientHello may precede the server's answer: more handshake bytes in its records are a forgery.
      if (gathered > messageLength) return invalid('handshake data after the ClientHello');
      return parseHello(new Cursor(Buffer.concat(fragments, gathered), 4));
    }
  }
}

function parseHello(hello: Cursor): ClientHelloResult {
  const version = hello.int(2);
  if (version === undefined || version < 0x0301 || version > 0x0304) return invalid('bad legacy_version');
  if (hello.take(32) === undefined) return invalid('truncated random');
  const sessionId = hello.vector(1);
  if (sessionId === undefined || sessionId.left > 32) return invalid('bad session_id');
  const suites = hello.vector(2);
  if (suites === undefined || suites.left === 0 || suites.left % 2 !== 0) return invalid('bad cipher_suites');
  const compression = hello.vector(1);
  if (compression === undefined || compression.left === 0) return invalid('bad compression_methods');
  if (hello.left === 0) return { kind: 'hello', serverName: undefined }; // RFC 5246 7.4.1.2: extensions are optional
  const extensions = hello.vector(2);
  if (extensions === undefined || hello.left !== 0) return invalid('extensions do not end the ClientHello');
  const seen = new Set<number>();
  let serverName: string | undefined;
  while (extensions.left > 0) {
    const type = extensions.int(2);
    const body = extensions.vector(2);
    if (type === undefined || body === undefined) return invalid('extension runs past the extensions block');
    // RFC 8446 4.2: at most one of each; two server_names could steer us and the backend to different hosts.
    if (seen.has(type)) return invalid(`extension ${type} repeated`);
    seen.add(type);
    if (type !== 0) continue;
    const names = body.vector(2);
    if (names === undefined || names.left === 0 || body.left !== 0) return invalid('bad server_name list');
    while (names.left > 0) {
      const nameType = names.int(1);
      const name = names.vector(2); // RFC 6066: every name type is an opaque<1..2^16-1>, unknown ones are skipped
      if (nameType === undefined || name === undefined) return invalid('server_name entry runs past its list');
      if (nameType !== 0) continue;
      const host = name.text();
      if (serverName !== undefined) return invalid('more than one host_name');
      if (!HOST_NAME.test(host)) return invalid('host_name is not an ASCII host name');
      serverName = host.toLowerCase();
    }
  }
  return { kind: 'hello', serverName };
}
