/**
 * With no DNS server given, both planes find backends the way every other program on the host
 * does (getaddrinfo): a name in /etc/hosts is routed. The test adds its own line to /etc/hosts
 * and removes it afterwards.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startBackend } from '../support/backends.js';
import type { Backend, BackendReply } from '../support/backends.js';
import { request } from '../support/http-client.js';
import { startTestProxy } from '../support/proxy.js';
import type { PlaneKind } from '../../src/planes/plane.js';

const HOSTS = '/etc/hosts';
const name = `fp-hosts-${process.pid}`;
const line = `127.0.0.4 ${name} # added by Flow Proxy's test suite\n`;
let backend: Backend;

beforeAll(async () => {
  backend = await startBackend('from-etc-hosts', { address: '127.0.0.4' });
  await writeFile(HOSTS, line, { flag: 'a' });
});

afterAll(async () => {
  const text = await readFile(HOSTS, 'utf8');
  await writeFile(HOSTS, text.split('\n').filter((l) => `${l}\n` !== line).join('\n'));
  await backend?.close();
});

describe.each<PlaneKind>(['builtin', 'haproxy'])('%s plane', (plane) => {
  test('a backend named in /etc/hosts is routed with no DNS server given', async () => {
    const proxy = await startTestProxy({ plane, dnsServer: undefined });
    try {
      const reply = await proxy.api('reconfigure', { serviceName: name, servicePath: '/from-hosts', port: String(backend.port) });
      expect(reply.status, reply.text).toBe(200);
      const response = await request(proxy.httpUrl, '/from-hosts');
      expect(response.status, response.text()).toBe(200);
      expect(response.json<BackendReply>().backend).toBe('from-etc-hosts');
    } finally {
      await proxy.stop();
    }
  });
});
