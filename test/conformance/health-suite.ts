/**
 * Health of replicas (issue 11), the same cases on both planes with real servers: an active
 * HTTP check takes a failing replica out and brings it back, a new replica gets requests only
 * once it passes the check, passive ejection takes a replica that hangs out after `fall` failed
 * requests, and a replica that refuses connections costs no failed request at all.
 */
import http from 'node:http';
import { describe, expect, test } from 'vitest';
import type { PlaneKind } from '../../src/planes/plane.js';
import { eventually, request } from '../support/http-client.js';
import { freePort } from '../support/proxy.js';
import { proxyWithTestDns } from '../support/suite-proxy.js';

/** A replica whose health answer and application answer the test switches. */
interface Replica {
  readonly address: string;
  health: 'ok' | 'fail';
  app: 'ok' | 'hang';
  probes: number;
  close(): Promise<void>;
}

async function replica(address: string, port: number): Promise<Replica> {
  const state = { health: 'ok' as 'ok' | 'fail', app: 'ok' as 'ok' | 'hang', probes: 0 };
  const server = http.createServer((req, res) => {
    if (req.url === '/health') {
      state.probes++;
      res.statusCode = state.health === 'ok' ? 200 : 500;
      res.end();
      return;
    }
    if (state.app === 'hang') return;
    res.end(address);
  });
  await new Promise<void>((resolve) => server.listen(port, address, () => resolve()));
  const self: Replica = {
    address,
    get health() {
      return state.health;
    },
    set health(value) {
      state.health = value;
    },
    get app() {
      return state.app;
    },
    set app(value) {
      state.app = value;
    },
    get probes() {
      return state.probes;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return self;
}

export function defineHealthSuite(plane: PlaneKind): void {
  describe(`replica health: ${plane} plane`, () => {
    const replicas: Replica[] = [];
    const suite = proxyWithTestDns(plane, () => Promise.all(replicas.map((r) => r.close())));
    const { dns } = suite;

    const service = async (name: string, addresses: readonly string[], params: Record<string, string>) => {
      const port = await freePort();
      const started = await Promise.all(addresses.map((address) => replica(address, port)));
      replicas.push(...started);
      dns.set(`tasks.${name}`, [...addresses]);
      const reply = await suite.proxy.api('reconfigure', { serviceName: name, servicePath: `/${name}`, port: String(port), addressMode: 'tasks', timeoutServer: '1', ...params });
      expect(reply.status, reply.text).toBe(200);
      return { port, replicas: started };
    };

    /** `count` requests in a row; the replica of each, or its status when it failed. */
    const answers = async (path: string, count: number) => {
      const seen: string[] = [];
      for (let i = 0; i < count; i++) {
        const response = await request(suite.proxy.httpUrl, path, { timeoutMs: 5000 });
        seen.push(response.status === 200 ? response.text() : String(response.status));
      }
      return seen;
    };



    test('an active HTTP check takes a failing replica out and brings it back; a new replica gets requests only once it passes', async () => {
      const { port, replicas: [a, b, c] } = await service('active', ['127.0.0.1', '127.0.0.2', '127.0.0.3'], { healthCheckPath: '/health', healthCheckInterval: '1', healthCheckRise: '2', healthCheckFall: '2' });
      const all = (seen: string[]) => new Set(seen).size === 3 && seen.every((s) => s.startsWith('127.'));
      await eventually(() => answers('/active/x', 15), all, 15_000);

      (c as Replica).health = 'fail';
      const detectedFrom = Date.now();
      await eventually(() => answers('/active/x', 20), (seen) => !seen.includes('127.0.0.3'), 10_000);
      const detection = Date.now() - detectedFrom;
      // Detection takes at most fall intervals (plus one probe in flight).
      expect(detection).toBeLessThan(4000);
      expect(await answers('/active/x', 20)).not.toContain('127.0.0.3');

      (c as Replica).health = 'ok';
      await eventually(() => answers('/active/x', 15), all, 10_000);

      // A new replica that fails its check is probed but gets no request.
      const d = await replica('127.0.0.4', port);
      replicas.push(d);
      d.health = 'fail';
      dns.set('tasks.active', ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4']);
      await eventually(async () => d.probes, (probes) => probes >= 3, 10_000);
      expect(await answers('/active/x', 20)).not.toContain('127.0.0.4');
      d.health = 'ok';
      await eventually(() => answers('/active/x', 20), (seen) => seen.includes('127.0.0.4'), 10_000);
      expect([a, b].every((r) => (r as Replica).probes > 0)).toBe(true);
    }, 60_000);

    test('passive ejection: a replica that hangs costs at most fall failed requests, then none', async () => {
      // Probes every minute: what takes the replica out here is the requests that failed.
      const { replicas: [, , c] } = await service('passive', ['127.0.0.1', '127.0.0.2', '127.0.0.3'], { healthCheckPath: '/health', healthCheckInterval: '60', healthCheckFall: '2' });
      await eventually(() => answers('/passive/x', 12), (seen) => new Set(seen).size === 3, 15_000);
      (c as Replica).app = 'hang';
      const seen = await answers('/passive/x', 30);
      const failed = seen.filter((s) => !s.startsWith('127.'));
      expect(failed.length).toBeGreaterThanOrEqual(1);
      expect(failed.length).toBeLessThanOrEqual(2);
      // Every failure came before the ejection: the last 20 all succeeded, none on the hung replica.
      expect(seen.slice(10).every((s) => s === '127.0.0.1' || s === '127.0.0.2')).toBe(true);
    }, 60_000);

    test('a replica that refuses connections costs no failed request', async () => {
      const { replicas: [, , c] } = await service('refusing', ['127.0.0.1', '127.0.0.2', '127.0.0.3'], { checkTcp: 'true', healthCheckInterval: '1' });
      await eventually(() => answers('/refusing/x', 12), (seen) => new Set(seen).size === 3, 15_000);
      await (c as Replica).close();
      const seen = await answers('/refusing/x', 40);
      expect(seen.every((s) => s === '127.0.0.1' || s === '127.0.0.2')).toBe(true);
    }, 60_000);
  });
}
