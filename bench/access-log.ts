/**
 * What access logs cost each plane: the same plane with and without `--access-log FILE`, side
 * by side in one run (one process each, the same nginx backend, wrk on one thread).
 *
 *   npm run build && npx vite-node bench/access-log.ts -- [--seconds 10] [--rounds 3] [--connections 50]
 */
import path from 'node:path';
import { TestDnsServer } from '../test/support/dns-server.js';
import { tempDir } from '../test/support/proxy.js';
import { compare, ensureInstalled, option, startFlowProxy, startNginx } from './support.js';

const seconds = option('seconds', 10);
const rounds = option('rounds', 3);
const connections = option('connections', 50);

async function main(): Promise<void> {
  ensureInstalled({ nginx: 'nginx', wrk: 'wrk', haproxy: 'haproxy' });
  const dns = new TestDnsServer();
  const dnsServer = await dns.start();
  dns.set('go-demo', ['127.0.0.1']);
  const nginx = await startNginx();
  const logDir = await tempDir('bench-access-log');
  const proxies = {
    builtin: await startFlowProxy('builtin', dnsServer, nginx.port),
    builtinLogged: await startFlowProxy('builtin', dnsServer, nginx.port, ['--access-log', path.join(logDir, 'builtin.log')]),
    haproxy: await startFlowProxy('haproxy', dnsServer, nginx.port),
    haproxyLogged: await startFlowProxy('haproxy', dnsServer, nginx.port, ['--access-log', path.join(logDir, 'haproxy.log')]),
  };
  const url = (port: number) => `http://127.0.0.1:${port}/demo/hello`;
  try {
    await compare(
      [
        { name: 'built-in plane', url: url(proxies.builtin.port) },
        { name: 'built-in plane, access log', url: url(proxies.builtinLogged.port) },
        { name: 'HAProxy plane (1 thread)', url: url(proxies.haproxy.port) },
        { name: 'HAProxy plane (1 thread), access log', url: url(proxies.haproxyLogged.port) },
      ],
      rounds,
      seconds,
      connections,
    );
  } finally {
    await Promise.all([...Object.values(proxies), nginx].map((p) => p.stop()));
    await dns.stop();
  }
}

void main();
