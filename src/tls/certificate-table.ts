/**
 * The certificate table: the one place where certificates from every source meet. A change
 * becomes a candidate set, is applied by the data plane, persisted, and only then acknowledged;
 * changes are made one at a time, in arrival order. When two sources give the same name, the
 * API wins over ACME, ACME over Docker secrets, secrets over the certificates directory.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log.js';
import { PlaneRejection } from '../planes/plane.js';
import { NotConfirmedDurable, writeFileAtomic } from '../util/atomic-file.js';
import type { CertificateStore } from './cert-store.js';
import type { Certificate, CertificateSet, CertificateSource } from './model.js';
import { DEFAULT_CERT_NAME } from './model.js';
import { CertificateRejected, parseBundle } from './pem.js';

export type CertificateOutcome =
  | { readonly ok: true; readonly version: number; readonly changed: boolean }
  | { readonly ok: false; readonly status: 400 | 404 | 409 | 500 | 503; readonly message: string };

/** What the API shows of a certificate: everything but the key. */
export interface CertificateDescription {
  readonly name: string;
  readonly source: CertificateSource;
  readonly names: readonly string[];
  readonly notBefore: string;
  readonly notAfter: string;
  readonly issuer: string;
  readonly subject: string;
  readonly serialNumber: string;
  readonly fingerprint256: string;
  readonly chainPem: string;
  readonly default: boolean;
}

export interface CertificateTableOptions {
  /** PEM bundles, *.pem and *.crt; none when undefined. */
  readonly certsDir?: string;
  /** Docker secrets; cert-* and cert_* ones are certificates. Default /run/secrets. */
  readonly secretsDir?: string;
  readonly stateDir: string;
  readonly store: CertificateStore;
  /** Serves a set from now on (the data plane); throws PlaneRejection when it cannot. */
  readonly apply: (set: CertificateSet) => Promise<void>;
  readonly log: Logger;
  readonly now?: () => Date;
}

/** A certificate from the certificates directory or a Docker secret, with where it was read. */
interface FileCertificate {
  readonly certificate: Certificate;
  readonly file: string;
}

