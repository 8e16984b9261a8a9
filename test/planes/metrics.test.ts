/**
 * Prometheus metrics on both planes: known traffic through the real data plane shows up with
 * its exact counts in /metrics, read with a text-format parser. On HAProxy the counts survive a
 * reload and a spare backend passed to another service.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { PlaneKind } from '../../src/planes/plane.js';
import { startBackend } from '../support/backends.js';
import type { Backend } from '../support/backends.js';
import { eventually, request } from '../support/http-client.js';
import { startTestProxy } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';
import { Scrape } from '../support/prometheus.js';

let backend: Backend;

beforeAll(async () => {
  backend = await startBackend('counted', {
    handler: (req, res) => {
      const failing = req.url?.includes('/fail') === true;
      res.writeHead(failing ? 503 : 200, { 'content-type': 'text/plain' }).end(failing ? 'down\n' : 'ok\n');
    },
  });
});

afterAll(async () => {
  await backend?.close();
});

describe.each<PlaneKind>(['builtin', 'haproxy'])('%s plane', (plane) => {
  let proxy: TestProxy;
  const scrape = async () => {
    const response = await fetch(`${proxy.apiUrl}/metrics`);
    expect(response.headers.get('content-type')).toContain('text/plain');
    return new Scrape(await response.text());
  };
  const send = async (path: string, times: number, status: number) => {
    for (let i = 0; i < times; i++) expect((await request(proxy.httpUrl, path)).status).toBe(status);
  };
  const labels = (service: string, code: string) => ({ service, destination: '0', code });

  beforeAll(async () => {
    proxy = await startTestProxy({ plane, dnsServer: undefined });
  });

  afterAll(async () => {
    await proxy?.stop();
  });

  test('requests by service and status class, bytes, replicas, changes and certificates', async () => {
    const reply = await proxy.api('reconfigure', { serviceName: 'counted', servicePath: '/counted', port: String(backend.port), outboundHostname: '127.0.0.1' });
    expect(reply.status, reply.text).toBe(200);
    await send('/counted/ok', 7, 200);
    await send('/counted/fail', 3, 503);
    await send('/nowhere', 2, 404);
    const after = await scrape();
    expect(after.value('flow_proxy_requests_total', labels('counted', '2xx'))).toBe(7);
    expect(after.value('flow_proxy_requests_total', labels('counted', '5xx'))).toBe(3);
    expect(after.value('flow_proxy_response_bytes_total', { service: 'counted' })).toBeGreaterThan(10 * 'ok\n'.length);
    expect(after.value('flow_proxy_request_bytes_total', { service: 'counted' })).toBeGreaterThan(10 * 'GET /counted/ok HTTP/1.1\r\n'.length);
    expect(after.value('flow_proxy_backend_replicas', { service: 'counted', destination: '0' })).toBe(1);
    expect(after.value('flow_proxy_config_changes_total', { source: 'api', result: 'changed' })).toBe(1);
    expect(after.value('flow_proxy_config_change_duration_seconds_count', { source: 'api' })).toBe(1);
    expect(after.family('flow_proxy_connections_active')?.type).toBe('GAUGE');
    const expiry = after.family('flow_proxy_certificate_expiry_timestamp_seconds')?.metrics ?? [];
    expect(expiry.length).toBe(1);
    expect(Number(expiry[0]?.value) * 1000).toBeGreaterThan(Date.now());
    if (plane === 'builtin') expect(after.value('flow_proxy_request_duration_seconds_count', { service: 'counted' })).toBe(10);
  });

  test("Docker Flow Proxy's /metrics: HAProxy's statistics CSV with the same counts", async () => {
    const reply = await proxy.api('reconfigure', { serviceName: 'csv', servicePath: '/csv', port: String(backend.port), outboundHostname: '127.0.0.1' });
    expect(reply.status, reply.text).toBe(200);
    await send('/csv/ok', 4, 200);
    await send('/csv/fail', 2, 503);
    const response = await fetch(`${proxy.apiUrl}/v1/docker-flow-proxy/metrics`);
    expect(response.headers.get('content-type')).toContain('text/csv');
    const [header, ...rows] = (await response.text()).trim().split('\n');
    const columns = (header ?? '').replace(/^# /, '').split(',');
    expect(columns.slice(0, 10)).toEqual(['pxname', 'svname', 'qcur', 'qmax', 'scur', 'smax', 'slim', 'stot', 'bin', 'bout']);
    const row = rows.map((line) => line.split(',')).find((fields) => fields[0] === `csv-be${backend.port}`);
    expect(row, rows.join('\n')).toBeDefined();
    const field = (name: string) => row?.[columns.indexOf(name)];
    expect([field('svname'), field('req_tot'), field('hrsp_2xx'), field('hrsp_5xx'), field('status'), field('act')]).toEqual(['BACKEND', '6', '4', '2', 'UP', '1']);
    expect(Number(field('bout'))).toBeGreaterThan(6 * 'down\n'.length);
  });

  test('a refused change is counted as refused', async () => {
    const before = (await scrape()).value('flow_proxy_config_changes_total', { source: 'api', result: 'refused' });
    const other = await startBackend('other');
    try {
      expect((await proxy.api('reconfigure', { serviceName: 'thief', servicePath: '/counted', port: String(other.port) })).status).toBe(409);
    } finally {
      await other.close();
    }
    expect((await scrape()).value('flow_proxy_config_changes_total', { source: 'api', result: 'refused' })).toBe(before + 1);
  });

  // HAProxy restarts its own counters with each worker and counts per backend, not per service.
  if (plane !== 'haproxy') return;
  test('counts carry over a reload, and a spare passed to another service counts for that one', async () => {
    const before = await scrape();
    const ok = before.value('flow_proxy_requests_total', labels('counted', '2xx'));
    expect((await proxy.api('reload')).status).toBe(200);
    expect(before.value('flow_proxy_haproxy_reloads_total', { result: 'ok' })).toBe(0);
    await eventually(() => request(proxy.httpUrl, '/counted/ok'), (r) => r.status === 200);
    await send('/counted/ok', 1, 200);
    const reloaded = await scrape();
    expect(reloaded.value('flow_proxy_requests_total', labels('counted', '2xx'))).toBe(ok + 2);
    expect(reloaded.value('flow_proxy_haproxy_reloads_total', { result: 'ok' })).toBe(1);
    expect(reloaded.value('flow_proxy_haproxy_reload_duration_seconds_count')).toBe(1);

    // A new service takes a spare; it is then removed and the spare goes to the next one.
    for (const name of ['first', 'second']) {
      const reply = await proxy.api('reconfigure', { serviceName: name, servicePath: `/${name}`, port: String(backend.port), outboundHostname: '127.0.0.1' });
      expect(reply.status, reply.text).toBe(200);
      await send(`/${name}/ok`, name === 'first' ? 4 : 2, 200);
      expect((await proxy.api('remove', { serviceName: name })).status).toBe(200);
    }
    const moved = await scrape();
    expect(moved.value('flow_proxy_requests_total', labels('first', '2xx'))).toBe(4);
    expect(moved.value('flow_proxy_requests_total', labels('second', '2xx'))).toBe(2);
    expect(moved.value('flow_proxy_requests_total', labels('counted', '2xx'))).toBe(ok + 2);
  });
});
