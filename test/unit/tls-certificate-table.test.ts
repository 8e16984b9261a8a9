import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { createLogger } from '../../src/log.js';
import { PlaneRejection } from '../../src/planes/plane.js';
import { CERT_CONFIG_LABEL, FileCertificateStore, SwarmMirroredCertificateStore } from '../../src/tls/cert-store.js';
import type { CertificateStore, StoredCertificate } from '../../src/tls/cert-store.js';
import { CertificateTable } from '../../src/tls/certificate-table.js';
import type { CertificateTableOptions } from '../../src/tls/certificate-table.js';
import type { CertificateSet } from '../../src/tls/model.js';
import { generateSelfSigned } from '../../src/tls/self-signed.js';

const log = createLogger('silent');
let root: string;
let certsDir: string;
let secretsDir: string;
let stateDir: string;

beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'tls-table-'));
  [certsDir, secretsDir, stateDir] = ['certs', 'secrets', 'state'].map((d) => path.join(root, d)) as [string, string, string];
  await Promise.all([mkdir(certsDir), mkdir(secretsDir)]);
});
afterEach(() => rm(root, { recursive: true, force: true }));

async function bundle(host: string): Promise<string> {
  const { chainPem, keyPem } = await generateSelfSigned({ commonName: host });
  return chainPem + keyPem;
}

async function open(options: Partial<CertificateTableOptions> = {}) {
  const applied: CertificateSet[] = [];
  const { table, problems } = await CertificateTable.load({
    certsDir,
    secretsDir,
    stateDir,
    store: new FileCertificateStore(stateDir),
    log,
    apply: async (set) => {
      applied.push(set);
    },
    ...options,
  });
  const served = (name: string) => table.snapshot().certificates.get(name);
  return { table, problems, applied, served };
}

describe('CertificateTable start-up', () => {
  test('reads the directory and the cert-* secrets; a bad file is skipped and listed', async () => {
    await writeFile(path.join(certsDir, 'a.pem'), await bundle('a.example.com'));
    await writeFile(path.join(certsDir, 'b.crt'), await bundle('b.example.com'));
    await writeFile(path.join(certsDir, 'c.crt'), await bundle('c.example.com'));
    await writeFile(path.join(certsDir, 'c.pem'), await bundle('c2.example.com'));
    await writeFile(path.join(certsDir, 'bad.pem'), 'not a certificate');
    await writeFile(path.join(certsDir, 'notes.txt'), 'ignored');
    await writeFile(path.join(secretsDir, 'cert-s1'), await bundle('s1.example.com'));
    await writeFile(path.join(secretsDir, 'cert_s2.pem'), await bundle('s2.example.com'));
    await writeFile(path.join(secretsDir, 'db-password'), 'ignored');
    const { table, problems, served } = await open();
    expect([...table.snapshot().certificates.keys()].sort()).toEqual(['a', 'b', 'c', 'default', 's1', 's2']);
    expect([served('a')?.source, served('s1')?.source, served('s2')?.names]).toEqual(['dir', 'secret', ['s2.example.com']]);
    expect(served('c')?.names).toEqual(['c.example.com']);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/bad\.pem: .*no "BEGIN CERTIFICATE" block/);
    expect(problems[1]).toMatch(/c\.pem: .*already gives certificate c/);
    expect(table.snapshot().defaultCertificate).toMatchObject({ name: 'default', source: 'generated' });
  });

  test('the generated default is kept and reused; none is generated when a default is given', async () => {
    const first = (await open()).table.snapshot().defaultCertificate;
    const second = (await open()).table.snapshot().defaultCertificate;
    expect(second.fingerprint256).toBe(first.fingerprint256);
    expect((await stat(path.join(stateDir, 'tls', 'default.pem'))).mode & 0o777).toBe(0o600);

    await rm(stateDir, { recursive: true });
    await writeFile(path.join(certsDir, 'default.pem'), await bundle('given.example.com'));
    const given = (await open()).table.snapshot().defaultCertificate;
    expect(given).toMatchObject({ source: 'dir', names: ['given.example.com'] });
    await expect(stat(path.join(stateDir, 'tls', 'default.pem'))).rejects.toThrow(/ENOENT/);
  });

  test('a missing directory is no problem', async () => {
    const { problems, table } = await open({ certsDir: path.join(root, 'none'), secretsDir: path.join(root, 'none') });
    expect(problems).toEqual([]);
    expect([...table.snapshot().certificates.keys()]).toEqual(['default']);
  });
});