export class CertificateTable {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly options: CertificateTableOptions,
    private files: ReadonlyMap<string, FileCertificate>,
    /** Sent through the API or by ACME: one per name. */
    private stored: ReadonlyMap<string, Certificate>,
    private current: CertificateSet,
    /** The generated default certificate, made on first need. */
    private readonly generated: () => Promise<Certificate>,
  ) {}

  /** Reads every source; a certificate that fails validation is skipped and listed in problems. */
  static async load(options: CertificateTableOptions): Promise<{ table: CertificateTable; problems: string[] }> {
    const now = options.now ?? (() => new Date());
    const { files, problems } = await readFiles(options, now());
    const stored = new Map<string, Certificate>();
    for (const entry of await options.store.load()) {
      try {
        stored.set(entry.name, parseBundle(entry.name, entry.source, entry.bundlePem, now()));
      } catch (error) {
        if (!(error instanceof CertificateRejected)) throw error;
        options.log.error({ certificate: entry.name, source: entry.source, reason: error.message }, 'stored certificate skipped');
        problems.push(`stored ${entry.source} certificate ${entry.name}: ${error.message}`);
      }
    }
    let generated: Certificate | undefined;
    const generatedDefault = async () => (generated ??= await loadGeneratedDefault(options, now));
    const initial = await buildSet(files, stored, 1, generatedDefault);
    return { table: new CertificateTable(options, files, stored, initial, generatedDefault), problems };
  }

  snapshot(): CertificateSet {
    return this.current;
  }

  put(name: string, pem: string | Buffer, source: 'api' | 'acme'): Promise<CertificateOutcome> {
    return this.enqueue(async () => {
      let certificate: Certificate;
      try {
        certificate = parseBundle(name, source, pem, this.now());
      } catch (error) {
        if (error instanceof CertificateRejected) return { ok: false, status: 400, message: error.message };
        throw error;
      }
      const held = this.stored.get(name);
      if (source === 'acme' && held?.source === 'api') {
        return { ok: false, status: 409, message: `certificate ${name} was sent through the API, which takes precedence over ACME; remove it first or use another name` };
      }
      if (held?.source === source && held.bundlePem === certificate.bundlePem) return { ok: true, version: this.current.version, changed: false };
      const stored = new Map(this.stored).set(name, certificate);
      const persist = () => this.options.store.save({ name, source, bundlePem: certificate.bundlePem, savedAt: this.now() });
      return this.commit(this.files, stored, persist, { certificate: name, source, action: 'put' });
    });
  }

  remove(name: string): Promise<CertificateOutcome> {
    return this.enqueue(() => {
      const certificate = this.current.certificates.get(name);
      if (certificate === undefined) return { ok: false, status: 404, message: `there is no certificate named ${name}` };
      const file = this.files.get(name)?.file ?? '';
      switch (certificate.source) {
        case 'dir':
          return { ok: false, status: 409, message: `certificate ${name} comes from the file ${file}; delete the file to remove it` };
        case 'secret':
          return {
            ok: false,
            status: 409,
            message: `certificate ${name} comes from the Docker secret ${path.basename(file)}; remove the secret from the proxy service (docker service update --secret-rm)`,
          };
        case 'generated':
          return { ok: false, status: 409, message: `the generated default certificate cannot be removed; send a certificate named ${DEFAULT_CERT_NAME} to replace it` };
      }
      const stored = new Map(this.stored);
      stored.delete(name);
      return this.commit(this.files, stored, () => this.options.store.remove(name), { certificate: name, action: 'remove' });
    });
  }

  /** Reads the certificates directory and the secrets again; problems are logged. */
  rescan(): Promise<CertificateOutcome> {
    return this.enqueue(async () => {
      const { files } = await readFiles(this.options, this.now());
      const same =
        files.size === this.files.size &&
        [...files].every(([name, { certificate }]) => {
          const before = this.files.get(name)?.certificate;
          return before?.source === certificate.source && before.bundlePem === certificate.bundlePem;
        });
      if (same) return { ok: true, version: this.current.version, changed: false };
      return this.commit(files, this.stored, async () => undefined, { action: 'rescan' });
    });
  }

  describe(): CertificateDescription[] {
    return [...this.current.certificates.values()]
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((c) => ({
        name: c.name,
        source: c.source,
        names: c.names,
        notBefore: c.notBefore.toISOString(),
        notAfter: c.notAfter.toISOString(),
        issuer: c.issuer,
        subject: c.subject,
        serialNumber: c.serialNumber,
        fingerprint256: c.fingerprint256,
        chainPem: c.chainPem,
        default: c === this.current.defaultCertificate,
      }));
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  private enqueue(change: () => CertificateOutcome | Promise<CertificateOutcome>): Promise<CertificateOutcome> {
    const result = this.queue.then(change, change);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async commit(
    files: ReadonlyMap<string, FileCertificate>,
    stored: ReadonlyMap<string, Certificate>,
    persist: () => Promise<void>,
    audit: Record<string, string>,
  ): Promise<CertificateOutcome> {
    const { log } = this.options;
    let candidate: CertificateSet;
    try {
      candidate = await buildSet(files, stored, this.current.version + 1, this.generated);
    } catch (error) {
      log.error({ ...audit, reason: (error as Error).message }, 'certificate change could not be prepared');
      return { ok: false, status: 503, message: `the default certificate could not be generated (${(error as Error).message}); nothing was changed` };
    }
    try {
      await this.options.apply(candidate);
    } catch (error) {
      const reason = (error as Error).message;
      log.error({ ...audit, reason }, 'certificate change refused by the data plane');
      const status = error instanceof PlaneRejection ? 400 : 500;
      return { ok: false, status, message: `the data plane could not serve these certificates (${reason}); nothing was changed and the previous certificates keep serving` };
    }
    let unconfirmed: string | undefined;
    try {
      await persist();
    } catch (error) {
      const reason = (error as Error).message;
      if (!(error instanceof NotConfirmedDurable)) {
        log.error({ ...audit, reason }, 'certificate change not persisted');
        await this.options.apply(this.current).catch((back: Error) => log.error({ reason: back.message }, 'previous certificates could not be served again'));
        return { ok: false, status: 503, message: `the change could not be saved (${reason}); nothing was changed and the previous certificates keep serving` };
      }
      // On disk, so a restart serves it: keep serving it, and say the disk did not confirm it.
      unconfirmed = reason;
      log.error({ ...audit, reason }, 'certificate change saved, durability not confirmed by the disk');
    }
    this.files = files;
    this.stored = stored;
    this.current = candidate;
    log.info({ ...audit, version: candidate.version }, 'certificates changed');
    if (unconfirmed !== undefined) {
      return { ok: false, status: 500, message: `the change is saved and served, but the disk did not confirm it would survive a crash (${unconfirmed}); check the disk` };
    }
    return { ok: true, version: candidate.version, changed: true };
  }
}

/** API and ACME certificates shadow files of the same name; without a `default` one, the generated one is the default. */
async function buildSet(
  files: ReadonlyMap<string, FileCertificate>,
  stored: ReadonlyMap<string, Certificate>,
  version: number,
  generatedDefault: () => Promise<Certificate>,
): Promise<CertificateSet> {
  const certificates = new Map<string, Certificate>();
  for (const [name, { certificate }] of files) certificates.set(name, certificate);
  for (const [name, certificate] of stored) certificates.set(name, certificate);
  let defaultCertificate = certificates.get(DEFAULT_CERT_NAME);
  if (defaultCertificate === undefined) {
    defaultCertificate = await generatedDefault();
    certificates.set(DEFAULT_CERT_NAME, defaultCertificate);
  }
  return { version, certificates, defaultCertificate };
}

/** Kept in the state directory so that clients see the same certificate after a restart. */
async function loadGeneratedDefault(options: CertificateTableOptions, now: () => Date): Promise<Certificate> {
  const file = path.join(options.stateDir, 'tls', `${DEFAULT_CERT_NAME}.pem`);
  try {
    return parseBundle(DEFAULT_CERT_NAME, 'generated', await readFile(file), now());
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      options.log.error({ file, reason: (error as Error).message }, 'generated default certificate unusable; generating a new one');
    }
  }
  // Loaded only when a certificate must be generated: its X.509 library is slow to import.
  const { generateSelfSigned } = await import('./self-signed.js');
  const { chainPem, keyPem } = await generateSelfSigned();
  await writeFileAtomic(file, chainPem + keyPem);
  options.log.info({ file }, 'self-signed default certificate generated');
  return parseBundle(DEFAULT_CERT_NAME, 'generated', chainPem + keyPem, now());
}

