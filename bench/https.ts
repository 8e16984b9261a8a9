/**
 * HTTPS side by side in one run, one process (or one HAProxy thread, or GOMAXPROCS=1) per proxy,
 * one ECDSA P-256 certificate for all, the same nginx backend, wrk on one thread:
 *   Flow Proxy HAProxy plane (certificate uploaded through the API) | hand-written HAProxy TLS |
 *   the hand-written one with Flow Proxy's per-request rules added
 *   Flow Proxy built-in plane | Node https + http-proxy | Caddy (reverse_proxy, GOMAXPROCS=1)
 * Three loads: keep-alive requests; a new connection per request (wrk -H 'Connection: close'),
 * resuming the TLS session whenever the server allows it; the same with resumption off in wrk
 * (tls-support.ts), so every connection is a full handshake.
 *
 *   npm run build && npx vite-node bench/https.ts -- [--seconds 5] [--rounds 5] [--connections 50]
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import http2 from 'node:http2';
import https from 'node:https';
import { cpus } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { INTERMEDIATE_CIPHERS, TLS13_CIPHERSUITES } from '../src/settings/settings.js';
import { TestDnsServer } from '../test/support/dns-server.js';
import { freePort, tempDir } from '../test/support/proxy.js';
import { ensureInstalled, median, option, runWrk, startNginx, stopper, waitForPort } from './support.js';
import type { Started, WrkFigures, WrkOptions } from './support.js';
import { buildNoResumptionShim, HOST, makeCertificate } from './tls-support.js';
import type { TestCertificate } from './tls-support.js';

const seconds = option('seconds', 5);
const rounds = option('rounds', 5);
const connections = option('connections', 50);

const PATH = '/demo/hello';
const BODY = 'hello, world!\n';

interface Proxy extends Started {
  /** The process whose tree does the proxying (for CPU time). */
  readonly pid: number;
}

/** The proxy once `ready` resolves; stopped again if it does not. */
async function proxyOnceReady(child: ChildProcess, port: number, ready: () => Promise<void>): Promise<Proxy> {
  const proxy = { port, pid: child.pid as number, stop: stopper(child) };
  try {
    await ready();
  } catch (error) {
    await proxy.stop();
    throw error;
  }
  return proxy;
}

function get(port: number, cert: TestCertificate): Promise<{ status: number; body: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const request = https.get(
      { host: '127.0.0.1', port, path: PATH, servername: HOST, headers: { host: `${HOST}:${port}` }, ca: cert.certPem, agent: false },
      (response) => {
        const socket = response.socket as tls.TLSSocket;
        const fingerprint = socket.getPeerCertificate().fingerprint256;
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body, fingerprint }));
      },
    );
    request.on('error', reject);
    request.setTimeout(5000, () => request.destroy(new Error('timeout')));
  });
}

/** Until the route answers over HTTPS with the test certificate (so an upload has reached the plane). */
async function waitForHttps(port: number, cert: TestCertificate): Promise<void> {
  const deadline = Date.now() + 60_000;
  let last = 'nothing yet';
  while (Date.now() < deadline) {
    try {
      const reply = await get(port, cert);
      if (reply.status === 200 && reply.body === BODY && reply.fingerprint === cert.fingerprint) return;
      last = `status ${reply.status}, body ${JSON.stringify(reply.body.slice(0, 80))}, certificate ${reply.fingerprint === cert.fingerprint ? 'ours' : 'another'}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`HTTPS on port ${port} does not answer as expected: ${last}`);
}

async function startFlowProxy(plane: 'builtin' | 'haproxy', dnsServer: string, backendPort: number, cert: TestCertificate): Promise<Proxy> {
  const port = await freePort();
  const apiPort = await freePort();
  const args = [
    'dist/cli.js', '--data-plane', plane, '--http-port', String(await freePort()), '--https-port', String(port),
    '--api-port', String(apiPort), '--bind-address', '127.0.0.1', '--api-address', '127.0.0.1',
    '--state-dir', await tempDir(`bench-https-state-${plane}`), '--dns-servers', dnsServer, '--haproxy-threads', '1',
    '--log-level', 'error', '--stop-grace', '1',
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  return proxyOnceReady(child, port, async () => {
    await waitForPort(apiPort, '/v1/docker-flow-proxy/ping');
    const api = `http://127.0.0.1:${apiPort}/v1/docker-flow-proxy`;
    const upload = await fetch(`${api}/cert?certName=bench`, { method: 'PUT', body: await readFile(cert.bundleFile, 'utf8') });
    if (upload.status !== 200) throw new Error(`certificate upload failed: ${await upload.text()}`);
    const reply = await fetch(`${api}/reconfigure?serviceName=go-demo&servicePath=/demo&port=${backendPort}`);
    if (reply.status !== 200) throw new Error(`reconfigure failed: ${await reply.text()}`);
    await waitForHttps(port, cert);
  });
}

