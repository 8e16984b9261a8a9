/**
 * AcmeManager against a real Pebble: HTTP-01 validation reaches a real challenge responder on
 * loopback through a test DNS server. Time moves forward by an offset on the manager's clock.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeManager } from '../../src/tls/acme.js';
import type { AcmeOptions, AcmeStatus, ServedCertificate } from '../../src/tls/acme.js';
import { TestDnsServer } from '../support/dns-server.js';
import { eventually } from '../support/http-client.js';
import { startPebble } from '../support/pebble.js';
import type { Pebble } from '../support/pebble.js';
import { freePort, tempDir } from '../support/proxy.js';

const DAY_MS = 86_400_000;

interface Served extends ServedCertificate {
  readonly bundlePem: string;
  readonly serialNumber: string;
}

/** Stands in for the certificate table. */
class FakeTable {
  readonly served = new Map<string, Served>();
  issuedCount = 0;

  issued = async (name: string, bundlePem: string): Promise<void> => {
    const leaf = new X509Certificate(bundlePem);
    const names = (leaf.subjectAltName ?? '').split(', ').map((entry) => entry.replace(/^DNS:/, ''));
    this.served.set(name, { bundlePem, names, notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo), serialNumber: leaf.serialNumber });
    this.issuedCount++;
  };

  current = (name: string): Served | undefined => this.served.get(name);
}

/** Answers HTTP-01 challenges from what the manager stored; `broken` makes it answer 404. */
class Responder {
  readonly tokens = new Map<string, string>();
  broken = false;
  private readonly server = http.createServer((req, res) => {
    const token = req.url?.match(/^\/\.well-known\/acme-challenge\/([\w-]+)$/)?.[1];
    const answer = token === undefined || this.broken ? undefined : this.tokens.get(token);
    if (answer === undefined) res.writeHead(404).end('no such challenge');
    else res.writeHead(200, { 'content-type': 'text/plain' }).end(answer);
  });

  async start(port: number): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  challenges: AcmeOptions['challenges'] = {
    set: async (token, keyAuthorization) => void this.tokens.set(token, keyAuthorization),
    remove: async (token) => void this.tokens.delete(token),
  };
}

let dns: TestDnsServer;
let pebble: Pebble;
const responder = new Responder();
const managers: AcmeManager[] = [];
let offsetMs = 0;

function startManager(stateDir: string, table: FakeTable, logs: Record<string, unknown>[] = []): AcmeManager {
  const manager = new AcmeManager({
    directoryUrl: pebble.directoryUrl,
    caFile: pebble.caFile,
    email: 'ops@fp.test',
    stateDir,
    renewBeforeDays: 30,
    retry: { initialMs: 300, maxMs: 1000 },
    challenges: responder.challenges,
    issued: table.issued,
    current: table.current,
    log: pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }),
    now: () => new Date(Date.now() + offsetMs),
  });
  managers.push(manager);
  return manager;
}

function statusOf(manager: AcmeManager, key: string): Promise<AcmeStatus | undefined> {
  return Promise.resolve(manager.status().find((status) => status.key === key));
}

async function until(manager: AcmeManager, key: string, check: (status: AcmeStatus) => boolean): Promise<AcmeStatus> {
  const status = await eventually(() => statusOf(manager, key), (value) => value !== undefined && check(value), 20_000);
  if (status === undefined || !check(status)) throw new Error(`${key} did not reach the expected state: ${JSON.stringify(status)}`);
  return status;
}

function pemBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

beforeAll(async () => {
  dns = new TestDnsServer();
  const dnsServer = await dns.start();
  for (const name of ['a.fp.test', 'b.fp.test', 'c.fp.test', 'good.fp.test']) dns.set(name, ['127.0.0.1']);
  const httpPort = await freePort();
  await responder.start(httpPort);
  pebble = await startPebble({ dnsServer, httpPort });
});

afterAll(async () => {
  for (const manager of managers) manager.stop();
  await pebble?.stop();
  await responder.stop();
  await dns?.stop();
});