/** The certificates directory and the Docker secrets; secrets win over files of the same name. */
async function readFiles(options: CertificateTableOptions, now: Date): Promise<{ files: Map<string, FileCertificate>; problems: string[] }> {
  const files = new Map<string, FileCertificate>();
  const problems: string[] = [];
  const skip = (where: string, reason: string) => {
    problems.push(`${where}: ${reason}`);
    options.log.error({ file: where, reason }, 'certificate skipped');
  };
  const sources: [string | undefined, CertificateSource, (file: string) => string | undefined][] = [
    [options.certsDir, 'dir', (file) => /^(.+)\.(pem|crt)$/.exec(file)?.[1]],
    [options.secretsDir ?? '/run/secrets', 'secret', (file) => /^cert[-_](.*?)(\.pem)?$/.exec(file)?.[1]],
  ];
  for (const [dir, source, nameOf] of sources) {
    if (dir === undefined) continue;
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') skip(dir, (error as Error).message);
      continue;
    }
    const found = new Set<string>();
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const name = nameOf(entry.name);
      if (entry.isDirectory() || entry.name.startsWith('.') || name === undefined) continue;
      const file = path.join(dir, entry.name);
      if (found.has(name)) {
        skip(file, `another file in ${dir} already gives certificate ${name}; keep one of them`);
        continue;
      }
      found.add(name);
      try {
        files.set(name, { certificate: parseBundle(name, source, await readFile(file), now), file });
      } catch (error) {
        skip(file, (error as Error).message);
      }
    }
  }
  return { files, problems };
}
