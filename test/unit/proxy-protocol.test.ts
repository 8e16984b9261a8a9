import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { acceptProxyProtocol, clientAddressOf, clientPortOf } from '../../src/planes/builtin/proxy-protocol.js';
import { eventually } from '../support/http-client.js';

const V2_SIGNATURE = Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1');
const REQUEST = 'GET /who HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n';

function v2(command: 0x20 | 0x21, family: number, body: Buffer, declaredLength = body.length): Buffer {
  const fixed = Buffer.alloc(4);
  fixed.writeUInt8(command, 0);
  fixed.writeUInt8(family, 1);
  fixed.writeUInt16BE(declaredLength, 2);
  return Buffer.concat([V2_SIGNATURE, fixed, body]);
}

/** Address block: IPv4 dotted or IPv6 written out in full (8 groups). */
function addresses(source: string, destination: string, sourcePort: number, destinationPort: number): Buffer {
  const bytes = (address: string): number[] => net.isIPv4(address)
    ? address.split('.').map(Number)
    : address.split(':').flatMap((group) => [parseInt(group, 16) >> 8, parseInt(group, 16) & 0xff]);
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(sourcePort, 0);
  ports.writeUInt16BE(destinationPort, 2);
  return Buffer.concat([Buffer.from([...bytes(source), ...bytes(destination)]), ports]);
}

function tlv(type: number, value: string): Buffer {
  const head = Buffer.alloc(3);
  head.writeUInt8(type, 0);
  head.writeUInt16BE(value.length, 1);
  return Buffer.concat([head, Buffer.from(value, 'latin1')]);
}

const answer = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void => {
  const session = 'stream' in req ? req.stream.session?.socket : undefined;
  res.end(JSON.stringify({
    address: clientAddressOf(req.socket),
    port: clientPortOf(req.socket),
    ...(session === undefined ? {} : { sessionAddress: clientAddressOf(session) }),
  }));
};

interface Wrapped {
  readonly port: number;
  readonly errors: Error[];
  /** Connections the wrapped server was given. */
  readonly handedOver: () => number;
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function wrap(server: net.Server, timeoutMs = 5_000): Promise<Wrapped> {
  const errors: Error[] = [];
  let handedOver = 0;
  server.on('connection', () => handedOver++);
  const outer = acceptProxyProtocol(server, { timeoutMs, onError: (_socket, reason) => errors.push(reason) });
  const sockets = new Set<net.Socket>();
  outer.on('connection', (socket) => sockets.add(socket));
  await new Promise<void>((resolve) => outer.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    outer.close();
    for (const socket of sockets) socket.destroy();
  });
  return { port: (outer.address() as net.AddressInfo).port, errors, handedOver: () => handedOver };
}

