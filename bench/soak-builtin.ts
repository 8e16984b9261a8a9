/**
 * Soak run of the built-in plane (a benchmark, not a test): mixed traffic for --minutes against
 * healthy and misbehaving backends (malformed heads, resets mid-body, silence past the timeout,
 * conflicting framing, slow trickles), with route changes every few seconds. It samples the proxy
 * process's resident memory every 10 s and reports whether the process stayed alive, what it
 * answered, and whether memory stayed bounded (last third of the run against the first third).
 *
 *   npm run build && npx vite-node bench/soak-builtin.ts -- [--minutes 10] [--connections 20]
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { TestDnsServer } from '../test/support/dns-server.js';
import { freePort, tempDir } from '../test/support/proxy.js';
import { okResponse, startRawBackend } from '../test/support/raw-backend.js';
import { option, waitForPort } from './support.js';

const minutes = option('minutes', 10);
const connections = option('connections', 20);

/** Backend behaviours, each routed as /NAME. */
const BEHAVIOURS: Record<string, (socket: net.Socket) => void> = {
  healthy: (socket) => socket.write(okResponse('hello, world!\n')),
  badheader: (socket) => socket.end('HTTP/1.1 200 OK\r\nBad Name: x\r\ncontent-length: 2\r\n\r\nok'),
  conflicting: (socket) => socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n'),
  resetmidbody: (socket) => {
    socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\npartial');
    setTimeout(() => socket.destroy(), 5);
  },
  silent: () => undefined, // timeoutServer 1 s
  trickle: (socket) => {
    socket.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n');
    let sent = 0;
    const drip = setInterval(() => {
      if (socket.destroyed || sent === 10) return clearInterval(drip);
      socket.write('x');
      sent++;
    }, 50);
  },
  badlength: (socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 1e3\r\n\r\nok'),
};

function get(port: number, path: string, agent: http.Agent): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(String(res.statusCode)));
      res.on('error', () => resolve('response error'));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve('socket error'));
  });
}

async function rss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
}

async function main(): Promise<void> {
  const dns = new TestDnsServer();
  const dnsServer = await dns.start();
  const backends = await Promise.all(Object.entries(BEHAVIOURS).map(async ([name, behave]) => ({ name, backend: await startRawBackend((socket) => behave(socket)) })));
  const port = await freePort();
  const apiPort = await freePort();
  const child = spawn(
    process.execPath,
    ['dist/cli.js', '--data-plane', 'builtin', '--http-port', String(port), '--https-port', String(await freePort()), '--api-port', String(apiPort),
      '--bind-address', '127.0.0.1', '--api-address', '127.0.0.1', '--state-dir', await tempDir('soak'), '--dns-servers', dnsServer, '--log-level', 'error'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = `exited with ${code ?? signal}`));
  await waitForPort(apiPort, '/v1/docker-flow-proxy/ping');
  const api = (query: string) => fetch(`http://127.0.0.1:${apiPort}/v1/docker-flow-proxy/reconfigure?${query}`);
  for (const { name, backend } of backends) {
    dns.set(name, ['127.0.0.1']);
    await api(`serviceName=${name}&servicePath=/${name}&port=${backend.port}&timeoutServer=1`);
  }

  const deadline = Date.now() + minutes * 60_000;
  const outcomes = new Map<string, number>();
  const memory: number[] = [];
  const names = Object.keys(BEHAVIOURS);
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  let churn = 0;
  const sampler = setInterval(() => void rss(child.pid as number).then((mb) => memory.push(mb), () => undefined), 10_000);
  const changer = setInterval(() => void api(`serviceName=churn-${churn++ % 50}&servicePath=/churn/${churn % 50}&port=1`).catch(() => undefined), 2000);
  await Promise.all(
    Array.from({ length: connections }, async (_, worker) => {
      for (let i = worker; Date.now() < deadline && exited === undefined; i++) {
        const name = names[i % names.length] as string;
        const outcome = `${name} ${await get(port, `/${name}/x`, agent)}`;
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
    }),
  );
  clearInterval(sampler);
  clearInterval(changer);
  agent.destroy();
  const healthyAtEnd = await get(port, '/healthy/x', new http.Agent());
  const third = Math.max(1, Math.floor(memory.length / 3));
  const average = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
  const early = average(memory.slice(0, third));
  const late = average(memory.slice(-third));
  console.log(`soak: ${minutes} min, ${connections} connections, process ${exited ?? 'alive'}, healthy route at the end: ${healthyAtEnd}`);
  console.log(`requests: ${[...outcomes.values()].reduce((a, b) => a + b, 0)}`);
  for (const [outcome, count] of [...outcomes].sort()) console.log(`  ${outcome}: ${count}`);
  console.log(`RSS MB every 10 s: ${memory.map((m) => m.toFixed(0)).join(' ')}`);
  console.log(`RSS first third ${early.toFixed(1)} MB, last third ${late.toFixed(1)} MB (${((late / early - 1) * 100).toFixed(1)}%)`);
  child.kill('SIGTERM');
  await Promise.all(backends.map(({ backend }) => backend.close()));
  await dns.stop();
}

void main();
