/**
 * Balancing over three real replicas (issue 11), the same cases on both planes: each
 * algorithm's distribution, least connections with one slow replica, source hashing from
 * several client addresses, and sticky sessions that move cleanly when their replica stops.
 */
import http from 'node:http';
import { describe, expect, test } from 'vitest';
import type { PlaneKind } from '../../src/planes/plane.js';
import { startBackend } from '../support/backends.js';
import type { Backend, BackendReply, Handler } from '../support/backends.js';
import { eventually, request } from '../support/http-client.js';
import { freePort } from '../support/proxy.js';
import { proxyWithTestDns } from '../support/suite-proxy.js';

const REPLICAS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];

/** A GET from a chosen local address (the proxy sees it as the client); resolves with the replica that answered. */
function fromAddress(port: number, path: string, localAddress: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, localAddress, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve((JSON.parse(text) as BackendReply).backend) : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
  });
}

function tally(names: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const name of names) counts.set(name, (counts.get(name) ?? 0) + 1);
  return counts;
}

export function defineBalancingSuite(plane: PlaneKind): void {
  describe(`balancing: ${plane} plane`, () => {
    const backends: Backend[] = [];
    const suite = proxyWithTestDns(plane, () => Promise.all(backends.map((backend) => backend.close())));
    const { dns } = suite;

    /** Three replicas of service `name` on one port, answering with their address; `handler` overrides one replica's answer. */
    const service = async (name: string, params: Record<string, string>, slow?: { address: string; handler: Handler }) => {
      const port = await freePort();
      const started = await Promise.all(
        REPLICAS.map((address) => startBackend(address, { address, port, ...(slow?.address === address ? { handler: slow.handler } : {}) })),
      );
      backends.push(...started);
      dns.set(`tasks.${name}`, REPLICAS);
      const reply = await suite.proxy.api('reconfigure', { serviceName: name, servicePath: `/${name}`, port: String(port), addressMode: 'tasks', ...params });
      expect(reply.status, reply.text).toBe(200);
      // Every replica is in rotation before counting starts.
      await eventually(() => Promise.all(REPLICAS.map(() => request(suite.proxy.httpUrl, `/${name}/warm`))), (rs) => rs.every((r) => r.status === 200), 15_000);
      return started;
    };

    const replicaOf = async (path: string, headers: Record<string, string> = {}) => {
      const response = await request(suite.proxy.httpUrl, path, { headers });
      expect(response.status).toBe(200);
      return { backend: response.json<BackendReply>().backend, setCookie: response.headers['set-cookie'], cookieSeen: response.json<BackendReply>().headers.cookie };
    };



    test('round-robin (the default) spreads requests evenly over the replicas', async () => {
      await service('rr', {});
      const names: string[] = [];
      for (let i = 0; i < 30; i++) names.push((await replicaOf('/rr/x')).backend);
      const counts = tally(names);
      expect(counts.size).toBe(3);
      for (const count of counts.values()) expect(count).toBeGreaterThanOrEqual(8);
    });

    test('least connections sends fewer requests to a replica that is slow', async () => {
      const slowAddress = '127.0.0.3';
      await service('lc', { balance: 'leastconn' }, { address: slowAddress, handler: (req, res, name) => setTimeout(() => res.end(JSON.stringify({ backend: name, method: req.method, url: req.url, headers: req.headers })), 600) });
      const names: string[] = [];
      // Six clients in parallel, five requests each: a round-robin would give the slow replica 10.
      await Promise.all(
        Array.from({ length: 6 }, async () => {
          for (let i = 0; i < 5; i++) names.push((await replicaOf('/lc/x')).backend);
        }),
      );
      const counts = tally(names);
      expect(names).toHaveLength(30);
      expect(counts.get(slowAddress) ?? 0).toBeLessThanOrEqual(6);
      expect(counts.get(slowAddress) ?? 0).toBeGreaterThanOrEqual(1);
    });

    test('source hashing keeps each client address on one replica and spreads the addresses', async () => {
      await service('src', { balance: 'source' });
      const clients = Array.from({ length: 12 }, (_, i) => `127.0.1.${i + 1}`);
      const chosen = new Set<string>();
      for (const client of clients) {
        const seen = new Set<string>();
        for (let i = 0; i < 4; i++) seen.add(await fromAddress(suite.proxy.settings.httpPort, '/src/x', client));
        expect(seen.size, client).toBe(1);
        chosen.add([...seen][0] as string);
      }
      expect(chosen.size).toBeGreaterThanOrEqual(2);
    });

    test('sticky sessions pin a client to its replica while others spread, and move it without an error when the replica stops', async () => {
      const replicas = await service('sticky', { sessionType: 'sticky-server' });
      const first = await replicaOf('/sticky/x');
      const setCookie = first.setCookie?.[0] ?? '';
      expect(setCookie).toMatch(/^FPSERVER=[^;]+; path=\//);
      const cookie = setCookie.split(';')[0] as string;
      for (let i = 0; i < 10; i++) {
        const pinned = await replicaOf('/sticky/x', { cookie: `${cookie}; theme=dark` });
        expect(pinned.backend).toBe(first.backend);
        // The replica never sees the proxy's cookie, only the application's.
        expect(pinned.cookieSeen).toBe('theme=dark');
      }
      const others = new Set<string>();
      for (let i = 0; i < 9; i++) others.add((await replicaOf('/sticky/x')).backend);
      expect(others.size).toBe(3);

      // The pinned replica stops, then leaves the service's addresses.
      await replicas.find((backend) => backend.name === first.backend)?.close();
      dns.set('tasks.sticky', REPLICAS.filter((address) => address !== first.backend));
      const moved = await eventually(
        () => replicaOf('/sticky/x', { cookie }),
        (answer) => answer.setCookie !== undefined,
        10_000,
      );
      expect(moved.backend).not.toBe(first.backend);
      const newCookie = (moved.setCookie?.[0] ?? '').split(';')[0] as string;
      for (let i = 0; i < 5; i++) expect((await replicaOf('/sticky/x', { cookie: newCookie })).backend).toBe(moved.backend);
    }, 30_000);
  });
}