async function startPeer(backendPort: number, cert: TestCertificate): Promise<Proxy> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    ['bench/peers/https-proxy.mjs', String(port), `http://127.0.0.1:${backendPort}`, cert.certFile, cert.keyFile, `${TLS13_CIPHERSUITES}:${INTERMEDIATE_CIPHERS}`],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  return proxyOnceReady(child, port, () => waitForHttps(port, cert));
}

/**
 * Per-request rules of Flow Proxy's HAProxy frontend (src/planes/haproxy/render.ts, one service,
 * no domains): header removals, the ACME answer check, X-Forwarded-*, the path map. Added to the
 * hand-written configuration, they tell what the rules cost apart from TLS.
 */
function flowProxyRules(dir: string): string {
  return `  option forwardfor
  http-request del-header Keep-Alive
  http-request del-header Proxy-Connection
  http-response del-header Keep-Alive
  http-request set-var(txn.fp_acme) path,field(4,/),map(${dir}/acme.map) if { path_beg /.well-known/acme-challenge/ }
  http-request return status 200 content-type text/plain lf-string %[var(txn.fp_acme)] if { var(txn.fp_acme) -m found }
  http-request set-header X-Forwarded-Proto https if { ssl_fc }
  http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
  http-request set-header X-Forwarded-Port %[dst_port]
  http-request set-header X-Forwarded-Host %[req.hdr(host)] if { req.hdr(host) -m found }
  use_backend %[path,map_beg(${dir}/paths.map,no_route)]
backend no_route
  http-request return status 404
`;
}

/** What an operator would write by hand: Flow Proxy's bind options (ALPN, versions, ciphers), one route. */
async function startHandWrittenHaproxy(backendPort: number, cert: TestCertificate, withFlowProxyRules = false): Promise<Proxy> {
  const dir = await tempDir('bench-https-haproxy');
  const port = await freePort();
  const config = path.join(dir, 'haproxy.cfg');
  await writeFile(path.join(dir, 'acme.map'), '');
  await writeFile(path.join(dir, 'paths.map'), '/demo be_demo\n');
  await writeFile(
    config,
    `global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 20s
  timeout server 20s
frontend https
  bind 127.0.0.1:${port} ssl crt ${cert.bundleFile} alpn h2,http/1.1 ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3 ciphers ${INTERMEDIATE_CIPHERS} ciphersuites ${TLS13_CIPHERSUITES}
${withFlowProxyRules ? flowProxyRules(dir) : '  use_backend be_demo if { path_beg /demo }\n'}backend be_demo
  server s1 127.0.0.1:${backendPort}
`,
  );
  const child = spawn('haproxy', ['-f', config], { stdio: 'inherit' });
  return proxyOnceReady(child, port, () => waitForHttps(port, cert));
}

