/**
 * The built-in plane against the Node proxies users would otherwise pick and against the HAProxy
 * plane, side by side in one run, one process each, the same nginx backend, wrk on one thread:
 *   nginx directly | http-proxy | @fastify/reply-from (undici) | built-in plane | HAProxy plane (1 thread)
 *
 *   npm run build && npx vite-node bench/builtin-peers.ts -- [--seconds 10] [--rounds 3] [--connections 50]
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { TestDnsServer } from '../test/support/dns-server.js';
import { freePort, tempDir } from '../test/support/proxy.js';
import { compare, ensureInstalled, option, startNginx, waitForPort } from './support.js';
import type { Started } from './support.js';

const seconds = option('seconds', 10);
const rounds = option('rounds', 3);
const connections = option('connections', 50);

async function startProcess(args: string[], port: number, probe = '/'): Promise<Started> {
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForPort(port, probe);
  return {
    port,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

async function startFlowProxy(plane: 'builtin' | 'haproxy', dnsServer: string, backendPort: number): Promise<Started> {
  const port = await freePort();
  const apiPort = await freePort();
  const args = [
    'dist/cli.js', '--data-plane', plane, '--http-port', String(port), '--https-port', String(await freePort()),
    '--api-port', String(apiPort), '--bind-address', '127.0.0.1', '--api-address', '127.0.0.1',
    '--state-dir', await tempDir(`bench-${plane}`), '--dns-servers', dnsServer, '--haproxy-threads', '1',
    '--log-level', 'error', '--stop-grace', '1',
  ];
  const started = await startProcess(args, apiPort, '/v1/docker-flow-proxy/ping');
  const reply = await fetch(`http://127.0.0.1:${apiPort}/v1/docker-flow-proxy/reconfigure?serviceName=go-demo&servicePath=/demo&port=${backendPort}`);
  if (reply.status !== 200) throw new Error(`reconfigure failed: ${await reply.text()}`);
  for (let i = 0; i < 100 && (await fetch(`http://127.0.0.1:${port}/demo/hello`)).status !== 200; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { port, stop: started.stop };
}

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
