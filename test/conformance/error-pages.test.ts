/**
 * Custom error pages (--error-pages DIR): the proxy's own 403, 404, 502, 503 and 504 answers
 * carry the operator's HTML on both planes; answers from backends are never replaced.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { PlaneKind } from '../../src/planes/plane.js';
import { startBackend } from '../support/backends.js';
import type { Backend } from '../support/backends.js';
import { request } from '../support/http-client.js';
import { freePort, startTestProxy, tempDir } from '../support/proxy.js';
import type { TestProxy } from '../support/proxy.js';

const STATUSES = [403, 404, 502, 503, 504] as const;
const page = (status: number) => `<!doctype html><title>${status}</title><p>Custom page for ${status}, 100% ours.</p>\n`;

let dir: string;
let slow: Backend;
let garbage: net.Server;
let garbagePort: number;

beforeAll(async () => {
  dir = path.join(await tempDir('error-pages'), 'pages');
  await mkdir(dir);
  for (const status of STATUSES) await writeFile(path.join(dir, `${status}.html`), page(status));
  slow = await startBackend('slow', {
    handler: (req, res) => {
      if (req.url?.includes('/own-404') === true) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('the backend own 404\n');
        return;
      }
      setTimeout(() => res.writeHead(200).end('late\n'), 3000);
    },
  });
  garbage = net.createServer((socket) => {
    // The proxy may reset the connection once it has seen the garbage.
    socket.on('error', () => socket.destroy());
    socket.on('data', () => socket.end('NOT HTTP AT ALL\r\n\r\n'));
  });
  await new Promise<void>((resolve) => garbage.listen(0, '127.0.0.1', resolve));
  garbagePort = (garbage.address() as net.AddressInfo).port;
});

afterAll(async () => {
  await slow?.close();
  await new Promise((resolve) => garbage?.close(resolve));
});

describe.each<PlaneKind>(['builtin', 'haproxy'])('%s plane', (plane) => {
  let proxy: TestProxy;

  beforeAll(async () => {
    proxy = await startTestProxy({ plane, dnsServer: undefined, extraArgs: ['--error-pages', dir] });
    const add = async (params: Record<string, string>) => {
      const reply = await proxy.api('reconfigure', { outboundHostname: '127.0.0.1', ...params });
      expect(reply.status, reply.text).toBe(200);
    };
    await add({ serviceName: 'locked', servicePath: '/locked', port: String(slow.port), deniedMethods: 'DELETE' });
    await add({ serviceName: 'slow', servicePath: '/slow', port: String(slow.port), timeoutServer: '1' });
    await add({ serviceName: 'closed', servicePath: '/closed', port: String(await freePort()) });
    await add({ serviceName: 'garbage', servicePath: '/garbage', port: String(garbagePort) });
  });

  afterAll(async () => {
    await proxy?.stop();
  });

  test.each<[number, string, string]>([
    [404, 'GET', '/nowhere'],
    [403, 'DELETE', '/locked/x'],
    [503, 'GET', '/closed/x'],
    [504, 'GET', '/slow/x'],
    [502, 'GET', '/garbage/x'],
  ])('%i carries the operator page', async (status, method, url) => {
    const response = await request(proxy.httpUrl, url, { method });
    expect(response.status).toBe(status);
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(response.text()).toBe(page(status));
  });

  test("a backend's own error is passed through unchanged", async () => {
    const response = await request(proxy.httpUrl, '/locked/own-404');
    expect(response.status).toBe(404);
    expect(response.text()).toBe('the backend own 404\n');
  });
});

test('a directory with none of the pages is refused at start-up', async () => {
  const empty = await tempDir('no-pages');
  await expect(startTestProxy({ plane: 'builtin', dnsServer: undefined, extraArgs: ['--error-pages', empty] })).rejects.toThrow(/holds none of 403.html/);
});
