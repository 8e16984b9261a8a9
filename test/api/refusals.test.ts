/**
 * Every refused input gets a 4xx with a JSON body naming the parameter, and the routing in
 * place keeps serving, byte for byte the same configuration.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startBackend } from '../support/backends.js';
import type { Backend } from '../support/backends.js';
import { TestDnsServer } from '../support/dns-server.js';
import { eventually, request } from '../support/http-client.js';
import { startTestProxy } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

const dns = new TestDnsServer();
let proxy: TestProxy;
let backend: Backend;
let port: string;
let configBefore: string;

beforeAll(async () => {
  const dnsAddress = await dns.start();
  backend = await startBackend('go-demo');
  port = String(backend.port);
  dns.set('go-demo', ['127.0.0.1']);
  proxy = await startTestProxy({ plane: 'haproxy', dnsServer: dnsAddress });
  expect((await proxy.api('reconfigure', { serviceName: 'go-demo', servicePath: '/demo', port })).status).toBe(200);
  await eventually(() => request(proxy.httpUrl, '/demo/hello'), (r) => r.status === 200);
  configBefore = (await proxy.api('config')).text;
});

afterAll(async () => {
  await proxy?.stop();
  await backend?.close();
  await dns.stop();
});

const INJECTIONS = ['\n', '\r\n', ' ', '"', "'", '#', '%[path]', '\\', '\u0000', '\t', '\u2028', 'é'];

type Case = [description: string, query: Record<string, string>, status: number, mentions: string];

/** Any valid port: these requests are refused before the port matters. */
const PORT = '8080';

const cases = (): Case[] => [
  ['missing serviceName', { servicePath: '/x', port: PORT }, 400, 'serviceName'],
  ['neither servicePath nor serviceDomain (final for the Swarm Listener)', { serviceName: 'x', port: PORT }, 409, 'servicePath'],
  ['missing port', { serviceName: 'x', servicePath: '/x' }, 400, 'port'],
  ['port 0', { serviceName: 'x', servicePath: '/x', port: '0' }, 400, 'port'],
  ['port 70000', { serviceName: 'x', servicePath: '/x', port: '70000' }, 400, 'port'],
  ['port not a number', { serviceName: 'x', servicePath: '/x', port: '80a' }, 400, 'port'],
  ['path without leading slash', { serviceName: 'x', servicePath: 'demo', port: PORT }, 400, 'servicePath'],
  ['empty path list item', { serviceName: 'x', servicePath: '/a,,/b', port: PORT }, 400, 'servicePath'],
  ['bad percent escape', { serviceName: 'x', servicePath: '/a%zz', port: PORT }, 400, 'servicePath'],
  ['path with query', { serviceName: 'x', servicePath: '/a?b=1', port: PORT }, 400, 'servicePath'],
  ['huge path', { serviceName: 'x', servicePath: `/${'a'.repeat(5000)}`, port: PORT }, 400, 'servicePath'],
  ['domain with port', { serviceName: 'x', serviceDomain: 'example.com:80', port: PORT }, 400, 'serviceDomain'],
  ['domain with scheme', { serviceName: 'x', serviceDomain: 'http://example.com', port: PORT }, 400, 'serviceDomain'],
  ['bare wildcard', { serviceName: 'x', serviceDomain: '*', port: PORT }, 400, 'serviceDomain'],
  ['empty label', { serviceName: 'x', serviceDomain: 'a..b', port: PORT }, 400, 'serviceDomain'],
  ['service name with slash', { serviceName: 'a/b', servicePath: '/x', port: PORT }, 400, 'serviceName'],
  ['service name too long', { serviceName: 'a'.repeat(64), servicePath: '/x', port: PORT }, 400, 'serviceName'],
  ['unknown parameter', { serviceName: 'x', servicePath: '/x', port: PORT, servicepath: '/y' }, 400, 'servicepath'],
  ['unsupported Docker Flow Proxy parameter', { serviceName: 'x', servicePath: '/x', port: PORT, verifyClientSsl: 'true' }, 400, 'verifyClientSsl'],
  ['httpsOnly that is not a boolean', { serviceName: 'x', servicePath: '/x', port: PORT, httpsOnly: 'yes' }, 400, 'httpsOnly'],
  ['an unknown redirect code', { serviceName: 'x', servicePath: '/x', port: PORT, httpsOnly: 'true', httpsRedirectCode: '300' }, 400, 'httpsRedirectCode'],
  ['redirectFromDomain without serviceDomain', { serviceName: 'x', servicePath: '/x', port: PORT, redirectFromDomain: 'old.test' }, 400, 'redirectFromDomain'],
  ['letsencrypt for a wildcard', { serviceName: 'x', serviceDomain: '*.x.test', port: PORT, letsencrypt: 'true' }, 400, 'DNS-01'],
  ['sslVerifyNone without httpsPort', { serviceName: 'x', servicePath: '/x', port: PORT, sslVerifyNone: 'true' }, 400, 'httpsPort'],
  ['a serviceCert that cannot be a certificate name', { serviceName: 'x', servicePath: '/x', port: PORT, serviceCert: '../key' }, 400, 'serviceCert'],
  ['unsupported reqMode', { serviceName: 'x', servicePath: '/x', port: PORT, reqMode: 'tcp' }, 400, 'reqMode'],
  ['unsupported pathType', { serviceName: 'x', servicePath: '/x', port: PORT, pathType: 'path_reg' }, 400, 'path_beg'],
  ['index out of range', { serviceName: 'x', servicePath: '/x', port: PORT, 'port.100': PORT }, 400, 'port.100'],
  ['indexed service-level parameter', { serviceName: 'x', servicePath: '/x', port: PORT, 'timeoutServer.1': '5' }, 400, 'timeoutServer'],
  ['indexed destination without port', { serviceName: 'x', servicePath: '/x', port: PORT, 'servicePath.1': '/y' }, 400, 'port.1'],
  ['timeout not a number', { serviceName: 'x', servicePath: '/x', port: PORT, timeoutServer: '5s' }, 400, 'timeoutServer'],
  ['timeout too large', { serviceName: 'x', servicePath: '/x', port: PORT, timeoutServer: '999999' }, 400, 'timeoutServer'],
  ['bad addressMode', { serviceName: 'x', servicePath: '/x', port: PORT, addressMode: 'dnsrr' }, 400, 'addressMode'],
  ['path taken by another service', { serviceName: 'other', servicePath: '/demo', port: PORT }, 409, 'go-demo'],
  ['same route for two destinations', { serviceName: 'x', servicePath: '/x', port: PORT, 'servicePath.1': '/x', 'port.1': PORT }, 400, 'two destinations'],
  ...INJECTIONS.flatMap((bad): Case[] => [
    [`serviceName with ${JSON.stringify(bad)}`, { serviceName: `x${bad}y`, servicePath: '/x', port: PORT }, 400, 'serviceName'],
    [`servicePath with ${JSON.stringify(bad)}`, { serviceName: 'x', servicePath: `/x${bad}y`, port: PORT }, 400, 'servicePath'],
    [`serviceDomain with ${JSON.stringify(bad)}`, { serviceName: 'x', serviceDomain: `x${bad}y.com`, port: PORT }, 400, 'serviceDomain'],
    [`port with ${JSON.stringify(bad)}`, { serviceName: 'x', servicePath: '/x', port: `80${bad}` }, 400, 'port'],
  ]),
];

