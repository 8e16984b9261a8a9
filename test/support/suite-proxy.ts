/** Set-up shared by conformance suites that route to replicas named through DNS. */
import { afterAll, beforeAll } from 'vitest';
import type { PlaneKind } from '../../src/planes/plane.js';
import { TestDnsServer } from './dns-server.js';
import { startTestProxy } from './proxy.js';
import type { TestProxy } from './proxy.js';

/**
 * For one describe block: a proxy of `plane` whose service names resolve through its own test
 * DNS server, re-read every second. It starts before the block's tests; after them `cleanup`
 * runs (the block's backends), then the proxy and the DNS server stop.
 */
export function proxyWithTestDns(plane: PlaneKind, cleanup: () => Promise<unknown>): { readonly dns: TestDnsServer; readonly proxy: TestProxy } {
  const dns = new TestDnsServer();
  let proxy: TestProxy | undefined;
  beforeAll(async () => {
    proxy = await startTestProxy({ plane, dnsServer: await dns.start(), extraArgs: ['--resolve-interval', '1'] });
  });
  afterAll(async () => {
    await proxy?.stop();
    await cleanup();
    await dns.stop();
  });
  return {
    dns,
    get proxy(): TestProxy {
      if (proxy === undefined) throw new Error('the proxy starts in beforeAll: use it inside tests');
      return proxy;
    },
  };
}
