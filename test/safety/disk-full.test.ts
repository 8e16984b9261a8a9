/**
 * A full disk never loses state: the change is refused with 503, the routing in place keeps
 * serving, and changes work again once there is room.
 */
import { execFileSync } from 'node:child_process';
import { writeFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startBackend } from '../support/backends.js';
import type { Backend } from '../support/backends.js';
import { TestDnsServer } from '../support/dns-server.js';
import { eventually, request } from '../support/http-client.js';
import { startTestProxy, tempDir } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

const dns = new TestDnsServer();
let stateDir: string;
let dnsAddress: string;
let backend: Backend;
let proxy: TestProxy;

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('this test mounts a small tmpfs and must run as root');
  stateDir = await tempDir('full');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', stateDir]);
  backend = await startBackend('go-demo');
  dns.set('go-demo', ['127.0.0.1']);
  dnsAddress = await dns.start();
  proxy = await startTestProxy({ plane: 'haproxy', dnsServer: dnsAddress, stateDir });
  expect((await proxy.api('reconfigure', { serviceName: 'go-demo', servicePath: '/demo', port: String(backend.port) })).status).toBe(200);
  await eventually(() => request(proxy.httpUrl, '/demo/hello'), (r) => r.status === 200);
});

afterAll(async () => {
  await proxy?.stop();
  await backend?.close();
  await dns.stop();
  if (stateDir !== undefined) execFileSync('umount', [stateDir]);
});

test('with the disk full a change gets 503, routing and stored routes are intact, then it works again', async () => {
  const filler = path.join(stateDir, 'filler');
  await writeFile(filler, Buffer.alloc(2 * 1024 * 1024)).catch(() => undefined); // fills the tmpfs
  // Larger than the free end of the journal's last page, so it cannot be saved anywhere.
  const manyPaths = Array.from({ length: 600 }, (_, i) => `/other-${i}`).join(',');
  const refused = await proxy.api('reconfigure', { serviceName: 'other', servicePath: manyPaths, port: String(backend.port) });
  expect(refused.status, refused.text).toBe(503);
  expect((refused.body as { Message: string }).Message).toContain('previous routing keeps serving');
  expect((await request(proxy.httpUrl, '/demo/hello')).status).toBe(200);
  expect(Object.keys((await proxy.api('config', { type: 'json' })).body as object)).toEqual(['go-demo']);

  await rm(filler);
  const accepted = await proxy.api('reconfigure', { serviceName: 'other', servicePath: '/other', port: String(backend.port) });
  expect(accepted.status).toBe(200);
});

test('with the disk full the proxy still starts, serves the last configuration and says why', async () => {
  const settings = proxy.settings;
  await proxy.stop();
  const filler = path.join(stateDir, 'filler');
  await writeFile(filler, Buffer.alloc(2 * 1024 * 1024)).catch(() => undefined);
  proxy = await startTestProxy({ plane: 'haproxy', dnsServer: dnsAddress, stateDir }, settings);
  expect((await eventually(() => request(proxy.httpUrl, '/demo/hello'), (r) => r.status === 200)).status).toBe(200);
  const status = (await proxy.api('status')).body as { Plane: { lastError?: string } };
  expect(status.Plane.lastError).toContain('could not write the configuration');
  expect((await proxy.api('reconfigure', { serviceName: 'third', servicePath: '/third', port: String(backend.port) })).status).toBe(503);
  await rm(filler);
});
