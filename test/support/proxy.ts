/**
 * Boots a real Flow Proxy (control API + chosen data plane) on free loopback ports, with a
 * fresh state directory, for tests that talk to it over real HTTP.
 */
import { mkdtemp } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startFlowProxy } from '../../src/app.js';
import type { FlowProxy } from '../../src/app.js';
import { createLogger } from '../../src/log.js';
import type { PlaneKind } from '../../src/planes/plane.js';
import { loadSettings } from '../../src/settings/settings.js';
import type { Settings } from '../../src/settings/settings.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `fp-${prefix}-`));
}

export interface TestProxyOptions {
  readonly plane: PlaneKind;
  /** ip:port of the DNS server backends are resolved with; undefined: the system resolver (/etc/hosts, then resolv.conf). */
  readonly dnsServer: string | undefined;
  readonly stateDir?: string;
  readonly extraArgs?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
}

export interface TestProxy {
  readonly proxy: FlowProxy;
  readonly settings: Settings;
  readonly httpUrl: string;
  readonly apiUrl: string;
  /** GET on the control API; `query` is sent as given (values are URL-encoded). */
  api(endpoint: string, query?: Record<string, string>): Promise<{ status: number; body: unknown; text: string }>;
  stop(): Promise<void>;
}

export async function testSettings(options: TestProxyOptions): Promise<Settings> {
  const stateDir = options.stateDir ?? (await tempDir('state'));
  const settings = loadSettings(
    [
      '--data-plane', options.plane,
      '--http-port', String(await freePort()),
      '--https-port', String(await freePort()),
      '--api-port', String(await freePort()),
      '--bind-address', '127.0.0.1',
      '--api-address', '127.0.0.1',
      '--state-dir', stateDir,
      ...(options.dnsServer === undefined ? [] : ['--dns-servers', options.dnsServer]),
      '--stop-grace', '1',
      '--log-level', process.env.TEST_LOG_LEVEL ?? 'silent',
      ...(options.extraArgs ?? []),
    ],
    options.env ?? {},
  );
  if (settings === 'help') throw new Error('unexpected --help');
  return settings;
}

export async function startTestProxy(options: TestProxyOptions, settings?: Settings): Promise<TestProxy> {
  const resolved = settings ?? (await testSettings(options));
  const proxy = await startFlowProxy(resolved, createLogger(resolved.logLevel));
  const local = (address: string) => (address === '0.0.0.0' ? '127.0.0.1' : address);
  const apiUrl = `http://${local(resolved.apiAddress)}:${proxy.apiPort}`;
  return {
    proxy,
    settings: resolved,
    httpUrl: `http://${local(resolved.bindAddress)}:${resolved.httpPort}`,
    apiUrl,
    async api(endpoint, query = {}) {
      const url = `${apiUrl}/v1/docker-flow-proxy/${endpoint}?${new URLSearchParams(query).toString()}`;
      const response = await fetch(url);
      const text = await response.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // text endpoints
      }
      return { status: response.status, body, text };
    },
    stop: () => proxy.stop(),
  };
}
