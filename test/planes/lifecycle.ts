/**
 * Behaviour every data plane owes its operators, run on each plane: route changes under
 * continuous load fail no request, and a restart restores every acknowledged route.
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { PlaneKind } from '../../src/planes/plane.js';
import { startBackend } from '../support/backends.js';
import type { Backend, BackendReply } from '../support/backends.js';
import { TestDnsServer } from '../support/dns-server.js';
import { eventually, request } from '../support/http-client.js';
import { startTestProxy, tempDir, testSettings } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

const run = promisify(execFile);

export interface WrkResult {
  readonly requests: number;
  readonly non2xx: number;
  readonly socketErrors: number;
  readonly output: string;
}

export async function wrk(url: string, seconds: number, connections = 20): Promise<WrkResult> {
  const { stdout } = await run('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, url], { timeout: (seconds + 30) * 1000 });
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? NaN);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const socketErrors = errors === null ? 0 : errors.slice(1).reduce((sum, n) => sum + Number(n), 0);
  return { requests, non2xx, socketErrors, output: stdout };
}

const SLOW_HEADER_LIMIT = { TIMEOUT_HTTP_REQUEST: '2', STATS_USER: 'ops', STATS_PASS: 'stats-secret', FORWARDED_HEADER: 'true' };

export function defineLifecycleSuite(plane: PlaneKind): void {
  describe(`lifecycle: ${plane} plane`, () => {
    const dns = new TestDnsServer();
    let dnsAddress: string;
    let backend: Backend;
    let proxy: TestProxy;
    const stateDirPromise = tempDir(`lifecycle-${plane}`);

    beforeAll(async () => {
      dnsAddress = await dns.start();
      backend = await startBackend('go-demo');
      dns.set('go-demo', ['127.0.0.1']);
      proxy = await startTestProxy({ plane, dnsServer: dnsAddress, stateDir: await stateDirPromise, env: SLOW_HEADER_LIMIT });
      const reply = await proxy.api('reconfigure', { serviceName: 'go-demo', servicePath: '/demo', port: String(backend.port) });
      expect(reply.status).toBe(200);
      await eventually(() => request(proxy.httpUrl, '/demo/hello'), (r) => r.status === 200);
    });

    afterAll(async () => {
      await proxy?.stop();
      await backend?.close();
      await dns.stop();
    });

    test('route changes under continuous load fail no request', async () => {
      const load = wrk(`${proxy.httpUrl}/demo/hello`, 6);
      await new Promise((resolve) => setTimeout(resolve, 500));
      for (let i = 0; i < 8; i++) {
        dns.set(`extra-${i}`, ['127.0.0.1']);
        // New services need new HAProxy backends: each of these is a reload on that plane.
        const reply = await proxy.api('reconfigure', { serviceName: `extra-${i}`, servicePath: `/extra/${i}`, port: String(backend.port) });
        expect(reply.status).toBe(200);
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      const result = await load;
      expect(result.requests, result.output).toBeGreaterThan(1000);
      expect(result.non2xx, result.output).toBe(0);
      expect(result.socketErrors, result.output).toBe(0);
      expect((await request(proxy.httpUrl, '/extra/7/hello')).status).toBe(200);
    }, 60_000);

    test('a slow-header (slowloris) client is cut off while normal clients are served', async () => {
      const started = Date.now();
      const socket = net.connect(proxy.settings.httpPort, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.resume(); // read the server's answer, or its closing is never seen
      socket.write('GET /demo/hello HTTP/1.1\r\nHost: slow.test\r\n');
      const drip = setInterval(() => socket.write('X-Slow: 1\r\n'), 200);
      const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now() - started)));
      for (let i = 0; i < 5; i++) {
        expect((await request(proxy.httpUrl, '/demo/hello')).status).toBe(200);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const closedAfterMs = await closed;
      clearInterval(drip);
      expect(closedAfterMs).toBeGreaterThan(1500);
      expect(closedAfterMs).toBeLessThan(4500);
    });

    test('the statistics page (STATS_USER/STATS_PASS) needs its credentials', async () => {
      expect((await request(proxy.httpUrl, '/admin?stats')).status).toBe(401);
      const wrong = `Basic ${Buffer.from('ops:wrong').toString('base64')}`;
      expect((await request(proxy.httpUrl, '/admin?stats', { headers: { authorization: wrong } })).status).toBe(401);
      const right = `Basic ${Buffer.from('ops:stats-secret').toString('base64')}`;
      const page = await request(proxy.httpUrl, '/admin?stats', { headers: { authorization: right } });
      expect(page.status).toBe(200);
      // The HAProxy page names HAProxy's backends: a service added at run time has a spare one (/config says which).
      const config = (await proxy.api('config')).text;
      const backend = plane === 'haproxy' ? (/^backend be_go-demo_0 \(HAProxy backend (fp_spare_\d+)\)$/m.exec(config)?.[1] ?? 'be_go-demo_0') : 'go-demo';
      expect(page.text()).toContain(backend);
    });

    test('FORWARDED_HEADER=true adds an RFC 7239 Forwarded element for this hop', async () => {
      const response = await request(proxy.httpUrl, '/demo/echo', { headers: { forwarded: 'for=192.0.2.1;proto=https' } });
      expect(response.json<BackendReply>().headers.forwarded).toBe('for=192.0.2.1;proto=https, for=127.0.0.1;proto=http');
    });

    test('/reload re-applies the table and routing carries on', async () => {
      expect((await proxy.api('reload')).status).toBe(200);
      expect((await eventually(() => request(proxy.httpUrl, '/demo/hello'), (r) => r.status === 200)).status).toBe(200);
    });

    test('a restart restores every acknowledged route', async () => {
      const before = (await proxy.api('config', { type: 'json' })).body as Record<string, unknown>;
      expect(Object.keys(before)).toHaveLength(9);
      await proxy.stop();
      const settings = await testSettings({ plane, dnsServer: dnsAddress, stateDir: await stateDirPromise, env: SLOW_HEADER_LIMIT });
      proxy = await startTestProxy({ plane, dnsServer: dnsAddress }, settings);
      expect((await proxy.api('config', { type: 'json' })).body).toEqual(before);
      const response = await eventually(() => request(proxy.httpUrl, '/extra/3/hello'), (r) => r.status === 200);
      expect(response.text()).toBe('hello, world!\n');
    });

    test('stopping finishes the requests in flight', async () => {
      const slow = await startBackend('slow-stop', { handler: (_req, res) => setTimeout(() => res.end('finished'), 600) });
      dns.set('slow-stop', ['127.0.0.1']);
      expect((await proxy.api('reconfigure', { serviceName: 'slow-stop', servicePath: '/slow-stop', port: String(slow.port) })).status).toBe(200);
      await eventually(() => request(proxy.httpUrl, '/slow-stop'), (r) => r.status === 200);
      const inFlight = request(proxy.httpUrl, '/slow-stop');
      await new Promise((resolve) => setTimeout(resolve, 150));
      await proxy.stop();
      const answer = await inFlight;
      expect(answer.status).toBe(200);
      expect(answer.text()).toBe('finished');
      await slow.close();
    });
  });
}