describe('CertificateTable changes', () => {
  test('precedence api > secret > dir; removing the API one brings the file one back', async () => {
    await writeFile(path.join(certsDir, 'x.pem'), await bundle('dir.example.com'));
    await writeFile(path.join(certsDir, 'y.pem'), await bundle('y.example.com'));
    await writeFile(path.join(secretsDir, 'cert-x'), await bundle('secret.example.com'));
    const { table, served } = await open();
    expect(served('x')).toMatchObject({ source: 'secret', names: ['secret.example.com'] });
    expect(await table.put('x', await bundle('api.example.com'), 'api')).toEqual({ ok: true, version: 2, changed: true });
    expect(served('x')).toMatchObject({ source: 'api', names: ['api.example.com'] });
    expect(await table.remove('x')).toEqual({ ok: true, version: 3, changed: true });
    expect(served('x')).toMatchObject({ source: 'secret' });
    expect(await table.remove('x')).toMatchObject({ ok: false, status: 409, message: expect.stringMatching(/Docker secret cert-x; remove the secret/) });
    expect(await table.remove('y')).toMatchObject({ ok: false, status: 409, message: expect.stringContaining(`file ${path.join(certsDir, 'y.pem')}`) });
    expect(await table.remove('nope')).toMatchObject({ ok: false, status: 404 });
    expect(await table.remove('default')).toMatchObject({ ok: false, status: 409, message: expect.stringMatching(/generated default/) });
    expect(table.snapshot().version).toBe(3);
  });

  test('a bad bundle is refused with its reason and nothing changes', async () => {
    const { table, applied } = await open();
    await table.put('site', await bundle('site.example.com'), 'api');
    const before = table.snapshot();
    const outcome = await table.put('site', 'garbage', 'api');
    expect(outcome).toMatchObject({ ok: false, status: 400, message: expect.stringMatching(/certificate site has no "BEGIN CERTIFICATE" block/) });
    expect(await table.put('../etc', await bundle('x.example.com'), 'api')).toMatchObject({ status: 400 });
    expect(table.snapshot()).toBe(before);
    expect(applied).toHaveLength(1);
  });

  test('a change is applied, persisted and survives a restart; sending the same again changes nothing', async () => {
    const { table, applied } = await open();
    const pem = await bundle('site.example.com');
    expect(await table.put('site', pem, 'acme')).toMatchObject({ ok: true, version: 2, changed: true });
    expect(applied.map((set) => [set.version, [...set.certificates.keys()].sort()])).toEqual([[2, ['default', 'site']]]);
    expect(await table.put('site', pem, 'acme')).toEqual({ ok: true, version: 2, changed: false });
    const restarted = await open();
    expect(restarted.served('site')).toMatchObject({ source: 'acme', names: ['site.example.com'] });
    expect(restarted.table.snapshot().defaultCertificate.fingerprint256).toBe(table.snapshot().defaultCertificate.fingerprint256);
  });

  test('ACME does not replace a certificate sent through the API; the API replaces an ACME one', async () => {
    const { table, served } = await open();
    await table.put('site', await bundle('api.example.com'), 'api');
    expect(await table.put('site', await bundle('acme.example.com'), 'acme')).toMatchObject({ ok: false, status: 409 });
    expect(served('site')?.names).toEqual(['api.example.com']);
    await table.put('other', await bundle('acme.example.com'), 'acme');
    expect(await table.put('other', await bundle('api.example.com'), 'api')).toMatchObject({ ok: true, changed: true });
    expect(served('other')?.source).toBe('api');
  });

  test('a data plane failure changes nothing and says why', async () => {
    let failure: Error | undefined = new PlaneRejection('unsupported key type');
    const { table } = await open({
      apply: async () => {
        if (failure !== undefined) throw failure;
      },
    });
    const before = table.snapshot();
    expect(await table.put('site', await bundle('site.example.com'), 'api')).toMatchObject({ ok: false, status: 400, message: expect.stringMatching(/unsupported key type/) });
    failure = new Error('haproxy crashed');
    expect(await table.put('site', await bundle('site.example.com'), 'api')).toMatchObject({ ok: false, status: 500, message: expect.stringMatching(/haproxy crashed/) });
    expect(table.snapshot()).toBe(before);
    expect(await new FileCertificateStore(stateDir).load()).toEqual([]);
    failure = undefined;
    expect(await table.put('site', await bundle('site.example.com'), 'api')).toMatchObject({ ok: true, version: 2 });
  });

  test('a change that cannot be saved is undone in the data plane', async () => {
    const store: CertificateStore = {
      load: async () => [],
      save: async () => {
        throw new Error('ENOSPC: no space left on device');
      },
      remove: async () => undefined,
    };
    const { table, applied } = await open({ store });
    const before = table.snapshot();
    expect(await table.put('site', await bundle('site.example.com'), 'api')).toMatchObject({ ok: false, status: 503, message: expect.stringMatching(/ENOSPC/) });
    expect(table.snapshot()).toBe(before);
    expect(applied.map((set) => set.version)).toEqual([2, 1]);
    expect(applied[1]).toBe(before);
  });

  test('changes are made one at a time in arrival order', async () => {
    const { table, applied } = await open();
    const [a, b] = await Promise.all([bundle('a.example.com'), bundle('b.example.com')]);
    const outcomes = await Promise.all([table.put('a', a, 'api'), table.put('b', b, 'api'), table.remove('a')]);
    expect(outcomes.map((o) => o.ok && o.version)).toEqual([2, 3, 4]);
    expect(applied.map((set) => [...set.certificates.keys()].sort())).toEqual([['a', 'default'], ['a', 'b', 'default'], ['b', 'default']]);
  });

  test('removing an API default brings the generated one back', async () => {
    const { table, served } = await open();
    const generated = table.snapshot().defaultCertificate;
    await table.put('default', await bundle('mine.example.com'), 'api');
    expect(table.snapshot().defaultCertificate).toMatchObject({ source: 'api', names: ['mine.example.com'] });
    await table.remove('default');
    expect(served('default')?.fingerprint256).toBe(generated.fingerprint256);
    expect(table.snapshot().defaultCertificate.source).toBe('generated');
  });

  test('rescan picks up new and removed files', async () => {
    const { table, served } = await open();
    await writeFile(path.join(certsDir, 'late.pem'), await bundle('late.example.com'));
    expect(await table.rescan()).toMatchObject({ ok: true, changed: true, version: 2 });
    expect(served('late')?.source).toBe('dir');
    expect(await table.rescan()).toMatchObject({ ok: true, changed: false, version: 2 });
    await rm(path.join(certsDir, 'late.pem'));
    expect(await table.rescan()).toMatchObject({ changed: true, version: 3 });
    expect(served('late')).toBeUndefined();
  });

  test('describe shows everything but the key', async () => {
    const { table } = await open();
    await table.put('site', await bundle('site.example.com'), 'api');
    const described = table.describe();
    expect(described.map((d) => [d.name, d.source, d.default])).toEqual([
      ['default', 'generated', true],
      ['site', 'api', false],
    ]);
    expect(described[1]).toMatchObject({ names: ['site.example.com'], subject: 'CN=site.example.com', chainPem: expect.stringContaining('BEGIN CERTIFICATE') });
    expect(JSON.stringify(described)).not.toMatch(/PRIVATE KEY|keyPem|bundlePem/);
  });
});

