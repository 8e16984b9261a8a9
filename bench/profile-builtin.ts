/**
 * Where the built-in plane's time goes: runs it under wrk with V8's CPU profiler and prints the
 * functions with the most self time, grouped by where they live. --https measures keep-alive
 * HTTPS requests instead (a P-256 certificate uploaded through the API), --handshakes HTTPS with
 * a full TLS handshake per request (wrk -H 'Connection: close' without session resumption).
 * --perf samples with Linux perf instead, which also sees native code (OpenSSL, libuv, the kernel)
 * where V8's profiler counts only JavaScript.
 *
 *   npm run build && npx vite-node bench/profile-builtin.ts -- [--seconds 8] [--https | --handshakes] [--perf]
 */
import { execFileSync, spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { TestDnsServer } from '../test/support/dns-server.js';
import { freePort, tempDir } from '../test/support/proxy.js';
import { ensureInstalled, option, runWrk, startNginx, waitForPort } from './support.js';
import type { WrkOptions } from './support.js';
import { buildNoResumptionShim, HOST, makeCertificate } from './tls-support.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
}

async function main(): Promise<void> {
  ensureInstalled({ nginx: 'nginx', wrk: 'wrk' });
  const seconds = option('seconds', 8);
  const handshakes = process.argv.includes('--handshakes');
  const tls = handshakes || process.argv.includes('--https');
  if (handshakes) ensureInstalled({ gcc: 'gcc' });
  const usePerf = process.argv.includes('--perf');
  if (usePerf) ensureInstalled({ perf: 'linux-perf' });
  const dns = new TestDnsServer();
  const dnsServer = await dns.start();
  dns.set('go-demo', ['127.0.0.1']);
  const nginx = await startNginx();
  const profileDir = await tempDir('profile');
  const port = await freePort();
  const httpsPort = await freePort();
  const apiPort = await freePort();
  const child = spawn(
    process.execPath,
    [
      ...(usePerf ? ['--perf-basic-prof'] : ['--cpu-prof', '--cpu-prof-dir', profileDir]), 'dist/cli.js', '--data-plane', 'builtin', '--http-port', String(port),
      '--https-port', String(httpsPort), '--api-port', String(apiPort), '--bind-address', '127.0.0.1',
      '--api-address', '127.0.0.1', '--state-dir', await tempDir('profile-state'), '--dns-servers', dnsServer,
      '--log-level', 'error', '--stop-grace', '1',
    ],
    { stdio: 'inherit' },
  );
  await waitForPort(apiPort, '/v1/docker-flow-proxy/ping');
  await fetch(`http://127.0.0.1:${apiPort}/v1/docker-flow-proxy/reconfigure?serviceName=go-demo&servicePath=/demo&port=${nginx.port}`);
  await waitForPort(port, '/demo/hello');
  let url = `http://127.0.0.1:${port}/demo/hello`;
  let wrk: WrkOptions = {};
  if (tls) {
    const cert = await makeCertificate();
    const upload = await fetch(`http://127.0.0.1:${apiPort}/v1/docker-flow-proxy/cert?certName=bench`, { method: 'PUT', body: await readFile(cert.bundleFile, 'utf8') });
    if (upload.status !== 200) throw new Error(`certificate upload failed: ${await upload.text()}`);
    url = `https://${HOST}:${httpsPort}/demo/hello`;
    if (handshakes) wrk = { args: ['-H', 'Connection: close'], env: { ...process.env, LD_PRELOAD: await buildNoResumptionShim() } };
  }
  const perfData = path.join(profileDir, 'perf.data');
  const perf = usePerf
    ? spawn('perf', ['record', '-F', '999', '-g', '-p', String(child.pid), '-o', perfData, '--', 'sleep', String(Math.max(1, seconds - 1))], { stdio: 'ignore' })
    : undefined;
  const figures = await runWrk(url, seconds, 50, wrk);
  if (perf !== undefined && perf.exitCode === null) await new Promise((resolve) => perf.once('exit', resolve));
  console.log(`built-in plane under profiler${tls ? ` (${handshakes ? 'HTTPS, a full handshake per request' : 'HTTPS, keep-alive'})` : ''}: ${figures.rps.toFixed(0)} req/s, errors ${figures.errors}`);
  await new Promise((resolve) => {
    child.once('exit', resolve);
    child.kill('SIGTERM');
  });
  await nginx.stop();
  await dns.stop();
  if (usePerf) return printPerf(perfData);

  const file = (await readdir(profileDir)).find((name) => name.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error('no profile written');
  const profile = JSON.parse(await readFile(path.join(profileDir, file), 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  const byArea = new Map<string, number>();
  for (const id of profile.samples) {
    const frame = byId.get(id)?.callFrame;
    if (frame === undefined) continue;
    const where = frame.url === '' ? '(native/V8)' : frame.url.includes('/dist/') ? 'flow-proxy' : frame.url.startsWith('node:') ? frame.url : 'other';
    const key = `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^.*\/dist\//, 'dist/')}:${frame.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + 1);
    const area = where.startsWith('node:') ? where.split('/').slice(0, 2).join('/') : where;
    byArea.set(area, (byArea.get(area) ?? 0) + 1);
  }
  const total = profile.samples.length;
  const top = (map: Map<string, number>, count: number) =>
    [...map].sort((a, b) => b[1] - a[1]).slice(0, count).map(([key, n]) => `| ${((n / total) * 100).toFixed(1)}% | ${key} |`);
  console.log('\n| self time | area |\n|---:|---|');
  console.log(top(byArea, 12).join('\n'));
  console.log('\n| self time | function |\n|---:|---|');
  console.log(top(self, 15).join('\n'));
}

/** Self time by area and by function, and the inclusive time of the TLS handshake's main steps. */
function printPerf(data: string): void {
  const report = (args: string[]) => execFileSync('perf', ['report', '-i', data, '--stdio', '-g', 'none', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const byArea = new Map<string, number>();
  const bySymbol: string[] = [];
  for (const line of report(['--no-children', '--sort', 'dso,sym']).split('\n')) {
    const m = /^\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$/.exec(line);
    if (m === null) continue;
    const [share, dso, kind, symbol] = [Number(m[1]), m[2] as string, m[3] as string, (m[4] as string).trim()];
    const area =
      kind === 'k' ? 'kernel (system calls, scheduling)'
      : dso.startsWith('[JIT]') || /^(JS:|Builtins_|LazyCompile|Function:|RegExp:)/.test(symbol) || symbol.includes('v8::') ? 'V8: JavaScript, builtins, GC, compiler'
      : dso.startsWith('libc') || /^(malloc|cfree|_int_|__mem|__str|pthread|__pthread|unlink_chunk)/.test(symbol) ? 'libc (malloc, memcpy, locks)'
      : /^(node::|uv_|uv__|llhttp)/.test(symbol) ? 'Node C++, libuv, llhttp'
      : dso === 'node' ? 'OpenSSL (linked into node)'
      : `other: ${dso}`;
    byArea.set(area, (byArea.get(area) ?? 0) + share);
    if (bySymbol.length < 15) bySymbol.push(`| ${share.toFixed(1)}% | ${symbol} |`);
  }
  console.log('\n| self time | area |\n|---:|---|');
  console.log([...byArea].sort((a, b) => b[1] - a[1]).map(([area, share]) => `| ${share.toFixed(1)}% | ${area} |`).join('\n'));
  console.log('\n| self time | function |\n|---:|---|');
  console.log(bySymbol.join('\n'));
  const steps = ['SSL_read', 'tls_construct_server_hello', 'tls_construct_cert_verify', 'tls_construct_new_session_ticket', 'Builtins_JSEntry'];
  console.log('\n| inclusive | function |\n|---:|---|');
  for (const line of report(['--children', '--sort', 'sym']).split('\n')) {
    const m = /^\s+([\d.]+)%\s+[\d.]+%\s+\[.\]\s+(\S+)\s*$/.exec(line);
    if (m !== null && steps.includes(m[2] as string)) console.log(`| ${m[1]}% | ${m[2]} |`);
  }
}

void main();
