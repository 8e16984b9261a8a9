/**
 * Where the built-in plane's time goes: runs it under wrk with V8's CPU profiler and prints the
 * functions with the most self time, grouped by where they live.
 *
 *   npm run build && npx vite-node bench/profile-builtin.ts -- [--seconds 8]
 */
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { TestDnsServer } from '../test/support/dns-server.js';
import { freePort, tempDir } from '../test/support/proxy.js';
import { ensureInstalled, option, runWrk, startNginx, waitForPort } from './support.js';

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
  const dns = new TestDnsServer();
  const dnsServer = await dns.start();
  dns.set('go-demo', ['127.0.0.1']);
  const nginx = await startNginx();
  const profileDir = await tempDir('profile');
  const port = await freePort();
  const apiPort = await freePort();
  const child = spawn(
    process.execPath,
    [
      '--cpu-prof', '--cpu-prof-dir', profileDir, 'dist/cli.js', '--data-plane', 'builtin', '--http-port', String(port),
      '--https-port', String(await freePort()), '--api-port', String(apiPort), '--bind-address', '127.0.0.1',
      '--api-address', '127.0.0.1', '--state-dir', await tempDir('profile-state'), '--dns-servers', dnsServer,
      '--log-level', 'error', '--stop-grace', '1',
    ],
    { stdio: 'inherit' },
  );
  await waitForPort(apiPort, '/v1/docker-flow-proxy/ping');
  await fetch(`http://127.0.0.1:${apiPort}/v1/docker-flow-proxy/reconfigure?serviceName=go-demo&servicePath=/demo&port=${nginx.port}`);
  await waitForPort(port, '/demo/hello');
  const figures = await runWrk(`http://127.0.0.1:${port}/demo/hello`, seconds, 50);
  console.log(`built-in plane under profiler: ${figures.rps.toFixed(0)} req/s`);
  await new Promise((resolve) => {
    child.once('exit', resolve);
    child.kill('SIGTERM');
  });
  await nginx.stop();
  await dns.stop();

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

void main();
