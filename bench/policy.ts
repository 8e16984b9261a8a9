/**
 * What per-service policy costs each plane: a plain route against the same route with basic auth
 * (a plain password), a path rewrite, an added request header and a set response header, side by side in one
 * run (one process each, the same nginx backend, wrk on one thread sending the credentials to
 * every target).
 *
 *   npm run build && npx vite-node bench/policy.ts -- [--seconds 10] [--rounds 3] [--connections 50]
 */
import { TestDnsServer } from '../test/support/dns-server.js';
import { compare, ensureInstalled, option, startFlowProxy, startNginx } from './support.js';

const seconds = option('seconds', 10);
const rounds = option('rounds', 3);
const connections = option('connections', 50);

const POLICY = { users: 'bench:secret-pass', reqPathSearchReplace: '^/demo/,/', addReqHeader: 'X-Env bench', setResHeader: 'X-Frame-Options DENY' };
const CREDENTIALS = ['-H', `Authorization: Basic ${Buffer.from('bench:secret-pass').toString('base64')}`];

async function main(): Promise<void> {
  ensureInstalled({ nginx: 'nginx', wrk: 'wrk', haproxy: 'haproxy' });
  const dns = new TestDnsServer();
  const dnsServer = await dns.start();
  dns.set('go-demo', ['127.0.0.1']);
  const nginx = await startNginx();
  const proxies = {
    builtin: await startFlowProxy('builtin', dnsServer, nginx.port),
    builtinPolicy: await startFlowProxy('builtin', dnsServer, nginx.port, [], POLICY),
    haproxy: await startFlowProxy('haproxy', dnsServer, nginx.port),
    haproxyPolicy: await startFlowProxy('haproxy', dnsServer, nginx.port, [], POLICY),
  };
  const target = (name: string, port: number) => ({ name, url: `http://127.0.0.1:${port}/demo/hello`, args: CREDENTIALS });
  try {
    await compare(
      [
        target('built-in plane, plain route', proxies.builtin.port),
        target('built-in plane, auth + rewrite + 2 header rules', proxies.builtinPolicy.port),
        target('HAProxy plane (1 thread), plain route', proxies.haproxy.port),
        target('HAProxy plane (1 thread), auth + rewrite + 2 header rules', proxies.haproxyPolicy.port),
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
