/**
 * Does the HAProxy plane cost anything over a hand-written configuration, and does routing
 * slow down with the number of services? Measured side by side in one run, one HAProxy thread
 * each, wrk on the other core, nginx as the backend:
 *   backend directly | hand-written 1-route HAProxy | Flow Proxy 1 route | Flow Proxy N routes
 *
 *   npx vite-node bench/haproxy-routes.ts -- [--routes 10000] [--seconds 10] [--rounds 3] [--connections 50]
 */
import { startFlowProxy } from '../src/app.js';
import type { FlowProxy } from '../src/app.js';
import { createLogger } from '../src/log.js';
import type { RouteTableSnapshot, ServiceEntry } from '../src/routes/model.js';
import { parseServiceParams } from '../src/routes/params.js';
import { TableStore } from '../src/table/store.js';
import { TestDnsServer } from '../test/support/dns-server.js';
import { testSettings } from '../test/support/proxy.js';
import { compare, ensureInstalled, option, startHandWrittenHaproxy, startNginx, waitForPort } from './support.js';

const routes = option('routes', 10_000);
const seconds = option('seconds', 10);
const rounds = option('rounds', 3);
const connections = option('connections', 50);

async function flowProxyWith(count: number, dnsServer: string, backendPort: number): Promise<FlowProxy> {
  const settings = await testSettings({ plane: 'haproxy', dnsServer, extraArgs: ['--haproxy-threads', '1', '--log-level', 'error'] });
  const services = new Map<string, ServiceEntry>();
  for (let i = 0; i < count; i++) {
    const parsed = parseServiceParams({ serviceName: `svc-${i}`, servicePath: `/svc-${i}`, port: String(backendPort) });
    if (!parsed.ok) throw new Error(parsed.error.message);
    services.set(parsed.service.name, { service: parsed.service, params: parsed.params, source: 'api' });
  }
  const snapshot: RouteTableSnapshot = { version: 1, services };
  await new TableStore(settings.stateDir).save(snapshot, []); // a store never loaded writes the whole table
  const started = Date.now();
  const proxy = await startFlowProxy(settings, createLogger(settings.logLevel));
  console.error(`Flow Proxy with ${count} routes started in ${Date.now() - started} ms`);
  await waitForPort(settings.httpPort, `/svc-${count - 1}/hello`);
  return proxy;
}

async function main(): Promise<void> {
  ensureInstalled({ nginx: 'nginx', wrk: 'wrk', haproxy: 'haproxy' });
  const dns = new TestDnsServer();
  const dnsServer = await dns.start();
  for (let i = 0; i < routes; i++) dns.set(`svc-${i}`, ['127.0.0.1']);
  const nginx = await startNginx();
  const hand = await startHandWrittenHaproxy(nginx.port, 1);
  const one = await flowProxyWith(1, dnsServer, nginx.port);
  const many = await flowProxyWith(routes, dnsServer, nginx.port);
  // Wait until HAProxy has resolved the measured routes' backends.
  for (const [proxy, path] of [[one, '/svc-0/hello'], [many, `/svc-${routes - 1}/hello`]] as const) {
    const url = `http://127.0.0.1:${proxy.settings.httpPort}${path}`;
    for (let i = 0; i < 100 && (await fetch(url)).status !== 200; i++) await new Promise((r) => setTimeout(r, 200));
  }
  try {
    await compare(
      [
        { name: 'nginx backend directly', url: `http://127.0.0.1:${nginx.port}/demo/hello` },
        { name: 'hand-written HAProxy, 1 route', url: `http://127.0.0.1:${hand.port}/demo/hello` },
        { name: 'Flow Proxy (HAProxy plane), 1 route', url: `http://127.0.0.1:${one.settings.httpPort}/svc-0/hello` },
        { name: `Flow Proxy (HAProxy plane), ${routes} routes`, url: `http://127.0.0.1:${many.settings.httpPort}/svc-${routes - 1}/hello` },
      ],
      rounds,
      seconds,
      connections,
    );
    console.log(`\nDNS queries answered during the run: ${dns.queries}`);
  } finally {
    await Promise.all([one.stop(), many.stop(), hand.stop(), nginx.stop()]);
    await dns.stop();
  }
}

void main();
