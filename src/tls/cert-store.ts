/**
 * Durable storage of the certificates sent through the API and obtained by ACME; certificates
 * from the certificates directory and Docker secrets are never copied here.
 *
 * Locally, each is <stateDir>/certs/<name>.pem, replaced atomically, with a first comment line
 * giving its source and when it was saved (PEM parsers ignore text outside the blocks), so one
 * atomic write keeps the bundle and what is known about it together.
 *
 * In Swarm, SwarmMirroredCertificateStore also keeps each one as a Docker config, so a task
 * rescheduled with an empty state directory gets them back. The private keys are therefore in
 * Docker configs: replicated by the managers' Raft store (encrypted at rest like secrets) and
 * readable by anyone who can use a manager's Engine API, who could read any secret as well by
 * creating a service that mounts it. Configs rather than secrets because a secret cannot be read
 * back through the Engine API, only mounted into a service at its creation.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type Docker from 'dockerode';
import type { Logger } from '../log.js';
import { removeFileDurably, writeFileAtomic } from '../util/atomic-file.js';
import { CERT_NAME } from './model.js';

export interface StoredCertificate {
  readonly name: string;
  readonly source: 'api' | 'acme';
  readonly bundlePem: string;
  /** When it was sent; where two copies differ, the later one wins. */
  readonly savedAt: Date;
}

export interface CertificateStore {
  load(): Promise<StoredCertificate[]>;
  save(cert: StoredCertificate): Promise<void>;
  remove(name: string): Promise<void>;
}

const HEADER = /^# flow-proxy certificate source=(api|acme) saved=(\S+)\n/;

export class FileCertificateStore implements CertificateStore {
  private readonly dir: string;

  constructor(stateDir: string) {
    this.dir = path.join(stateDir, 'certs');
  }

  async load(): Promise<StoredCertificate[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    // A kill during a save can leave a temporary file behind; the real file is intact.
    await Promise.all(names.filter((n) => n.startsWith('.') && n.endsWith('.tmp')).map((n) => rm(path.join(this.dir, n), { force: true })));
    const files = names.filter((n) => n.endsWith('.pem') && CERT_NAME.test(n.slice(0, -4)));
    return Promise.all(
      files.map(async (file) => {
        const text = await readFile(path.join(this.dir, file), 'utf8');
        const header = HEADER.exec(text);
        const savedAt = new Date(header?.[2] ?? 0);
        return {
          name: file.slice(0, -4),
          // Only this class writes here; a file without the header was put by hand and counts as sent through the API.
          source: header?.[1] === 'acme' ? 'acme' : 'api',
          bundlePem: header === null ? text : text.slice(header[0].length),
          savedAt: Number.isNaN(savedAt.getTime()) ? new Date(0) : savedAt,
        } satisfies StoredCertificate;
      }),
    );
  }

  async save(cert: StoredCertificate): Promise<void> {
    await writeFileAtomic(this.file(cert.name), `# flow-proxy certificate source=${cert.source} saved=${cert.savedAt.toISOString()}\n${cert.bundlePem}`);
  }

  async remove(name: string): Promise<void> {
    await removeFileDurably(this.file(name));
  }

  private file(name: string): string {
    if (!CERT_NAME.test(name)) throw new Error(`invalid certificate name ${JSON.stringify(name)}`);
    return path.join(this.dir, `${name}.pem`);
  }
}

/** Value: the proxy's service name, so several proxies in one Swarm keep their own certificates. */
export const CERT_CONFIG_LABEL = 'com.flow-proxy.cert';
const NAME_LABEL = 'com.flow-proxy.cert-name';
const SOURCE_LABEL = 'com.flow-proxy.cert-source';
/** Milliseconds since the epoch of StoredCertificate.savedAt. */
const SAVED_LABEL = 'com.flow-proxy.saved';
/** Swarm's limit on config names. */
const MAX_CONFIG_NAME = 64;

interface SwarmCopy {
  readonly id: string;
  readonly name: string;
  readonly source: 'api' | 'acme';
  readonly savedAt: Date;
}

