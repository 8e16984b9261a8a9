/**
 * Backends that misbehave, and clients that are slow or leave: run on each plane, with the
 * HAProxy plane as the reference. A bad backend costs one 5xx, never the process; a request is
 * never sent twice unless it is safe to; one client's keep-alive connection never desyncs; each
 * timer cuts only what it is meant for.
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { PlaneKind } from '../../src/planes/plane.js';
import { startBackend } from '../support/backends.js';
import type { Backend } from '../support/backends.js';
import { TestDnsServer } from '../support/dns-server.js';
import { eventually, request } from '../support/http-client.js';
import { freePort, startTestProxy } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';
import { okResponse, startRawBackend } from '../support/raw-backend.js';
import type { RawBackend } from '../support/raw-backend.js';

const run = promisify(execFile);

export function defineHostileBackendSuite(plane: PlaneKind): void {
  describe(`hostile backends: ${plane} plane`, () => {
    const dns = new TestDnsServer();
    let dnsAddress: string;
    let proxy: TestProxy;
    let healthy: Backend;
    const closers: (() => Promise<void>)[] = [];

    /** Routes /NAME to a raw backend answering with `answer`; resolves once the route serves. */
    const rawRoute = async (name: string, answer: Parameters<typeof startRawBackend>[0], params: Record<string, string> = {}): Promise<RawBackend> => {
      const backend = await startRawBackend(answer);
      closers.push(() => backend.close());
      dns.set(name, ['127.0.0.1']);
      const reply = await proxy.api('reconfigure', { serviceName: name, servicePath: `/${name}`, port: String(backend.port), ...params });
      expect(reply.status, reply.text).toBe(200);
      await eventually(() => request(proxy.httpUrl, '/healthy/hello'), (r) => r.status === 200);
      return backend;
    };
    /** Waits until the route to NAME no longer answers 503 (HAProxy resolves names after a reload). */
    const routed = (path: string, options: Parameters<typeof request>[2] = {}) =>
      eventually(() => request(proxy.httpUrl, path, options), (r) => r.status !== 503 && r.status !== 404, 10_000);
    const stillServing = async () => expect((await request(proxy.httpUrl, '/healthy/hello')).status).toBe(200);

    beforeAll(async () => {
      dnsAddress = await dns.start();
      proxy = await startTestProxy({ plane, dnsServer: dnsAddress, env: { TIMEOUT_CONNECT: '1' } });
      healthy = await startBackend('healthy');
      dns.set('healthy', ['127.0.0.1']);
      expect((await proxy.api('reconfigure', { serviceName: 'healthy', servicePath: '/healthy', port: String(healthy.port) })).status).toBe(200);
      await eventually(() => request(proxy.httpUrl, '/healthy/hello'), (r) => r.status === 200);
    });

    afterAll(async () => {
      await proxy?.stop();
      await healthy?.close();
      await Promise.all(closers.map((close) => close()));
      await dns.stop();
    });

    test.each([
      ['a header name with a space', 'HTTP/1.1 200 OK\r\nBad Name: x\r\ncontent-length: 2\r\n\r\nok'],
      ['a header line without a colon', 'HTTP/1.1 200 OK\r\nno colon here\r\ncontent-length: 2\r\n\r\nok'],
      ['Content-Length 1e1', 'HTTP/1.1 200 OK\r\ncontent-length: 1e1\r\n\r\n0123456789'],
      ['Content-Length 0x10', 'HTTP/1.1 200 OK\r\ncontent-length: 0x10\r\n\r\n0123456789abcdef'],
      ['an empty Content-Length', 'HTTP/1.1 200 OK\r\ncontent-length: \r\n\r\nok'],
      ['two different Content-Lengths', 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nokk'],
      ['a status line that is not HTTP', 'SMTP 220 hello\r\n\r\n'],
    ])('%s costs a 502, and the proxy keeps serving', async (label, response) => {
      const name = `bad-${label.replace(/[^a-z0-9]+/gi, '-').toLowerCase().replace(/-$/, '')}`.slice(0, 40);
      await rawRoute(name, (socket) => socket.end(response));
      const answer = await routed(`/${name}`);
      expect(answer.status).toBe(502);
      await stillServing();
    });

    test.each([
      ['a NUL', 'HTTP/1.1 200 OK\r\nx-a: b\0c\r\ncontent-length: 2\r\n\r\nok'],
      ['a bare LF', 'HTTP/1.1 200 OK\r\nx-a: b\nc\r\ncontent-length: 2\r\n\r\nok'],
      ['a bare CR', 'HTTP/1.1 200 OK\r\nx-a: b\rc\r\ncontent-length: 2\r\n\r\nok'],
    ])('a header value with %s never reaches the client as such, and the proxy keeps serving', async (label, response) => {
      const name = `value-${label.replace(/[^a-z]+/gi, '-').toLowerCase()}`;
      await rawRoute(name, (socket) => socket.end(response));
      // HAProxy passes some of these on (the client's parser then refuses them): what matters is
      // that no client is handed a header that smuggles a line break, and the process lives on.
      const answer = await routed(`/${name}`).catch((error: Error) => error);
      if (!(answer instanceof Error)) {
        expect(answer.status === 502 || answer.headers['x-a'] === undefined || !/[\r\n\0]/.test(String(answer.headers['x-a'])), label).toBe(true);
      }
      if (plane === 'builtin') expect(answer instanceof Error ? answer.message : answer.status).toBe(502);
      await stillServing();
    });

    test('Transfer-Encoding with a Content-Length is decoded as chunked and the client connection stays in sync', async () => {
      await rawRoute('te-cl', (socket, head) => {
        const body = head.includes('/te-cl/second') ? '6\r\nsecond\r\n0\r\n\r\n' : '5\r\nfirst\r\n0\r\n\r\n';
        socket.write(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n${body}`);
      });
      await routed('/te-cl/warm');
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const first = await request(proxy.httpUrl, '/te-cl/first', { agent });
      const second = await request(proxy.httpUrl, '/te-cl/second', { agent });
      agent.destroy();
      expect([first.status, first.text()]).toEqual([200, 'first']);
      expect([second.status, second.text()]).toEqual([200, 'second']);
      expect(first.headers['content-length']).toBeUndefined();
    });

    test('a POST whose pooled connection closes before the answer reaches the backend once', async () => {
      const backend = await rawRoute('post-once', (socket, head) => {
        if (head.startsWith('POST')) socket.destroy(); // received, then the connection drops
        else socket.write(okResponse('warm'));
      });
      await routed('/post-once/warm');
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      expect((await request(proxy.httpUrl, '/post-once/warm', { agent })).status).toBe(200);
      const posted = await request(proxy.httpUrl, '/post-once/order', { agent, method: 'POST', body: 'pay 10 EUR' }).catch(() => undefined);
      agent.destroy();
      // A 502, or (HAProxy) the client connection closed: either way not a success, and not a retry.
      expect(posted?.status ?? 502).toBe(502);
      expect(backend.requests.filter((head) => head.startsWith('POST'))).toHaveLength(1);
    });

    test('a slow reader gets the whole download although it takes longer than timeoutServer', async () => {
      const size = 16 * 1024 * 1024;
      await rawRoute('download', (socket, head) => {
        if (!head.includes('/download/big')) {
          socket.write(okResponse('small'));
          return;
        }
        socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`);
        socket.write(Buffer.alloc(size, 120));
      }, { timeoutServer: '1' });
      await routed('/download/warm');
      const received = await new Promise<number>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: proxy.settings.httpPort, path: '/download/big', agent: false }, (res) => {
          let bytes = 0;
          res.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            // Reads in bursts with pauses: the whole transfer takes about 3 s.
            res.pause();
            setTimeout(() => res.resume(), bytes < size / 2 ? 40 : 0);
          });
          res.on('end', () => resolve(bytes));
          res.on('error', reject);
          res.on('aborted', () => reject(new Error(`aborted after ${bytes} bytes`)));
        }).on('error', reject);
      });
      expect(received).toBe(size);
    }, 30_000);

    test('a replica that drops connection attempts costs TIMEOUT_CONNECT, then the request goes to another replica', async () => {
      const port = await freePort();
      const [good, dropped] = await Promise.all([
        startBackend('connect-ok', { address: '127.0.0.2', port }),
        startBackend('connect-dropped', { address: '127.0.0.3', port }),
      ]);
      closers.push(() => good.close(), () => dropped.close());
      const rule = ['INPUT', '-p', 'tcp', '-d', '127.0.0.3', '--dport', String(port), '--syn', '-j', 'DROP'];
      await run('iptables', ['-I', ...rule]);
      closers.push(() => run('iptables', ['-D', ...rule]).then(() => undefined));
      dns.set('tasks.dropsyn', ['127.0.0.2', '127.0.0.3']);
      const reply = await proxy.api('reconfigure', { serviceName: 'dropsyn', servicePath: '/dropsyn', port: String(port), addressMode: 'tasks', timeoutServer: '20' });
      expect(reply.status).toBe(200);
      await eventually(() => request(proxy.httpUrl, '/dropsyn/hello'), (r) => r.status === 200, 15_000);
      for (let i = 0; i < 6; i++) {
        const started = Date.now();
        const answer = await request(proxy.httpUrl, '/dropsyn/hello', { timeoutMs: 15_000 });
        expect(answer.status).toBe(200);
        expect(Date.now() - started).toBeLessThan(4000);
      }
    }, 60_000);

    test('an Upgrade request the backend never answers gets a 504 after timeoutServer; a client that leaves frees the backend connection', async () => {
      const backend = await rawRoute('silent-ws', (socket, head) => {
        if (!head.toLowerCase().includes('upgrade: websocket')) socket.write(okResponse('plain'));
      }, { timeoutServer: '1' });
      await routed('/silent-ws/plain');
      const upgrade = (path: string) =>
        `GET ${path} HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
      const started = Date.now();
      const answer = await new Promise<string>((resolve) => {
        const socket = net.connect(proxy.settings.httpPort, '127.0.0.1', () => socket.write(upgrade('/silent-ws/a')));
        let text = '';
        socket.on('data', (chunk: Buffer) => {
          text += chunk.toString('latin1');
          if (text.includes('\r\n')) socket.destroy();
        });
        socket.on('close', () => resolve(text));
        socket.on('error', () => undefined);
        socket.setTimeout(10_000, () => socket.destroy());
      });
      expect(answer).toMatch(/^HTTP\/1\.1 504/);
      expect(Date.now() - started).toBeLessThan(5000);

      const before = backend.connections.length;
      const client = net.connect(proxy.settings.httpPort, '127.0.0.1', () => client.write(upgrade('/silent-ws/b')));
      client.on('error', () => undefined);
      await eventually(async () => backend.connections.length, (n) => n > before);
      const upstream = backend.connections.at(-1) as net.Socket;
      const upstreamClosed = new Promise<void>((resolve) => (upstream.destroyed ? resolve() : upstream.once('close', () => resolve())));
      client.destroy();
      await upstreamClosed;
    }, 30_000);

    test('an absolute-form request target is routed by its path', async () => {
      const answer = await new Promise<string>((resolve) => {
        const socket = net.connect(proxy.settings.httpPort, '127.0.0.1', () =>
          socket.write('GET http://abs.test/healthy/hello HTTP/1.1\r\nHost: abs.test\r\nConnection: close\r\n\r\n'),
        );
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
        socket.on('close', () => resolve(text));
      });
      expect(answer).toMatch(/^HTTP\/1\.1 200/);
      expect(answer).toContain('hello, world!');
    });
  });

  describe(`client and server timers: ${plane} plane`, () => {
    const dns = new TestDnsServer();
    let proxy: TestProxy;
    let slow: Backend;

    beforeAll(async () => {
      const dnsAddress = await dns.start();
      proxy = await startTestProxy({ plane, dnsServer: dnsAddress, env: { TIMEOUT_CLIENT: '1' } });
      slow = await startBackend('slow', { handler: (_req, res) => setTimeout(() => res.end('late but fine'), 2500) });
      dns.set('slow', ['127.0.0.1']);
      expect((await proxy.api('reconfigure', { serviceName: 'slow', servicePath: '/slow', port: String(slow.port), timeoutServer: '10' })).status).toBe(200);
    });

    afterAll(async () => {
      await proxy?.stop();
      await slow?.close();
      await dns.stop();
    });

    test('TIMEOUT_CLIENT does not cut a request that waits on a slow backend', async () => {
      const answer = await eventually(() => request(proxy.httpUrl, '/slow/x'), (r) => r.status !== 503, 10_000);
      expect([answer.status, answer.text()]).toEqual([200, 'late but fine']);
    }, 30_000);
  });
}
