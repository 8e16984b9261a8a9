/**
 * A real Pebble (Let's Encrypt's ACME test server) on loopback. Its own HTTPS listener gets a
 * certificate from a throw-away CA made with openssl. HTTP-01 validation resolves each domain
 * with the test's DNS server and connects to that address on `httpPort`.
 */
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { eventually } from './http-client.js';
import { freePort, tempDir } from './proxy.js';

/** Installed by test/support/global-setup.ts. */
const PEBBLE = '/usr/bin/pebble';

export interface PebbleOptions {
  /** host:port of the DNS server Pebble resolves domains with. */
  readonly dnsServer: string;
  /** The port HTTP-01 validation connects to. */
  readonly httpPort: number;
}

export interface Pebble {
  readonly directoryUrl: string;
  /** The CA that signed Pebble's own HTTPS listener (AcmeOptions.caFile). */
  readonly caFile: string;
  /** Pebble's issuing root, PEM; a new one is generated at each start. */
  root(): Promise<string>;
  stop(): Promise<void>;
}

export async function startPebble(options: PebbleOptions): Promise<Pebble> {
  const dir = await tempDir('pebble');
  makeCertificates(dir);
  const caFile = path.join(dir, 'ca.pem');
  const ca = await readFile(caFile);
  const port = await freePort();
  const managementPort = await freePort();
  const config = path.join(dir, 'pebble.json');
  await writeFile(
    config,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${port}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: path.join(dir, 'server.pem'),
        privateKey: path.join(dir, 'server.key'),
        httpPort: options.httpPort,
        tlsPort: await freePort(),
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
      },
    }),
  );
  const child = spawn(PEBBLE, ['-config', config, '-dnsserver', options.dnsServer], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // No artificial validation delays, no spurious badNonce errors, and every order validates
    // again (no reuse of earlier authorizations), so a failing responder fails the order.
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
  });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const directoryUrl = `https://127.0.0.1:${port}/dir`;
  const answered = async () => {
    if (child.exitCode !== null) throw new Error(`pebble exited with code ${child.exitCode}:\n${output}`);
    return (await get(directoryUrl, ca).catch(() => undefined))?.status === 200;
  };
  if (!(await eventually(answered, (up) => up, 15_000))) {
    child.kill('SIGKILL');
    throw new Error(`pebble did not answer on ${directoryUrl} within 15 s:\n${output}`);
  }

  return {
    directoryUrl,
    caFile,
    async root() {
      const response = await get(`https://127.0.0.1:${managementPort}/roots/0`, ca);
      if (response.status !== 200) throw new Error(`pebble's /roots/0 answered ${response.status}`);
      return response.body;
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** ca.pem/ca.key, and server.pem/server.key for 127.0.0.1 and localhost signed by it. */
function makeCertificates(dir: string): void {
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=flow-proxy test pebble listener CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', 'server.pem', '-extfile', 'server.ext');
}

function get(url: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}
