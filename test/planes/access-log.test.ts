/**
 * Access logs on both planes: one JSON line per request with the documented fields, the same
 * on both planes, and the request-duration histogram counting the routed requests.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { PlaneKind } from '../../src/planes/plane.js';
import { startBackend } from '../support/backends.js';
import type { Backend } from '../support/backends.js';
import { eventually, request } from '../support/http-client.js';
import { startTestProxy, tempDir } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';
import { Scrape } from '../support/prometheus.js';

interface AccessLine {
  time: string;
  client: string;
  method: string;
  host: string;
  path: string;
  service: string | null;
  status: number;
  duration_ms: number;
  bytes_in: number;
  bytes_out: number;
}

let backend: Backend;

beforeAll(async () => {
  backend = await startBackend('logged', {
    handler: (req, res) => {
      const slow = req.url?.includes('/slow') === true;
      setTimeout(() => res.writeHead(req.url?.includes('/fail') === true ? 503 : 200, { 'content-type': 'text/plain' }).end('ok\n'), slow ? 120 : 0);
    },
  });
});

afterAll(async () => {
  await backend?.close();
});

describe.each<PlaneKind>(['builtin', 'haproxy'])('%s plane', (plane) => {
  let proxy: TestProxy;
  let file: string;

  const lines = async (): Promise<AccessLine[]> => {
    const text = await readFile(file, 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as AccessLine);
  };

  beforeAll(async () => {
    file = path.join(await tempDir('access'), 'logs', 'access.log');
    proxy = await startTestProxy({ plane, dnsServer: undefined, extraArgs: ['--access-log', file] });
  });

  afterAll(async () => {
    await proxy?.stop();
  });

  test('one JSON line per request, for routed and unrouted requests', async () => {
    const reply = await proxy.api('reconfigure', { serviceName: 'logged', servicePath: '/logged', port: String(backend.port), outboundHostname: '127.0.0.1' });
    expect(reply.status, reply.text).toBe(200);
    const before = Date.now();
    expect((await request(proxy.httpUrl, '/logged/a?token=secret', { host: 'app.example.com' })).status).toBe(200);
    expect((await request(proxy.httpUrl, '/logged/fail', { host: 'app.example.com', method: 'POST', body: 'x'.repeat(1000) })).status).toBe(503);
    expect((await request(proxy.httpUrl, '/logged/slow', { host: 'app.example.com' })).status).toBe(200);
    expect((await request(proxy.httpUrl, '/nowhere', { host: 'app.example.com' })).status).toBe(404);
    const logged = await eventually(lines, (found) => found.length >= 4);
    expect(logged.map((l) => [l.method, l.path, l.service, l.status])).toEqual([
      ['GET', '/logged/a', 'logged', 200],
      ['POST', '/logged/fail', 'logged', 503],
      ['GET', '/logged/slow', 'logged', 200],
      ['GET', '/nowhere', null, 404],
    ]);
    for (const line of logged) {
      expect(Object.keys(line).sort()).toEqual(['bytes_in', 'bytes_out', 'client', 'duration_ms', 'host', 'method', 'path', 'service', 'status', 'time']);
      expect(line.client).toBe('127.0.0.1');
      expect(line.host).toBe('app.example.com');
      expect(Date.parse(line.time)).toBeGreaterThanOrEqual(before - 1000);
      expect(Date.parse(line.time)).toBeLessThanOrEqual(Date.now());
      expect(line.bytes_out).toBeGreaterThan(0);
    }
    expect(logged[1]?.bytes_in).toBeGreaterThan(1000);
    expect(logged[2]?.duration_ms).toBeGreaterThanOrEqual(100);
    expect(logged[0]?.duration_ms).toBeLessThan(100);
  });

  test('client-sent text is escaped: a hostile Host stays one field of one line', async () => {
    const hostile = 'x","service":"forged","status":200,"a":"\t\\';
    const reply = await proxy.api('reconfigure', { serviceName: 'escaped', servicePath: '/escaped', port: String(backend.port), outboundHostname: '127.0.0.1' });
    expect(reply.status, reply.text).toBe(200);
    const before = (await lines()).length;
    const answered = await request(proxy.httpUrl, '/escaped/x', { host: hostile });
    const logged = await eventually(lines, (found) => found.length > before);
    const last = logged[logged.length - 1];
    expect(last?.path).toBe('/escaped/x');
    expect(last?.status).toBe(answered.status);
    // Whatever the plane thought of that Host, it was logged as the string it was.
    expect(last?.host).toBe(hostile);
    expect(last?.service).not.toBe('forged');
  });

  test('the request-duration histogram counts each routed request', async () => {
    const reply = await proxy.api('reconfigure', { serviceName: 'timed', servicePath: '/timed', port: String(backend.port), outboundHostname: '127.0.0.1' });
    expect(reply.status, reply.text).toBe(200);
    for (let i = 0; i < 5; i++) expect((await request(proxy.httpUrl, '/timed/x')).status).toBe(200);
    expect((await request(proxy.httpUrl, '/timed/slow')).status).toBe(200);
    const scrape = await eventually(
      async () => new Scrape(await (await fetch(`${proxy.apiUrl}/metrics`)).text()),
      (found) => found.value('flow_proxy_request_duration_seconds_count', { service: 'timed' }) >= 6,
    );
    expect(scrape.value('flow_proxy_request_duration_seconds_count', { service: 'timed' })).toBe(6);
    expect(Number(scrape.sample('flow_proxy_request_duration_seconds_sum', { service: 'timed' })?.value)).toBeGreaterThanOrEqual(0.1);
  });
});