describe('AcmeManager with Pebble', () => {
  let stateDir: string;
  const table = new FakeTable();
  const firstLogs: Record<string, unknown>[] = [];

  it('obtains a certificate for two names that chains to the issuing root', async () => {
    stateDir = await tempDir('acme');
    const manager = startManager(stateDir, table, firstLogs);
    manager.follow(new Map([['web', ['a.fp.test', 'B.fp.test']]]));
    expect((await statusOf(manager, 'web'))?.state).toBe('pending');

    const status = await until(manager, 'web', (value) => value.state === 'valid');
    expect(status).toMatchObject({ certificate: 'acme-a.fp.test', domains: ['a.fp.test', 'b.fp.test'], lastError: undefined });

    const served = table.served.get('acme-a.fp.test');
    expect(served?.names).toEqual(['a.fp.test', 'b.fp.test']);
    expect(status.notAfter).toEqual(served?.notAfter);
    const [leafPem, intermediatePem] = pemBlocks(served?.bundlePem ?? '');
    const leaf = new X509Certificate(leafPem ?? '');
    const intermediate = new X509Certificate(intermediatePem ?? '');
    const root = new X509Certificate(await pebble.root());
    expect(leaf.checkIssued(intermediate) && leaf.verify(intermediate.publicKey)).toBe(true);
    expect(intermediate.checkIssued(root) && intermediate.verify(root.publicKey)).toBe(true);
    expect(leaf.checkPrivateKey(createPrivateKey(served?.bundlePem ?? ''))).toBe(true);

    expect(responder.tokens.size).toBe(0);
    expect((await stat(path.join(stateDir, 'acme', 'account.key'))).mode & 0o777).toBe(0o600);
  });

  it('reuses the stored account and what is served after a restart', async () => {
    managers.shift()?.stop();
    const accountKey = await readFile(path.join(stateDir, 'acme', 'account.key'), 'utf8');
    const logs: Record<string, unknown>[] = [];
    const manager = startManager(stateDir, table, logs);
    manager.follow(new Map([['web', ['a.fp.test', 'b.fp.test']]]));
    await manager.checkNow();
    expect((await statusOf(manager, 'web'))?.state).toBe('valid');
    expect(table.issuedCount).toBe(1);

    manager.follow(new Map([['web', ['a.fp.test', 'b.fp.test']], ['api', ['c.fp.test']]]));
    await until(manager, 'api', (value) => value.state === 'valid');
    expect(table.served.get('acme-c.fp.test')?.names).toEqual(['c.fp.test']);
    const accountOf = (lines: Record<string, unknown>[]): unknown => lines.find((line) => line.msg === 'ACME account ready')?.account;
    expect(accountOf(logs)).toBeTypeOf('string');
    expect(accountOf(logs)).toBe(accountOf(firstLogs));
    expect(await readFile(path.join(stateDir, 'acme', 'account.key'), 'utf8')).toBe(accountKey);
  });

  it('renews a certificate once it is within renewBeforeDays of expiring', async () => {
    managers.shift()?.stop();
    // As if the served certificates were older: a expires in 40 days, c in 60.
    const age = (name: string, notAfterDays: number): void => {
      const served = table.served.get(name) as Served;
      table.served.set(name, { ...served, notBefore: new Date(Date.now() - 50 * DAY_MS), notAfter: new Date(Date.now() + notAfterDays * DAY_MS) });
    };
    age('acme-a.fp.test', 40);
    age('acme-c.fp.test', 60);
    const manager = startManager(stateDir, table);
    manager.follow(new Map([['web', ['a.fp.test', 'b.fp.test']], ['api', ['c.fp.test']]]));
    await manager.checkNow();
    const waiting = await statusOf(manager, 'web');
    expect(waiting?.state).toBe('valid');
    expect(Math.round(((waiting?.nextAttemptAt?.getTime() ?? 0) - Date.now()) / DAY_MS)).toBe(10);
    expect(table.issuedCount).toBe(2);

    const before = table.served.get('acme-a.fp.test') as Served;
    offsetMs = 11 * DAY_MS;
    await manager.checkNow();
    const after = table.served.get('acme-a.fp.test') as Served;
    expect(after.serialNumber).not.toBe(before.serialNumber);
    expect(await statusOf(manager, 'web')).toMatchObject({ state: 'valid', notAfter: after.notAfter });
    expect(table.issuedCount).toBe(3);

    await manager.checkNow();
    expect(table.issuedCount).toBe(3);
  });

  it('keeps the old certificate while renewal fails, and recovers', async () => {
    const manager = managers[0] as AcmeManager;
    const before = table.served.get('acme-c.fp.test') as Served;
    responder.broken = true;
    offsetMs = 31 * DAY_MS;
    await manager.checkNow();

    const failed = await until(manager, 'api', (value) => value.state === 'failed');
    expect(failed.lastError).toMatch(/404/);
    expect(failed.nextAttemptAt).toBeInstanceOf(Date);
    expect(table.served.get('acme-c.fp.test')).toBe(before);
    expect((await statusOf(manager, 'web'))?.state).toBe('valid');

    responder.broken = false;
    const recovered = await until(manager, 'api', (value) => value.state === 'valid');
    expect(recovered.lastError).toBeUndefined();
    expect(table.served.get('acme-c.fp.test')?.serialNumber).not.toBe(before.serialNumber);
  });

  it('does not let a domain that cannot be validated block another', async () => {
    offsetMs = 0;
    const table = new FakeTable();
    const manager = startManager(await tempDir('acme'), table);
    manager.follow(new Map([['broken', ['unknown.fp.test']], ['good', ['good.fp.test']]]));

    await until(manager, 'good', (value) => value.state === 'valid');
    const broken = await until(manager, 'broken', (value) => value.state === 'failed');
    expect(broken.lastError).toMatch(/unknown\.fp\.test/);
    expect(table.served.has('acme-unknown.fp.test')).toBe(false);

    // Keys asking for the same first domain share its certificate.
    manager.follow(new Map([['good', ['good.fp.test']], ['also-good', ['good.fp.test']]]));
    expect(await statusOf(manager, 'also-good')).toMatchObject({ certificate: 'acme-good.fp.test', state: 'valid' });
    expect(table.issuedCount).toBe(1);

    manager.follow(new Map([['good', ['good.fp.test']]]));
    expect(manager.status().map((status) => status.key)).toEqual(['good']);
  });
});

