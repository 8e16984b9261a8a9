/**
 * Docker Flow Proxy's DFP_SERVICE_* variables: services declared in the environment are routed
 * once the proxy has started, on both planes; a bad declaration stops start-up with a message
 * naming the variable.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { PlaneKind } from '../../src/planes/plane.js';
import { environmentServices } from '../../src/sources/environment/services.js';
import { startBackend } from '../support/backends.js';
import type { Backend, BackendReply } from '../support/backends.js';
import { request } from '../support/http-client.js';
import { startTestProxy, testSettings } from '../support/proxy.js';

let backend: Backend;

beforeAll(async () => {
  backend = await startBackend('from-env');
});

afterAll(async () => {
  await backend?.close();
});

describe.each<PlaneKind>(['builtin', 'haproxy'])('%s plane', (plane) => {
  test('DFP_SERVICE_* and DFP_SERVICE_<n>_* services are served after start-up', async () => {
    const env = {
      DFP_SERVICE_SERVICE_NAME: 'env-one',
      DFP_SERVICE_SERVICE_PATH: '/env-one',
      DFP_SERVICE_PORT: String(backend.port),
      DFP_SERVICE_OUTBOUND_HOSTNAME: '127.0.0.1',
      DFP_SERVICE_1_SERVICE_NAME: 'env-two',
      DFP_SERVICE_1_SERVICE_DOMAIN: 'two.example.com',
      DFP_SERVICE_1_PORT: String(backend.port),
      DFP_SERVICE_1_OUTBOUND_HOSTNAME: '127.0.0.1',
      DFP_SERVICE_1_ADD_REQ_HEADER: 'X-From env',
    };
    const proxy = await startTestProxy({ plane, dnsServer: undefined, env });
    try {
      expect((await request(proxy.httpUrl, '/env-one/x')).json<BackendReply>().backend).toBe('from-env');
      const two = await request(proxy.httpUrl, '/', { host: 'two.example.com' });
      expect(two.status).toBe(200);
      expect(two.json<BackendReply>().headers['x-from']).toBe('env');
      const config = await proxy.api('config', { type: 'json' });
      expect(Object.keys(config.body as object).sort()).toEqual(['env-one', 'env-two']);
    } finally {
      await proxy.stop();
    }
  });
});

test('a refused declaration stops start-up, naming the variable', async () => {
  await expect(testSettings({ plane: 'builtin', dnsServer: undefined, env: { DFP_SERVICE_SERVICE_NAME: 'x', DFP_SERVICE_SERVICE_PATH: '/x', DFP_SERVICE_PORT: '99999' } })).rejects.toThrow(
    /DFP_SERVICE_PORT.*port/,
  );
  expect(() => environmentServices({ DFP_SERVICE_service_path: '/x' })).toThrow(/upper snake case/);
  expect(() => environmentServices({ DFP_SERVICE_2_SERVICE_PATH: '/x', DFP_SERVICE_2_PORT: '80' })).toThrow(/DFP_SERVICE_2_\*.*serviceName is required/);
});
