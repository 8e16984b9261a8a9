/**
 * No lost state: reconfigure calls flood the real CLI process, which is killed with SIGKILL
 * mid-flood; after a restart on the same ports every acknowledged route is there, and the
 * HAProxy master the killed process left behind was replaced.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { TestDnsServer } from '../support/dns-server.js';
import { eventually } from '../support/http-client.js';
import { freePort, tempDir } from '../support/proxy.js';

const dns = new TestDnsServer();
let dnsAddress: string;
let child: ChildProcess | undefined;

beforeAll(async () => {
  dnsAddress = await dns.start();
});

afterAll(async () => {
  child?.kill('SIGTERM');
  await dns.stop();
});

let output = '';

function startCli(args: string[]): ChildProcess {
  // vitest sets MODE=test, which is also Docker Flow Proxy's MODE setting.
  const env = { ...process.env, MODE: 'default' };
  const started = spawn(process.execPath, ['dist/cli.js', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  started.stderr?.on('data', (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-3000);
  });
  return started;
}

async function waitForApi(apiUrl: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${apiUrl}/v1/docker-flow-proxy/ping`)).ok) return;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the proxy did not start: ${output}`);
}

test('SIGKILL mid-flood loses no acknowledged route', async () => {
  const stateDir = await tempDir('crash');
  const apiPort = await freePort();
  const args = [
    '--data-plane', 'haproxy', '--http-port', String(await freePort()), '--https-port', String(await freePort()),
    '--api-port', String(apiPort), '--bind-address', '127.0.0.1', '--api-address', '127.0.0.1',
    '--state-dir', stateDir, '--dns-servers', dnsAddress, '--log-level', 'error',
  ];
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  child = startCli(args);
  await waitForApi(apiUrl);

  const acknowledged = new Set<string>();
  let next = 0;
  let killed = false;
  const worker = async () => {
    while (!killed) {
      const name = `svc-${next++}`;
      const query = name.endsWith('3') ? `serviceName=${name}&serviceDomain=${name}.test&port=80` : `serviceName=${name}&servicePath=/${name}&port=80`;
      try {
        const response = await fetch(`${apiUrl}/v1/docker-flow-proxy/reconfigure?${query}`);
        if (response.status === 200) acknowledged.add(name);
      } catch {
        return; // the process is gone
      }
    }
  };
  const workers = Array.from({ length: 6 }, worker);
  // Killed once some changes are acknowledged, while six more are in flight.
  await eventually(async () => acknowledged.size, (count) => count >= 10, 30_000);
  child.kill('SIGKILL');
  killed = true;
  await Promise.all(workers);
  expect(acknowledged.size).toBeGreaterThan(5);

  child = startCli(args);
  await waitForApi(apiUrl);
  const table = (await (await fetch(`${apiUrl}/v1/docker-flow-proxy/config?type=json`)).json()) as Record<string, unknown>;
  const missing = [...acknowledged].filter((name) => table[name] === undefined);
  expect(missing).toEqual([]);
  // The restarted proxy serves on the same port the killed one's HAProxy held.
  const status = (await (await fetch(`${apiUrl}/v1/docker-flow-proxy/status`)).json()) as { Status: string };
  expect(status.Status).toBe('OK');
  const httpPort = args[args.indexOf('--http-port') + 1];
  const routed = await fetch(`http://127.0.0.1:${httpPort}/svc-0/`);
  expect(routed.status).toBe(503); // routed to svc-0, whose name does not resolve here
}, 60_000);
