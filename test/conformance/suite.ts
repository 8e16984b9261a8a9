/**
 * The conformance suite: one set of route tables and requests with expected outcomes, run
 * against each data plane through the real control API. A plane conforms when every case
 * passes; both planes must give the same answers.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import type { PlaneKind } from '../../src/planes/plane.js';
import { startBackend } from '../support/backends.js';
import type { Backend, BackendReply } from '../support/backends.js';
import { TestDnsServer } from '../support/dns-server.js';
import { eventually, request } from '../support/http-client.js';
import { freePort, startTestProxy } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

/** Services added in an order where shorter prefixes come last: precedence must not depend on it. */
const SERVICES: readonly Record<string, string>[] = [
  { serviceName: 'api-v2', servicePath: '/api/v2' },
  { serviceName: 'api', servicePath: '/api' },
  { serviceName: 'root', servicePath: '/' },
  { serviceName: 'multi', servicePath: '/a/,/b' },
  { serviceName: 'dom-api', serviceDomain: 'example.com', servicePath: '/api' },
  { serviceName: 'dom', serviceDomain: 'example.com' },
  { serviceName: 'wild-deep', serviceDomain: '*.deep.example.com', servicePath: '/x' },
  { serviceName: 'wild', serviceDomain: '*.example.com' },
  { serviceName: 'two', servicePath: '/one', 'servicePath.1': '/two' },
];

/** host (undefined: 127.0.0.1:port), path -> backend label, or an HTTP status. */
const ROUTING_CASES: readonly [string | undefined, string, string | number][] = [
  [undefined, '/', 'root'],
  [undefined, '/api', 'api'],
  [undefined, '/api/v1/users', 'api'],
  [undefined, '/apix', 'api'],
  [undefined, '/api/v2', 'api-v2'],
  [undefined, '/api/v2/users?x=/b', 'api-v2'],
  [undefined, '/a/x', 'multi'],
  [undefined, '/a', 'root'],
  [undefined, '/b', 'multi'],
  [undefined, '/one/1', 'two:0'],
  [undefined, '/two/2', 'two:1'],
  ['example.com', '/anything', 'dom'],
  ['EXAMPLE.com:8080', '/', 'dom'],
  ['example.com', '/api/v2/x', 'dom-api'],
  ['foo.example.com', '/', 'wild'],
  ['a.b.example.com', '/q', 'wild'],
  ['z.deep.example.com', '/x/1', 'wild-deep'],
  ['z.deep.example.com', '/y', 'root'],
  ['deep.example.com', '/x', 'wild'],
  ['other.org', '/api/v2', 'api-v2'],
  ['example.com.evil.org', '/api', 'api'],
];