export class SwarmMirroredCertificateStore implements CertificateStore {
  constructor(
    private readonly local: CertificateStore,
    private readonly docker: Docker,
    private readonly proxyName: string,
    private readonly log: Logger,
  ) {}

  async load(): Promise<StoredCertificate[]> {
    const local = new Map((await this.local.load()).map((cert) => [cert.name, cert]));
    let copies: SwarmCopy[];
    try {
      copies = await this.copies();
    } catch (error) {
      this.log.error({ reason: (error as Error).message }, 'cannot read the certificates kept in Swarm; starting from the local state only');
      return [...local.values()];
    }
    const newest = new Map<string, SwarmCopy>();
    for (const copy of copies) {
      const other = newest.get(copy.name);
      if (other === undefined || copy.savedAt > other.savedAt) newest.set(copy.name, copy);
    }
    for (const copy of newest.values()) {
      const mine = local.get(copy.name);
      if (mine !== undefined && mine.savedAt >= copy.savedAt) continue;
      try {
        const inspected = await this.docker.getConfig(copy.id).inspect();
        const restored: StoredCertificate = {
          name: copy.name,
          source: copy.source,
          bundlePem: Buffer.from(inspected.Spec?.Data ?? '', 'base64').toString('utf8'),
          savedAt: copy.savedAt,
        };
        local.set(copy.name, restored);
        await this.local.save(restored);
        this.log.info({ certificate: copy.name, source: copy.source }, 'certificate restored from Swarm');
      } catch (error) {
        this.log.error({ certificate: copy.name, reason: (error as Error).message }, 'certificate kept in Swarm could not be restored');
      }
    }
    return [...local.values()];
  }

  async save(cert: StoredCertificate): Promise<void> {
    await this.local.save(cert);
    try {
      const previous = await this.copies(cert.name);
      await this.docker.createConfig({
        Name: this.configName(cert),
        Labels: {
          [CERT_CONFIG_LABEL]: this.proxyName,
          [NAME_LABEL]: cert.name,
          [SOURCE_LABEL]: cert.source,
          [SAVED_LABEL]: String(cert.savedAt.getTime()),
        },
        Data: Buffer.from(cert.bundlePem).toString('base64'),
      });
      await Promise.all(previous.map((copy) => this.docker.getConfig(copy.id).remove().catch(() => undefined)));
    } catch (error) {
      // The local file has it: the change is durable on this node, only not yet across nodes.
      this.log.error({ certificate: cert.name, reason: (error as Error).message }, 'certificate saved locally but not kept in Swarm');
    }
  }

  async remove(name: string): Promise<void> {
    await this.local.remove(name);
    try {
      const copies = await this.copies(name);
      await Promise.all(copies.map((copy) => this.docker.getConfig(copy.id).remove()));
    } catch (error) {
      this.log.error({ certificate: name, reason: (error as Error).message }, 'certificate removed locally but its copy in Swarm could not be removed');
    }
  }

  private async copies(name?: string): Promise<SwarmCopy[]> {
    const label = [`${CERT_CONFIG_LABEL}=${this.proxyName}`, ...(name === undefined ? [] : [`${NAME_LABEL}=${name}`])];
    const configs = await this.docker.listConfigs({ filters: { label } });
    return configs.flatMap((config) => {
      const labels = config.Spec?.Labels ?? {};
      const certName = labels[NAME_LABEL] ?? '';
      const source = labels[SOURCE_LABEL];
      const savedAt = new Date(Number(labels[SAVED_LABEL]));
      if (!CERT_NAME.test(certName) || (source !== 'api' && source !== 'acme') || Number.isNaN(savedAt.getTime())) return [];
      return [{ id: config.ID, name: certName, source, savedAt }];
    });
  }

  /** Readable when it fits Swarm's limit, else shortened with a hash of the certificate name. */
  private configName(cert: StoredCertificate): string {
    const stamp = cert.savedAt.getTime();
    const readable = `${this.proxyName}-cert-${cert.name}-${stamp}`;
    if (readable.length <= MAX_CONFIG_NAME) return readable;
    const hash = createHash('sha256').update(cert.name).digest('hex').slice(0, 16);
    return `${this.proxyName.slice(0, 20)}-cert-${hash}-${stamp}`;
  }
}