/** Caddy as the reference Go proxy: one core (GOMAXPROCS=1), the certificate file, no ACME, no admin, no HTTP/3. */
async function startCaddy(backendPort: number, cert: TestCertificate): Promise<Proxy> {
  const dir = await tempDir('bench-https-caddy');
  const port = await freePort();
  const config = path.join(dir, 'Caddyfile');
  await writeFile(
    config,
    `{
  admin off
  auto_https off
  storage file_system ${dir}/data
  servers {
    protocols h1 h2
  }
}
https://${HOST}:${port} {
  bind 127.0.0.1
  tls ${cert.certFile} ${cert.keyFile}
  reverse_proxy 127.0.0.1:${backendPort}
}
`,
  );
  const child = spawn('caddy', ['run', '--config', config, '--adapter', 'caddyfile'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, GOMAXPROCS: '1', HOME: dir, XDG_DATA_HOME: `${dir}/data`, XDG_CONFIG_HOME: `${dir}/config` },
  });
  // Caddy logs every start-up step; show its log only if it does not come up.
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
  return proxyOnceReady(child, port, async () => {
    try {
      await waitForHttps(port, cert);
    } catch (error) {
      console.error(log);
      throw error;
    }
  });
}

interface TlsFacts {
  readonly protocol: string;
  readonly cipher: string;
  /** Of the connections after the first, how many resumed, each offering the last session the one before received (as wrk does). */
  readonly resumed: string;
  readonly h2: string;
}

function handshake(port: number, cert: TestCertificate, session: Buffer | undefined, alpn: string[]): Promise<{ socket: tls.TLSSocket; sessions: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const sessions: Buffer[] = [];
    const socket = tls.connect({ host: '127.0.0.1', port, servername: HOST, ca: cert.certPem, session, ALPNProtocols: alpn }, () => resolve({ socket, sessions }));
    socket.on('session', (s: Buffer) => sessions.push(s));
    socket.on('error', reject);
  });
}

/** Negotiated protocol and cipher, whether sessions resume, and whether HTTP/2 answers. */
async function tlsFacts(port: number, cert: TestCertificate): Promise<TlsFacts> {
  let session: Buffer | undefined;
  let resumed = 0;
  let protocol = '';
  let cipher = '';
  const tries = 10;
  for (let i = 0; i <= tries; i++) {
    const { socket, sessions } = await handshake(port, cert, session, ['http/1.1']);
    if (i === 0) [protocol, cipher] = [socket.getProtocol() ?? '', socket.getCipher().standardName];
    else if (socket.isSessionReused()) resumed++;
    socket.setEncoding('utf8');
    socket.write(`GET ${PATH} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nConnection: close\r\n\r\n`);
    await new Promise((resolve) => socket.on('close', resolve).resume());
    session = sessions.at(-1);
  }
  let h2 = 'not offered';
  const { socket } = await handshake(port, cert, undefined, ['h2', 'http/1.1']);
  socket.destroy();
  if (socket.alpnProtocol === 'h2') {
    h2 = await new Promise<string>((resolve) => {
      const client = http2.connect(`https://${HOST}:${port}`, { host: '127.0.0.1', servername: HOST, ca: cert.certPem });
      client.on('error', (error) => resolve(`error: ${error.message}`));
      const request = client.request({ ':path': PATH });
      let body = '';
      let status = 0;
      request.setEncoding('utf8');
      request.on('response', (headers) => (status = Number(headers[':status'])));
      request.on('data', (chunk: string) => (body += chunk));
      request.on('end', () => {
        client.close();
        resolve(status === 200 && body === BODY ? 'answers' : `status ${status}, body ${JSON.stringify(body.slice(0, 60))}`);
      });
      request.on('error', (error) => resolve(`error: ${error.message}`));
    });
  }
  return { protocol, cipher, resumed: `${resumed}/${tries}`, h2 };
}