export function defineConformanceSuite(plane: PlaneKind): void {
  describe(`conformance: ${plane} plane`, () => {
    const dns = new TestDnsServer();
    const backends = new Map<string, Backend>();
    let proxy: TestProxy;

    const reconfigure = async (params: Record<string, string>) => {
      const reply = await proxy.api('reconfigure', params);
      expect(reply.status, reply.text).toBe(200);
    };
    const backendOf = async (host: string | undefined, path: string): Promise<string | number> => {
      const response = await request(proxy.httpUrl, path, host === undefined ? {} : { host });
      return response.status === 200 ? response.json<BackendReply>().backend : response.status;
    };

    beforeAll(async () => {
      const dnsAddress = await dns.start();
      proxy = await startTestProxy({ plane, dnsServer: dnsAddress });
      for (const params of SERVICES) {
        const name = params.serviceName as string;
        dns.set(name, ['127.0.0.1']);
        const first = await startBackend(name === 'two' ? 'two:0' : name);
        backends.set(first.name, first);
        const routed: Record<string, string> = { ...params, port: String(first.port) };
        if (params['servicePath.1'] !== undefined) {
          const second = await startBackend('two:1');
          backends.set(second.name, second);
          routed['port.1'] = String(second.port);
        }
        await reconfigure(routed);
      }
      // HAProxy resolves names asynchronously after a reload: wait until every backend answers.
      await eventually(
        () => Promise.all(ROUTING_CASES.map(([host, path]) => backendOf(host, path))),
        (got) => got.every((value) => value !== 503),
      );
    });

    afterAll(async () => {
      await proxy?.stop();
      await Promise.all([...backends.values()].map((b) => b.close()));
      await dns.stop();
    });

    test.each(ROUTING_CASES)('host %s path %s -> %s', async (host, path, expected) => {
      expect(await backendOf(host, path)).toBe(expected);
    });

    test('the backend sees the original Host, path and query, with X-Forwarded-* headers', async () => {
      const response = await request(proxy.httpUrl, '/api/v2/users?page=2', { host: 'shop.test' });
      const reply = response.json<BackendReply>();
      expect(reply.url).toBe('/api/v2/users?page=2');
      expect(reply.headers.host).toBe('shop.test');
      expect(reply.headers['x-forwarded-for']).toBe('127.0.0.1');
      expect(reply.headers['x-forwarded-proto']).toBe('http');
      expect(reply.headers['x-forwarded-host']).toBe('shop.test');
    });

    test('hop-by-hop headers are not forwarded', async () => {
      const response = await request(proxy.httpUrl, '/api', {
        headers: { 'keep-alive': 'timeout=99', 'proxy-connection': 'keep-alive', 'x-end-to-end': 'kept' },
      });
      const reply = response.json<BackendReply>();
      expect(reply.headers['keep-alive']).toBeUndefined();
      expect(reply.headers['proxy-connection']).toBeUndefined();
      expect(reply.headers['x-end-to-end']).toBe('kept');
    });

    test('a service whose name does not resolve answers 503, then 200 once it resolves', async () => {
      const backend = await startBackend('late');
      backends.set('late', backend);
      await reconfigure({ serviceName: 'late', servicePath: '/late', port: String(backend.port) });
      expect(await backendOf(undefined, '/late')).toBe(503);
      dns.set('late', ['127.0.0.1']);
      expect(await eventually(() => backendOf(undefined, '/late'), (v) => v === 'late', 10_000)).toBe('late');
    });

    test('a backend that refuses connections answers 503', async () => {
      dns.set('down', ['127.0.0.1']);
      await reconfigure({ serviceName: 'down', servicePath: '/down', port: String(await freePort()) });
      expect(await eventually(() => backendOf(undefined, '/down'), (v) => v !== 404)).toBe(503);
    });

    test('a backend slower than timeoutServer answers 504', async () => {
      const slow = await startBackend('slow', {
        handler: (_req, res) => {
          setTimeout(() => res.end('too late'), 3000);
        },
      });
      backends.set('slow', slow);
      dns.set('slow', ['127.0.0.1']);
      await reconfigure({ serviceName: 'slow', servicePath: '/slow', port: String(slow.port), timeoutServer: '1' });
      const response = await eventually(() => request(proxy.httpUrl, '/slow'), (r) => r.status !== 503 && r.status !== 404);
      expect(response.status).toBe(504);
    });

    test('large request bodies and chunked responses stream through intact', async () => {
      const sink = await startBackend('sink', {
        handler: (req, res) => {
          const hash = createHash('sha256');
          let length = 0;
          req.on('data', (chunk: Buffer) => {
            hash.update(chunk);
            length += chunk.length;
          });
          req.on('end', () => {
            res.writeHead(200, { 'content-type': 'text/plain' });
            // A chunked response written in several pieces.
            for (let i = 0; i < 50; i++) res.write(`${i.toString().padStart(4, '0')}:${'x'.repeat(1000)}\n`);
            res.end(`${length} ${hash.digest('hex')}\n`);
          });
        },
      });
      backends.set('sink', sink);
      dns.set('sink', ['127.0.0.1']);
      await reconfigure({ serviceName: 'sink', servicePath: '/upload', port: String(sink.port) });
      const body = Buffer.alloc(5 * 1024 * 1024);
      for (let i = 0; i < body.length; i++) body[i] = (i * 31) % 251;
      const response = await eventually(
        () => request(proxy.httpUrl, '/upload', { method: 'POST', body }),
        (r) => r.status === 200,
      );
      const lines = response.text().trimEnd().split('\n');
      expect(lines).toHaveLength(51);
      expect(lines[49]).toBe(`0049:${'x'.repeat(1000)}`);
      expect(lines[50]).toBe(`${body.length} ${createHash('sha256').update(body).digest('hex')}`);
    });

    test('WebSocket upgrades are tunnelled both ways', async () => {
      const server = http.createServer((_req, res) => res.end('not a websocket'));
      const wss = new WebSocketServer({ server });
      wss.on('connection', (socket) => socket.on('message', (data) => socket.send(`echo:${String(data)}`)));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as { port: number }).port;
      dns.set('ws', ['127.0.0.1']);
      await reconfigure({ serviceName: 'ws', servicePath: '/ws', port: String(port) });
      await eventually(() => request(proxy.httpUrl, '/ws'), (r) => r.status === 200);
      const client = new WebSocket(`ws://127.0.0.1:${proxy.settings.httpPort}/ws/chat`);
      const answer = await new Promise<string>((resolve, reject) => {
        client.on('open', () => client.send('hello'));
        client.on('message', (data) => resolve(String(data)));
        client.on('error', reject);
      });
      expect(answer).toBe('echo:hello');
      client.close();
      wss.close();
      server.closeAllConnections();
      server.close();
    });

    test('keep-alive: requests on one client connection reuse one backend connection', async () => {
      const counted = await startBackend('counted');
      let connections = 0;
      counted.server.on('connection', () => connections++);
      backends.set('counted', counted);
      dns.set('counted', ['127.0.0.1']);
      await reconfigure({ serviceName: 'counted', servicePath: '/counted', port: String(counted.port) });
      await eventually(() => backendOf(undefined, '/counted'), (v) => v === 'counted');
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      connections = 0;
      for (let i = 0; i < 5; i++) expect((await request(proxy.httpUrl, '/counted', { agent })).status).toBe(200);
      agent.destroy();
      // At most one: the plane may reuse a pooled connection from an earlier request.
      expect(connections).toBeLessThanOrEqual(1);
    });

    test('addressMode=tasks balances over every task address and follows replicas as they go', async () => {
      const replicas = await Promise.all(['127.0.0.2', '127.0.0.3', '127.0.0.4'].map((address, i) => startBackend(`task-${i}`, { address })));
      const port = replicas[0]?.port ?? 0;
      // Same port on each address, like tasks of one service on an overlay network.
      await Promise.all(replicas.slice(1).map((r) => r.close()));
      const others = await Promise.all(['127.0.0.3', '127.0.0.4'].map((address, i) => startBackend(`task-${i + 1}`, { address, port })));
      const all = [replicas[0] as Backend, ...others];
      all.forEach((b) => backends.set(b.name, b));
      dns.set('tasks.scaled', ['127.0.0.2', '127.0.0.3', '127.0.0.4']);
      await reconfigure({ serviceName: 'scaled', servicePath: '/scaled', port: String(port), addressMode: 'tasks' });
      const seen = async (count: number) => {
        const names = new Set<string | number>();
        for (let i = 0; i < count; i++) names.add(await backendOf(undefined, '/scaled'));
        return names;
      };
      expect([...(await eventually(() => seen(30), (names) => names.size === 3, 10_000))].sort()).toEqual(['task-0', 'task-1', 'task-2']);
      dns.set('tasks.scaled', ['127.0.0.2', '127.0.0.3']);
      await others[1]?.close();
      expect([...(await eventually(() => seen(20), (names) => names.size === 2 && !names.has(503), 15_000))].sort()).toEqual(['task-0', 'task-1']);
    }, 40_000);

    test('removing a service unroutes it; the others keep serving; then no route is 404', async () => {
      expect((await proxy.api('remove', { serviceName: 'root' })).status).toBe(200);
      expect(await eventually(() => backendOf(undefined, '/nothing-here'), (v) => v === 404)).toBe(404);
      expect(await backendOf(undefined, '/api')).toBe('api');
      expect(await backendOf('example.com', '/')).toBe('dom');
      expect(await backendOf('z.deep.example.com', '/y')).toBe(404);
    });
  });
}