describe('FileCertificateStore', () => {
  test('keeps source and time, writes 0600 files, removes abandoned temporaries', async () => {
    const store = new FileCertificateStore(stateDir);
    const cert: StoredCertificate = { name: 'site', source: 'acme', bundlePem: await bundle('site.example.com'), savedAt: new Date('2025-01-02T03:04:05.000Z') };
    await store.save(cert);
    await writeFile(path.join(stateDir, 'certs', '.site.pem.123.1.tmp'), 'partial');
    expect(await store.load()).toEqual([cert]);
    expect(await readdir(path.join(stateDir, 'certs'))).toEqual(['site.pem']);
    expect((await stat(path.join(stateDir, 'certs', 'site.pem'))).mode & 0o777).toBe(0o600);
    expect(await readFile(path.join(stateDir, 'certs', 'site.pem'), 'utf8')).toMatch(/^# flow-proxy certificate source=acme saved=2025-01-02T03:04:05.000Z\n-----BEGIN CERTIFICATE-----/);
    await store.remove('site');
    expect(await store.load()).toEqual([]);
    await expect(store.save({ ...cert, name: '../escape' })).rejects.toThrow(/invalid certificate name/);
  });
});

interface FakeConfig {
  ID: string;
  Spec: { Name: string; Labels: Record<string, string>; Data: string };
}

/** The part of Dockerode the mirrored store uses. */
class FakeDocker {
  readonly configs = new Map<string, FakeConfig>();
  down = false;
  private sequence = 0;

  async listConfigs(options: { filters: { label: string[] } }): Promise<FakeConfig[]> {
    this.check();
    return [...this.configs.values()].filter((c) =>
      options.filters.label.every((filter) => {
        const [key, value] = filter.split('=', 2) as [string, string];
        return c.Spec.Labels[key] === value;
      }),
    );
  }

  async createConfig(spec: FakeConfig['Spec']): Promise<void> {
    this.check();
    if (spec.Name.length > 64 || [...this.configs.values()].some((c) => c.Spec.Name === spec.Name)) throw new Error(`bad or taken name ${spec.Name}`);
    const ID = `id${++this.sequence}`;
    this.configs.set(ID, { ID, Spec: spec });
  }

  getConfig(id: string) {
    return {
      inspect: async () => {
        this.check();
        const config = this.configs.get(id);
        if (config === undefined) throw new Error('no such config');
        return config;
      },
      remove: async () => {
        this.check();
        this.configs.delete(id);
      },
    };
  }

  private check(): void {
    if (this.down) throw new Error('connect ENOENT /var/run/docker.sock');
  }
}

describe('SwarmMirroredCertificateStore', () => {
  const at = (iso: string) => new Date(iso);

  function mirrored(docker: FakeDocker, dir = stateDir) {
    return new SwarmMirroredCertificateStore(new FileCertificateStore(dir), docker as unknown as Docker, 'proxy', log);
  }

  test('keeps one config per certificate, labelled, and removes it with the certificate', async () => {
    const docker = new FakeDocker();
    const store = mirrored(docker);
    const pem = await bundle('site.example.com');
    await store.save({ name: 'site', source: 'api', bundlePem: pem, savedAt: at('2025-01-01T00:00:00Z') });
    await store.save({ name: 'site', source: 'api', bundlePem: pem, savedAt: at('2025-01-02T00:00:00Z') });
    await store.save({ name: 'x'.repeat(60), source: 'acme', bundlePem: pem, savedAt: at('2025-01-02T00:00:00Z') });
    const configs = [...docker.configs.values()];
    expect(configs).toHaveLength(2);
    expect(configs[0]?.Spec).toMatchObject({
      Name: `proxy-cert-site-${at('2025-01-02T00:00:00Z').getTime()}`,
      Labels: { [CERT_CONFIG_LABEL]: 'proxy', 'com.flow-proxy.cert-name': 'site', 'com.flow-proxy.cert-source': 'api' },
    });
    expect(Buffer.from(configs[0]?.Spec.Data ?? '', 'base64').toString()).toBe(pem);
    await store.remove('site');
    await store.remove('x'.repeat(60));
    expect(docker.configs.size).toBe(0);
  });

  test('a task with an empty state directory gets its certificates back; the newer copy wins', async () => {
    const docker = new FakeDocker();
    const [old, recent] = [await bundle('old.example.com'), await bundle('new.example.com')];
    await mirrored(docker, path.join(root, 'node-a')).save({ name: 'site', source: 'api', bundlePem: old, savedAt: at('2025-01-01T00:00:00Z') });
    await mirrored(docker, path.join(root, 'node-b')).save({ name: 'site', source: 'api', bundlePem: recent, savedAt: at('2025-02-01T00:00:00Z') });
    await mirrored(docker, path.join(root, 'node-b')).save({ name: 'acme-site', source: 'acme', bundlePem: old, savedAt: at('2025-01-01T00:00:00Z') });

    const empty = await mirrored(docker).load();
    expect(empty.map((c) => [c.name, c.source, c.bundlePem === recent])).toEqual(
      expect.arrayContaining([
        ['site', 'api', true],
        ['acme-site', 'acme', false],
      ]),
    );
    // Restored locally too: the next start needs no Swarm.
    expect(await new FileCertificateStore(stateDir).load()).toHaveLength(2);

    // node-a's local copy is older than Swarm's: Swarm's wins. A local copy newer than Swarm's wins.
    expect((await mirrored(docker, path.join(root, 'node-a')).load()).find((c) => c.name === 'site')?.bundlePem).toBe(recent);
    await new FileCertificateStore(stateDir).save({ name: 'site', source: 'api', bundlePem: old, savedAt: at('2025-03-01T00:00:00Z') });
    expect((await mirrored(docker).load()).find((c) => c.name === 'site')?.bundlePem).toBe(old);
  });

  test('Swarm being unreachable is logged, never fatal', async () => {
    const docker = new FakeDocker();
    docker.down = true;
    const store = mirrored(docker);
    const cert: StoredCertificate = { name: 'site', source: 'api', bundlePem: await bundle('site.example.com'), savedAt: at('2025-01-01T00:00:00Z') };
    await store.save(cert);
    expect(await store.load()).toEqual([cert]);
    await store.remove('site');
    expect(await store.load()).toEqual([]);
  });
});