describe('AcmeManager and rate limits', () => {
  it('waits for the Retry-After of a rateLimited problem instead of its back-off', async () => {
    // Pebble does not rate-limit: a minimal ACME server that refuses every new account.
    const server = http.createServer((req, res) => {
      const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      if (req.url === '/dir') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ newNonce: `${base}/nonce`, newAccount: `${base}/account`, newOrder: `${base}/order` }));
      else if (req.url === '/nonce') res.writeHead(200, { 'replay-nonce': 'n' }).end();
      else {
        const problem = { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many new accounts, retry later' };
        res.writeHead(429, { 'content-type': 'application/problem+json', 'retry-after': '3600', 'replay-nonce': 'n' }).end(JSON.stringify(problem));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const manager = new AcmeManager({
        directoryUrl: `http://127.0.0.1:${(server.address() as { port: number }).port}/dir`,
        stateDir: await tempDir('acme'),
        retry: { initialMs: 300, maxMs: 1000 },
        challenges: responder.challenges,
        issued: new FakeTable().issued,
        current: () => undefined,
        log: pino({ level: 'silent' }),
      });
      managers.push(manager);
      manager.follow(new Map([['web', ['a.fp.test']]]));
      await manager.checkNow();
      const status = await until(manager, 'web', (value) => value.state === 'failed');
      expect(status.lastError).toBe('too many new accounts, retry later');
      expect(Math.round(((status.nextAttemptAt?.getTime() ?? 0) - Date.now()) / 60_000)).toBe(60);
    } finally {
      server.close();
    }
  });
});