describe('refused reconfigure requests', () => {
  test.each(cases())('%s -> %d', async (_description, query, status, mentions) => {
    const reply = await proxy.api('reconfigure', query);
    expect(reply.status, reply.text).toBe(status);
    const body = reply.body as { Status: string; Message: string };
    expect(body.Status).toBe('NOK');
    expect(body.Message).toContain(mentions);
  });

  test('a parameter given twice is refused', async () => {
    const response = await fetch(`${proxy.apiUrl}/v1/docker-flow-proxy/reconfigure?serviceName=x&servicePath=/a&servicePath=/b&port=${port}`);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { Message: string }).Message).toContain('2 times');
  });

  test('after every refusal the configuration and the routing are unchanged', async () => {
    expect((await proxy.api('config')).text).toBe(configBefore);
    const response = await request(proxy.httpUrl, '/demo/hello');
    expect(response.status).toBe(200);
    expect(response.text()).toBe('hello, world!\n');
  });
});

describe('other endpoints', () => {
  test('remove needs a valid serviceName', async () => {
    expect((await proxy.api('remove', {})).status).toBe(400);
    expect((await proxy.api('remove', { serviceName: 'a b' })).status).toBe(400);
    expect((await proxy.api('remove', { serviceName: 'go-demo', extra: '1' })).status).toBe(400);
  });

  test('ping answers OK', async () => {
    const reply = await proxy.api('ping');
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ Status: 'OK' });
  });

  test('config shows the HAProxy configuration with its map files, or the table as JSON', async () => {
    const text = (await proxy.api('config')).text;
    expect(text).toContain('frontend http');
    // A service added at run time is served by a spare backend; /config says which.
    const served = /^backend be_go-demo_0(?: \(HAProxy backend (fp_spare_\d+)\))?\n {2}server s\d+ 127\.0\.0\.1:\d+$/m.exec(text);
    expect(served, text.slice(-2000)).not.toBeNull();
    const haproxyBackend = served?.[1] ?? 'be_go-demo_0';
    expect(text).toMatch(new RegExp(`map paths\\.map as served ----\\n/demo ${haproxyBackend}\\n`));
    const json = (await proxy.api('config', { type: 'json' })).body as Record<string, { ServiceDest: { ServicePath: string[] }[] }>;
    expect(Object.keys(json)).toEqual(['go-demo']);
    expect(json['go-demo']?.ServiceDest[0]?.ServicePath).toEqual(['/demo']);
  });

  test('reconfigure answers with the Docker Flow Proxy fields', async () => {
    const reply = await proxy.api('reconfigure', { serviceName: 'go-demo', servicePath: '/demo', port });
    expect(reply.body).toMatchObject({
      Status: 'OK',
      Message: '',
      ServiceName: 'go-demo',
      ServiceDest: [{ Port: port, ServicePath: ['/demo'], ServiceDomain: [] }],
    });
  });

  test('an unknown endpoint is a 404 with a JSON body', async () => {
    const response = await fetch(`${proxy.apiUrl}/v1/docker-flow-proxy/nope`);
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ Status: 'NOK' });
  });
});