/** CPU seconds used so far by a process and its descendants (the Flow Proxy HAProxy plane's work is in its haproxy child). */
function cpuSeconds(root: number): number {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const text = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      stats.set(Number(entry), { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // gone meanwhile
    }
  }
  const tree = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, { ppid }] of stats) {
      if (tree.has(ppid) && !tree.has(pid)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  return [...tree].reduce((sum, pid) => sum + (stats.get(pid)?.ticks ?? 0), 0) / 100;
}

interface Contender {
  readonly name: string;
  readonly proxy: Proxy;
}

interface Measure {
  readonly key: string;
  readonly title: string;
  readonly wrk: WrkOptions;
}

interface Sample extends WrkFigures {
  /** Share of one core the proxy (process tree) used during the run. */
  readonly cpu: number;
  /** Share of one core wrk used (1 means the client was the limit). */
  readonly wrkCpu: number;
}

/** CPU seconds all processes of the machine have used (to see other load during a run). */
function machineBusySeconds(): number {
  const [, user, nice, system, , , irq, softirq, steal] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] as string).split(/\s+/).map(Number);
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / 100;
}

/** CPU seconds of this process's finished children (wrk, once run). */
function childrenCpuSeconds(): number {
  const text = readFileSync('/proc/self/stat', 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

async function main(): Promise<void> {
  ensureInstalled({ nginx: 'nginx', wrk: 'wrk', haproxy: 'haproxy', caddy: 'caddy', openssl: 'openssl', gcc: 'gcc' });
  const close = ['-H', 'Connection: close'];
  const measures: readonly Measure[] = [
    { key: 'keep-alive', title: 'keep-alive req/s', wrk: {} },
    { key: 'new connection', title: 'new connections/s, resumed where the server allows', wrk: { args: close } },
    { key: 'full handshake', title: 'new connections/s, full handshakes only', wrk: { args: close, env: { ...process.env, LD_PRELOAD: await buildNoResumptionShim() } } },
  ];
  const cert = await makeCertificate();
  const dns = new TestDnsServer();
  const dnsServer = await dns.start();
  dns.set('go-demo', ['127.0.0.1']);
  const nginx = await startNginx();
  const contenders: Contender[] = [];
  try {
    contenders.push({ name: 'Flow Proxy HAProxy plane (1 thread)', proxy: await startFlowProxy('haproxy', dnsServer, nginx.port, cert) });
    contenders.push({ name: 'hand-written HAProxy TLS (1 thread)', proxy: await startHandWrittenHaproxy(nginx.port, cert) });
    contenders.push({ name: "hand-written + Flow Proxy's request rules", proxy: await startHandWrittenHaproxy(nginx.port, cert, true) });
    contenders.push({ name: 'Flow Proxy built-in plane', proxy: await startFlowProxy('builtin', dnsServer, nginx.port, cert) });
    contenders.push({ name: 'Node https + http-proxy', proxy: await startPeer(nginx.port, cert) });
    contenders.push({ name: 'Caddy 2.6 (GOMAXPROCS=1)', proxy: await startCaddy(nginx.port, cert) });
    console.log('| target | TLS | cipher | resumed (wrk pattern) | HTTP/2 by ALPN |\n|---|---|---|---:|---|');
    for (const { name, proxy } of contenders) {
      const facts = await tlsFacts(proxy.port, cert);
      console.log(`| ${name} | ${facts.protocol} | ${facts.cipher} | ${facts.resumed} | ${facts.h2} |`);
    }
    console.error(`load average at start: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
    const url = (proxy: Proxy) => `https://${HOST}:${proxy.port}${PATH}`;
    const results = new Map<string, Sample[]>();
    for (const { name, proxy } of contenders) {
      for (const measure of measures) {
        results.set(`${name}/${measure.key}`, []);
        await runWrk(url(proxy), 2, connections, measure.wrk); // warm-up
      }
    }
    for (let round = 1; round <= rounds; round++) {
      // Every other round in reverse order, so a drift in machine load favours no one.
      const order = round % 2 === 1 ? contenders : [...contenders].reverse();
      for (const measure of measures) {
        for (const { name, proxy } of order) {
          const [cpuBefore, wrkBefore, machineBefore, started] = [cpuSeconds(proxy.pid), childrenCpuSeconds(), machineBusySeconds(), Date.now()];
          const figures = await runWrk(url(proxy), seconds, connections, measure.wrk);
          const elapsed = (Date.now() - started) / 1000;
          const cpu = (cpuSeconds(proxy.pid) - cpuBefore) / elapsed;
          const wrkCpu = (childrenCpuSeconds() - wrkBefore) / elapsed;
          const machine = (machineBusySeconds() - machineBefore) / elapsed;
          results.get(`${name}/${measure.key}`)?.push({ ...figures, cpu, wrkCpu });
          console.error(
            `round ${round} ${measure.key} ${name}: ${figures.rps.toFixed(0)}/s, p99 ${figures.p99ms.toFixed(2)} ms, errors ${figures.errors}, CPU proxy ${(cpu * 100).toFixed(0)}% wrk ${(wrkCpu * 100).toFixed(0)}% whole machine ${(machine * 100).toFixed(0)}% of ${cpus().length * 100}%`,
          );
        }
      }
    }
    console.error(`load average at end: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
    const med = (name: string, key: string, pick: (s: Sample) => number) => median((results.get(`${name}/${key}`) ?? []).map(pick));
    const errors = (name: string) => measures.reduce((sum, m) => sum + (results.get(`${name}/${m.key}`) ?? []).reduce((s, f) => s + f.errors, 0), 0);
    console.log(`\nMedians of ${rounds} rounds of ${seconds} s, wrk -t1 -c${connections}; errors: socket errors and non-2xx responses, all runs.`);
    console.log(`\n| target | ${measures.map((m) => m.title).join(' | ')} | errors |`);
    console.log(`|---|${measures.map(() => '---:|').join('')}---:|`);
    for (const { name } of contenders) {
      console.log(`| ${name} | ${measures.map((m) => med(name, m.key, (s) => s.rps).toFixed(0)).join(' | ')} | ${errors(name)} |`);
    }
    // Where wrk is the limit (full handshakes cost the client more than the server), compare work per proxy CPU second.
    const perCpu = (name: string, key: string) => med(name, key, (s) => s.rps / s.cpu);
    console.log(`\n| target | ${measures.map((m) => `${m.key}: p99 ms, CPU proxy / wrk, per proxy CPU-second`).join(' | ')} |`);
    console.log(`|---|${measures.map(() => '---:|').join('')}`);
    for (const { name } of contenders) {
      const cells = measures.map((m) => {
        const pct = (pick: (s: Sample) => number) => `${(med(name, m.key, pick) * 100).toFixed(0)}%`;
        return `${med(name, m.key, (s) => s.p99ms).toFixed(2)}, ${pct((s) => s.cpu)} / ${pct((s) => s.wrkCpu)}, ${perCpu(name, m.key).toFixed(0)}`;
      });
      console.log(`| ${name} | ${cells.join(' | ')} |`);
    }
    const names = contenders.map((c) => c.name);
    const pairs: ReadonlyArray<readonly [string, string]> = [
      [names[0] as string, names[1] as string],
      [names[2] as string, names[1] as string],
      [names[0] as string, names[2] as string],
      [names[3] as string, names[4] as string],
      [names[3] as string, names[5] as string],
    ];
    console.log(`\n| ratio of medians: throughput (per proxy CPU-second) | ${measures.map((m) => m.key).join(' | ')} |\n|---|${measures.map(() => '---:|').join('')}`);
    for (const [a, b] of pairs) {
      const ratios = measures.map((m) => {
        const ratio = med(a, m.key, (s) => s.rps) / med(b, m.key, (s) => s.rps);
        return `${(ratio * 100).toFixed(1)}% (${((perCpu(a, m.key) / perCpu(b, m.key)) * 100).toFixed(1)}%)`;
      });
      console.log(`| ${a} / ${b} | ${ratios.join(' | ')} |`);
    }
  } finally {
    await Promise.all([...contenders.map((c) => c.proxy), nginx].map((p) => p.stop()));
    await dns.stop();
  }
}

void main();
