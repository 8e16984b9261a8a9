/**
 * Client identity behind other load balancers (issue 10), the same cases on both planes: which
 * X-Forwarded-For chain the backend gets, which client allowedIps/deniedIps check, and PROXY
 * protocol v1/v2 headers from a real client over HTTP and HTTPS.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { PlaneKind } from '../../src/planes/plane.js';
import { startBackend } from '../support/backends.js';
import type { Backend, BackendReply } from '../support/backends.js';
import { request } from '../support/http-client.js';
import { startTestProxy } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

/** A PROXY protocol v2 header for a TCP connection from `source` (IPv4 or IPv6) with one TLV. */
function proxyV2(source: string, sourcePort: number, destinationPort: number): Buffer {
  const v6 = net.isIPv6(source);
  const addresses = v6
    ? Buffer.concat([ipv6Bytes(source), ipv6Bytes('::1'), port(sourcePort), port(destinationPort)])
    : Buffer.concat([Buffer.from(source.split('.').map(Number)), Buffer.from([127, 0, 0, 1]), port(sourcePort), port(destinationPort)]);
  const tlv = Buffer.from([0x04, 0x00, 0x02, 0xab, 0xcd]); // PP2_TYPE_NOOP, skipped
  const length = Buffer.alloc(2);
  length.writeUInt16BE(addresses.length + tlv.length);
  return Buffer.concat([Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1'), Buffer.from([0x21, v6 ? 0x21 : 0x11]), length, addresses, tlv]);
}

function port(value: number): Buffer {
  const bytes = Buffer.alloc(2);
  bytes.writeUInt16BE(value);
  return bytes;
}

function ipv6Bytes(address: string): Buffer {
  const [head = '', tail = ''] = address.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const missing = 8 - groups(head).length - groups(tail).length;
  const all = [...groups(head), ...Array<string>(address.includes('::') ? missing : 0).fill('0'), ...groups(tail)];
  return Buffer.from(all.flatMap((group) => [parseInt(group, 16) >> 8, parseInt(group, 16) & 0xff]));
}

/** Sends `preamble` then one HTTP/1.1 request (over TLS when `secure`); resolves with the whole answer, '' when the proxy closed without one. */
function exchange(portNumber: number, preamble: Buffer, path: string, secure = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(portNumber, '127.0.0.1');
    const requestText = `GET ${path} HTTP/1.1\r\nHost: identity.test\r\nConnection: close\r\n\r\n`;
    const chunks: Buffer[] = [];
    const collect = (stream: net.Socket | tls.TLSSocket) => {
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
      stream.on('error', () => undefined);
    };
    socket.once('error', reject);
    socket.once('connect', () => {
      // Once connected, a reset is an answer too: the proxy refused the connection.
      socket.off('error', reject);
      if (preamble.length > 0) socket.write(preamble);
      if (!secure) {
        collect(socket);
        socket.write(requestText);
        return;
      }
      const secured = tls.connect({ socket, servername: 'identity.test', rejectUnauthorized: false }, () => secured.write(requestText));
      collect(secured);
    });
  });
}

function bodyOf(answer: string): BackendReply {
  expect(answer).toMatch(/^HTTP\/1\.1 200 /);
  const split = answer.indexOf('\r\n\r\n');
  let body = answer.slice(split + 4);
  if (/^transfer-encoding: *chunked/im.test(answer.slice(0, split))) {
    let text = '';
    for (let size = parseInt(body, 16); size > 0; size = parseInt(body, 16)) {
      const start = body.indexOf('\r\n') + 2;
      text += body.slice(start, start + size);
      body = body.slice(start + size + 2);
    }
    body = text;
  }
  return JSON.parse(body) as BackendReply;
}

