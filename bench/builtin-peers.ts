/**
 * The built-in plane against the Node proxies users would otherwise pick and against the HAProxy
 * plane, side by side in one run, one process each, the same nginx backend, wrk on one thread:
 *   nginx directly | http-proxy | @fastify/reply-from (undici) | built-in plane | HAProxy plane (1 thread)
 *
 *   npm run build && npx vite-node bench/builtin-peers.ts -- [--seconds 10] [--rounds 3] [--connections 50]
 */
import { TestDnsServer } from '../test/support/dns-server.js';
import { freePort } from '../test/support/proxy.js';
import { compare, ensureInstalled, option, startFlowProxy, startNginx, startProcess } from './support.js';

const seconds = option('seconds', 10);
const rounds = option('rounds', 3);
const connections = option('connections', 50);

async function main(): Promise<void> {
  ensureInstalled({ nginx: 'nginx', wrk: 'wrk', haproxy: 'haproxy' });
  const dns = new TestDnsServer();
  const dnsServer = await dns.start();
  dns.set('go-demo', ['127.0.0.1']);
  const nginx = await startNginx();
  const target = `http://127.0.0.1:${nginx.port}`;
  const httpProxyPort = await freePort();
  const replyFromPort = await freePort();
  const peers = [
    await startProcess(['bench/peers/http-proxy.mjs', String(httpProxyPort), target], httpProxyPort),
    await startProcess(['bench/peers/reply-from.mjs', String(replyFromPort), target], replyFromPort),
  ];
  const builtin = await startFlowProxy('builtin', dnsServer, nginx.port);
  const haproxy = await startFlowProxy('haproxy', dnsServer, nginx.port);
  try {
    await compare(
      [
        { name: 'http-proxy', url: `http://127.0.0.1:${httpProxyPort}/demo/hello` },
        { name: '@fastify/reply-from (undici)', url: `http://127.0.0.1:${replyFromPort}/demo/hello` },
        { name: 'Flow Proxy built-in plane', url: `http://127.0.0.1:${builtin.port}/demo/hello` },
        { name: 'Flow Proxy HAProxy plane (1 thread)', url: `http://127.0.0.1:${haproxy.port}/demo/hello` },
        { name: 'nginx backend directly', url: `${target}/demo/hello` },
      ],
      rounds,
      seconds,
      connections,
    );
  } finally {
    await Promise.all([...peers, builtin, haproxy, nginx].map((p) => p.stop()));
    await dns.stop();
  }
}

void main();
