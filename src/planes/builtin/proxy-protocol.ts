// PROXY protocol (HAProxy spec, v1 text and v2 binary) in front of the built-in plane's servers,
// so that a load balancer in front of us can tell us who the client really is.
import net from 'node:net';

export interface ProxiedSource {
  readonly address: string;
  readonly port: number;
}

export interface ProxyProtocolOptions {
  /** A connection that has not sent a complete header by then is dropped. */
  readonly timeoutMs: number;
  /** Called once for every connection dropped before it reached the wrapped server. */
  readonly onError?: (socket: net.Socket, reason: Error) => void;
}

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V1_MAX = 107; // including the CRLF
const V2_SIGNATURE = Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1');
const V2_MAX_TLVS = 1024;
// Size of the address block per v2 family byte; others (UDP, UNIX) only pass with LOCAL.
const V2_ADDRESS_LENGTH = new Map([[0x00, 0], [0x11, 12], [0x12, 12], [0x21, 36], [0x22, 36], [0x31, 216], [0x32, 216]]);

interface Header {
  readonly length: number;
  readonly source: ProxiedSource | undefined; // undefined: LOCAL/UNKNOWN, the TCP peer is the client
}

/** Header at the start of `data`, or undefined while more bytes are needed; throws when it cannot be one. */
function parseHeader(data: Buffer): Header | undefined {
  const signature = data[0] === V2_SIGNATURE[0] ? V2_SIGNATURE : V1_PREFIX;
  const compared = Math.min(data.length, signature.length);
  if (data.compare(signature, 0, compared, 0, compared) !== 0) throw new Error('no PROXY protocol header');
  if (compared < signature.length) return undefined;
  return signature === V2_SIGNATURE ? parseV2(data) : parseV1(data);
}

function parseV1(data: Buffer): Header | undefined {
  const end = data.subarray(0, V1_MAX).indexOf('\n');
  if (end === -1) {
    if (data.length >= V1_MAX) throw new Error('PROXY v1 header longer than 107 bytes');
    return undefined;
  }
  if (data[end - 1] !== 0x0d) throw new Error('PROXY v1 header not ended by CRLF');
  const fields = data.toString('latin1', 0, end - 1).split(' ');
  if (fields[1] === 'UNKNOWN') return { length: end + 1, source: undefined }; // the rest is to be ignored
  const family = fields[1] === 'TCP4' ? 4 : fields[1] === 'TCP6' ? 6 : 0;
  const [, , source, destination, sourcePort, destinationPort] = fields;
  if (family === 0 || fields.length !== 6) throw new Error('malformed PROXY v1 header');
  for (const address of [source, destination]) {
    // isIP accepts IPv6 zone ids ("%eth0"), which a peer address on the wire cannot have.
    if (address === undefined || net.isIP(address) !== family || address.includes('%')) throw new Error(`bad address in PROXY v1 header: ${address}`);
  }
  for (const port of [sourcePort, destinationPort]) {
    if (port === undefined || !/^(0|[1-9][0-9]{0,4})$/.test(port) || Number(port) > 65535) throw new Error(`bad port in PROXY v1 header: ${port}`);
  }
  return { length: end + 1, source: { address: normalize(source ?? '', family), port: Number(sourcePort) } };
}

function parseV2(data: Buffer): Header | undefined {
  if (data.length < 16) return undefined;
  const command = data.readUInt8(12);
  const family = data.readUInt8(13);
  const length = data.readUInt16BE(14);
  if (command !== 0x20 && command !== 0x21) throw new Error(`bad PROXY v2 version/command 0x${command.toString(16)}`);
  const addressLength = V2_ADDRESS_LENGTH.get(family);
  if (addressLength === undefined || (command === 0x21 && family !== 0x00 && family !== 0x11 && family !== 0x21)) {
    throw new Error(`unsupported PROXY v2 family 0x${family.toString(16)}`);
  }
  if (length < addressLength || length > addressLength + V2_MAX_TLVS) throw new Error(`bad PROXY v2 length ${length}`);
  if (data.length < 16 + length) return undefined;
  if (command === 0x20 || family === 0x00) return { length: 16 + length, source: undefined };
  const address = family === 0x11
    ? [...data.subarray(16, 20)].join('.')
    : normalize(Array.from({ length: 8 }, (_, i) => data.readUInt16BE(16 + 2 * i).toString(16)).join(':'), 6);
  // TLVs (after the addresses) are skipped: nothing here uses them.
  return { length: 16 + length, source: { address, port: data.readUInt16BE(16 + addressLength - 4) } };
}

/** The same text Node gives in `socket.remoteAddress` (lower case, zeros compressed). */
function normalize(address: string, family: 4 | 6): string {
  return family === 4 ? address : new net.SocketAddress({ address, family: 'ipv6' }).address;
}

/** Reads the header off the socket; bytes after it are put back for whoever reads next. */
function readHeader(socket: net.Socket, timeoutMs: number): Promise<Header> {
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    const done = (error: Error | undefined, header?: Header): void => {
      clearTimeout(timer);
      socket.off('data', onData).off('error', done).off('end', onEnd);
      if (error !== undefined || header === undefined) return reject(error ?? new Error('no header'));
      socket.pause();
      if (received.length > header.length) socket.unshift(received.subarray(header.length));
      resolve(header);
    };
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      let header: Header | undefined;
      try {
        header = parseHeader(received);
      } catch (error) {
        return done(error as Error);
      }
      if (header !== undefined) done(undefined, header);
    };
    const onEnd = (): void => done(new Error('connection ended before a complete PROXY protocol header'));
    const timer = setTimeout(() => done(new Error(`no PROXY protocol header within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', onData).on('error', done).on('end', onEnd);
  });
}

// Keyed by the accepted net.Socket: that object is what stays the same however the request reaches us.
const sources = new WeakMap<object, ProxiedSource>();

/**
 * A server to listen on instead of `server` (http, https or http2 secure): each connection must start
 * with a PROXY protocol header, and only then is it handed to `server` as if `server` had accepted it.
 */
export function acceptProxyProtocol(server: net.Server, options: ProxyProtocolOptions): net.Server {
  // noDelay: http.Server's default, which it now only applies to sockets it accepts itself.
  return net.createServer({ noDelay: true }, (socket) => {
    readHeader(socket, options.timeoutMs).then(
      (header) => {
        if (header.source !== undefined) sources.set(socket, header.source);
        server.emit('connection', socket);
        // readHeader paused the socket so nothing is lost before this point; http.Server does not resume
        // it, and the bytes put back would sit unread (TLS servers are unaffected either way).
        socket.resume();
      },
      (error: Error) => {
        socket.destroy();
        options.onError?.(socket, error);
      },
    );
  });
}

function sourceOf(socket: net.Socket): ProxiedSource | undefined {
  // Over TLS, `req.socket` is the tls.TLSSocket Node built around the accepted socket, which it keeps as
  // `_parent` (Node 20). HTTP/2's `req.socket` and `session.socket` are proxies that pass reads through
  // to that TLSSocket, so `_parent` reaches the accepted socket from them too.
  return sources.get(socket) ?? sources.get((socket as { _parent?: object })._parent ?? socket);
}

/** The client's address: the PROXY header's source if it named one, else the TCP peer. */
export function clientAddressOf(socket: net.Socket): string {
  return sourceOf(socket)?.address ?? socket.remoteAddress ?? '';
}

/** The client's port, like `clientAddressOf`. */
export function clientPortOf(socket: net.Socket): number | undefined {
  return sourceOf(socket)?.port ?? socket.remotePort;
}