export function defineClientIdentitySuite(plane: PlaneKind): void {
  describe(`client identity: ${plane} plane`, () => {
    let backend: Backend;
    const started: TestProxy[] = [];

    const proxyWith = async (extraArgs: string[]) => {
      const proxy = await startTestProxy({ plane, dnsServer: undefined, extraArgs });
      started.push(proxy);
      for (const [name, extra] of [
        ['open', {}],
        ['allow-doc', { allowedIps: '203.0.113.0/24,198.51.100.0/24,2001:db8::/32' }],
        ['deny-doc', { deniedIps: '203.0.113.7' }],
      ] as const) {
        const reply = await proxy.api('reconfigure', { serviceName: name, servicePath: `/${name}`, port: String(backend.port), outboundHostname: '127.0.0.1', ...extra });
        expect(reply.status, reply.text).toBe(200);
      }
      return proxy;
    };

    beforeAll(async () => {
      backend = await startBackend('identity');
    });

    afterAll(async () => {
      await Promise.all(started.map((proxy) => proxy.stop()));
      await backend?.close();
    });

    test('a trusted proxy keeps its X-Forwarded-For chain, and its last address is the client the IP lists check', async () => {
      const proxy = await proxyWith(['--trusted-proxies', '10.0.0.0/8,127.0.0.1']);
      const seen = await request(proxy.httpUrl, '/open/x', { headers: { 'x-forwarded-for': '192.0.2.1, 203.0.113.7' } });
      expect(seen.json<BackendReply>().headers['x-forwarded-for']).toBe('192.0.2.1, 203.0.113.7, 127.0.0.1');
      expect((await request(proxy.httpUrl, '/allow-doc/x', { headers: { 'x-forwarded-for': '203.0.113.9' } })).status).toBe(200);
      expect((await request(proxy.httpUrl, '/allow-doc/x')).status).toBe(403);
      expect((await request(proxy.httpUrl, '/deny-doc/x', { headers: { 'x-forwarded-for': '203.0.113.7' } })).status).toBe(403);
      expect((await request(proxy.httpUrl, '/deny-doc/x', { headers: { 'x-forwarded-for': '203.0.113.8' } })).status).toBe(200);
    });

    test('an untrusted client cannot choose its address: its X-Forwarded-For is dropped', async () => {
      const proxy = await proxyWith(['--trusted-proxies', '10.0.0.0/8']);
      const seen = await request(proxy.httpUrl, '/open/x', { headers: { 'x-forwarded-for': '203.0.113.9' } });
      expect(seen.json<BackendReply>().headers['x-forwarded-for']).toBe('127.0.0.1');
      expect((await request(proxy.httpUrl, '/allow-doc/x', { headers: { 'x-forwarded-for': '203.0.113.9' } })).status).toBe(403);
    });

    test('PROXY protocol v1 and v2 name the client over HTTP and HTTPS; a connection without the header gets nothing', async () => {
      const proxy = await proxyWith(['--proxy-protocol', 'all']);
      const { httpPort, httpsPort } = proxy.settings;
      const v1 = Buffer.from(`PROXY TCP4 198.51.100.9 127.0.0.1 40000 ${httpPort}\r\n`, 'latin1');
      expect(bodyOf(await exchange(httpPort, v1, '/open/x')).headers['x-forwarded-for']).toBe('198.51.100.9');
      expect(bodyOf(await exchange(httpPort, proxyV2('2001:db8::7', 40001, httpPort), '/allow-doc/x')).headers['x-forwarded-for']).toBe('2001:db8::7');
      expect(bodyOf(await exchange(httpsPort, proxyV2('203.0.113.9', 40002, httpsPort), '/open/x', true)).headers['x-forwarded-for']).toBe('203.0.113.9');
      // The address the header names is the one the IP lists check.
      expect(await exchange(httpPort, proxyV2('203.0.113.7', 40003, httpPort), '/deny-doc/x')).toMatch(/^HTTP\/1\.1 403 /);
      expect(await exchange(httpPort, Buffer.alloc(0), '/open/x')).toBe('');
      expect(await exchange(httpPort, Buffer.from('PROXY TCP4 not-an-address 127.0.0.1 1 2\r\n', 'latin1'), '/open/x')).toBe('');
    });
  });
}