function deadline<T>(promise: Promise<T>, ms = 5_000): Promise<T> {
  return Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no result within ${ms} ms`)), ms).unref())]);
}

/** Everything the server sends until it closes the connection. */
function readAll(socket: Duplex): Promise<string> {
  return deadline(new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
  }));
}

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise((resolve) => socket.once('connect', resolve));
  return socket;
}

/** Sends `writes` one after another on a fresh connection; returns the parsed JSON body of the answer. */
async function ask(port: number, writes: (string | Buffer)[]): Promise<Record<string, unknown>> {
  const socket = await connect(port);
  const response = readAll(socket);
  for (const data of writes) {
    // Each write is flushed before the next (no delay: its own segment), so the server can read them apart.
    await new Promise<void>((resolve, reject) => socket.write(data, (error) => (error ? reject(error) : resolve())));
  }
  const text = await response;
  expect(text).toMatch(/^HTTP\/1\.1 200 /);
  return JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
}

const bytes = (data: Buffer): Buffer[] => [...data].map((byte) => Buffer.from([byte]));

describe('PROXY protocol over plain HTTP', () => {
  it('v1 TCP4 and TCP6 name the client', async () => {
    const server = await wrap(http.createServer(answer));
    expect(await ask(server.port, ['PROXY TCP4 203.0.113.7 10.0.0.1 51234 80\r\n', REQUEST])).toEqual({ address: '203.0.113.7', port: 51234 });
    expect(await ask(server.port, [`PROXY TCP6 2001:DB8:0:0::7 ::1 0 65535\r\n${REQUEST}`])).toEqual({ address: '2001:db8::7', port: 0 });
    expect(server.errors).toEqual([]);
  });

  it('v2 IPv4 and IPv6 with TLVs, one byte at a time or together with the request', async () => {
    const server = await wrap(http.createServer(answer));
    const ipv4 = v2(0x21, 0x11, Buffer.concat([addresses('198.51.100.20', '10.0.0.1', 40000, 443), tlv(0x02, 'example.com'), tlv(0x04, '\0\0\0')]));
    const ipv6 = v2(0x21, 0x21, Buffer.concat([addresses('2001:db8:0:0:0:0:0:20', 'fe80:0:0:0:0:0:0:1', 40001, 443), tlv(0x01, 'h2')]));
    expect(await ask(server.port, [...bytes(ipv4), REQUEST])).toEqual({ address: '198.51.100.20', port: 40000 });
    expect(await ask(server.port, [...bytes(ipv6), REQUEST])).toEqual({ address: '2001:db8::20', port: 40001 });
    expect(await ask(server.port, [Buffer.concat([ipv4, Buffer.from(REQUEST)])])).toEqual({ address: '198.51.100.20', port: 40000 });
    expect(await ask(server.port, [Buffer.concat([ipv6, Buffer.from(REQUEST)])])).toEqual({ address: '2001:db8::20', port: 40001 });
  });

  it('v2 LOCAL, v2 UNSPEC and v1 UNKNOWN leave the TCP peer as the client', async () => {
    const server = await wrap(http.createServer(answer));
    const local = v2(0x20, 0x11, addresses('198.51.100.20', '10.0.0.1', 40000, 443));
    for (const header of [local, v2(0x21, 0x00, Buffer.alloc(0)), Buffer.from('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n'), Buffer.from('PROXY UNKNOWN\r\n')]) {
      expect((await ask(server.port, [Buffer.concat([header, Buffer.from(REQUEST)])])).address).toBe('127.0.0.1');
    }
  });

  it('a socket that never went through the wrapper is its own client', async () => {
    const server = http.createServer(answer);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => server.close());
    expect((await ask((server.address() as net.AddressInfo).port, [REQUEST])).address).toBe('127.0.0.1');
  });
});

describe('PROXY protocol over TLS', () => {
  let dir = '';
  let key: Buffer;
  let cert: Buffer;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'proxy-protocol-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    key = readFileSync(join(dir, 'key.pem'));
    cert = readFileSync(join(dir, 'cert.pem'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const header = (): Buffer => v2(0x21, 0x11, Buffer.concat([addresses('192.0.2.33', '10.0.0.1', 33333, 443), tlv(0x02, 'localhost')]));

  /** A TLS client on a connection that starts with `first`, sent on its own or in one write with the ClientHello. */
  async function tlsClient(port: number, first: Buffer, together: boolean, ALPNProtocols: string[]): Promise<tls.TLSSocket> {
    const raw = await connect(port);
    let carrier: Duplex = raw;
    if (together) {
      let pending: Buffer | undefined = first;
      carrier = new Duplex({
        write(chunk: Buffer, _encoding, callback) {
          raw.write(pending === undefined ? chunk : Buffer.concat([pending, chunk]), callback);
          pending = undefined;
        },
        final(callback) {
          raw.end(callback);
        },
        read() {},
      });
      raw.on('data', (chunk: Buffer) => carrier.push(chunk));
      raw.on('end', () => carrier.push(null));
      raw.on('close', () => carrier.destroy());
      raw.on('error', () => undefined);
    } else {
      raw.write(first);
    }
    const socket = tls.connect({ socket: carrier, ca: cert, servername: 'localhost', ALPNProtocols });
    await deadline(new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject)));
    return socket;
  }

  async function overHttp1(port: number, together: boolean): Promise<Record<string, unknown>> {
    const socket = await tlsClient(port, header(), together, ['http/1.1']);
    const response = readAll(socket);
    socket.write(REQUEST);
    const text = await response;
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    return JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
  }

  it('https: the request sees the address from the header', async () => {
    const server = await wrap(https.createServer({ key, cert }, answer));
    expect(await overHttp1(server.port, false)).toEqual({ address: '192.0.2.33', port: 33333 });
    expect(await overHttp1(server.port, true)).toEqual({ address: '192.0.2.33', port: 33333 });
    expect(server.errors).toEqual([]);
  });

  it('http2 secure server: both HTTP/2 and its HTTP/1.1 fallback see the address from the header', async () => {
    const server = await wrap(http2.createSecureServer({ key, cert, allowHTTP1: true }, answer));
    expect(await overHttp1(server.port, true)).toEqual({ address: '192.0.2.33', port: 33333 });
    for (const together of [false, true]) {
      const socket = await tlsClient(server.port, header(), together, ['h2']);
      const session = http2.connect('https://localhost', { createConnection: () => socket });
      const body = await deadline(new Promise<string>((resolve, reject) => {
        const stream = session.request({ ':path': '/who' });
        let text = '';
        stream.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).on('end', () => resolve(text)).on('error', reject);
      }));
      session.close();
      expect(JSON.parse(body)).toEqual({ address: '192.0.2.33', port: 33333, sessionAddress: '192.0.2.33' });
    }
  });
});

describe('connections without a valid header', () => {
  const malformed: [string, Buffer, RegExp][] = [
    ['no header at all', Buffer.from(REQUEST), /no PROXY protocol header/],
    ['a bad v2 signature', Buffer.concat([Buffer.from('\r\n\r\n\0\r\nQUIX\n'), Buffer.alloc(8)]), /no PROXY protocol header/],
    ['a v1 header without CRLF in 107 bytes', Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`), /longer than 107/],
    ['a v1 header ended by a bare LF', Buffer.from(`PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n${REQUEST}`), /CRLF/],
    ['a bad v1 address', Buffer.from(`PROXY TCP4 256.1.1.1 10.0.0.1 1234 80\r\n${REQUEST}`), /bad address/],
    ['an IPv6 address in a TCP4 line', Buffer.from(`PROXY TCP4 ::1 10.0.0.1 1234 80\r\n${REQUEST}`), /bad address/],
    ['a v1 port with a leading zero', Buffer.from(`PROXY TCP4 1.2.3.4 10.0.0.1 080 80\r\n${REQUEST}`), /bad port/],
    ['a v1 port above 65535', Buffer.from(`PROXY TCP4 1.2.3.4 10.0.0.1 65536 80\r\n${REQUEST}`), /bad port/],
    ['a v1 header with a missing field', Buffer.from(`PROXY TCP4 1.2.3.4 10.0.0.1 80\r\n${REQUEST}`), /malformed/],
    ['a v2 length too large', v2(0x21, 0x11, addresses('1.2.3.4', '10.0.0.1', 1, 2), 12 + 1025), /bad PROXY v2 length/],
    ['a v2 length too small for the addresses', v2(0x21, 0x21, Buffer.alloc(12), 12), /bad PROXY v2 length/],
    ['an unknown v2 version', Buffer.concat([V2_SIGNATURE, Buffer.from([0x11, 0x11, 0, 12]), Buffer.alloc(12)]), /version\/command/],
    ['a v2 UDP source', v2(0x21, 0x12, addresses('1.2.3.4', '10.0.0.1', 1, 2)), /family/],
  ];

  it.each(malformed)('%s: closed without an answer', async (_name, data, reason) => {
    const server = await wrap(http.createServer(answer));
    const socket = await connect(server.port);
    const response = readAll(socket);
    socket.write(data);
    expect(await response).toBe('');
    expect(server.errors).toHaveLength(1);
    expect(server.errors[0]?.message).toMatch(reason);
    expect(server.handedOver()).toBe(0);
  });

  it('a client that sends nothing, or only part of a header, is closed after the timeout', async () => {
    const server = await wrap(http.createServer(answer), 200);
    for (const data of ['', 'PROXY TCP4 1.2.3.4', V2_SIGNATURE.subarray(0, 5)]) {
      const started = Date.now();
      const socket = await connect(server.port);
      const response = readAll(socket);
      if (data.length > 0) socket.write(data);
      expect(await response).toBe('');
      expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    }
    expect(server.errors.map((error) => error.message)).toEqual(Array(3).fill('no PROXY protocol header within 200 ms'));
    expect(server.handedOver()).toBe(0);
  });

  it('a client that hangs up mid-header is reported and never handed over', async () => {
    const server = await wrap(http.createServer(answer));
    const socket = await connect(server.port);
    const response = readAll(socket);
    socket.end('PROXY TCP4 1.2.3.4 ');
    expect(await response).toBe('');
    await eventually(async () => server.errors.length, (count) => count > 0, 5_000);
    expect(server.errors[0]?.message).toMatch(/ended before/);
    expect(server.handedOver()).toBe(0);
  });
});
