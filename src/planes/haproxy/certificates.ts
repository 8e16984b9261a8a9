/**
 * The HTTPS listener's certificates: one PEM bundle per certificate in a directory, and a
 * crt-list naming each with the SNI names it serves (src/tls/sni.ts decides, so both planes pick
 * the same certificate). The default certificate is the list's first entry.
 *
 * Changes go through the runtime API without a reload: a replaced certificate is swapped with
 * `set ssl cert` + `commit ssl cert` (handshakes in flight keep the old one), a new one is created
 * with `new ssl cert` and inserted with `add ssl crt-list`, a removed one is taken out with
 * `del ssl crt-list` + `del ssl cert`. The files on disk are kept identical, so a reload loads
 * the same set.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { parseDomain } from '../../routes/grammar.js';
import type { CertificateSet } from '../../tls/model.js';
import { buildSniIndex, sniFilters } from '../../tls/sni.js';
import { writeFileAtomic } from '../../util/atomic-file.js';
import { RuntimeApiError, runtimeCommand } from './runtime.js';

export interface CrtListEntry {
  readonly file: string;
  readonly bundle: string;
  /** SNI names this certificate serves; validated host names only. */
  readonly filters: readonly string[];
}

/** Entries by file, in crt-list order (the default certificate first). */
export type CrtList = ReadonlyMap<string, CrtListEntry>;

/** RFC 2606 reserves .invalid: no client asks for it, so no certificate claims it. */
const UNCLAIMABLE_NAME = 'default.flow-proxy.invalid';

function isHostName(name: string): boolean {
  try {
    return parseDomain(name) === name;
  } catch {
    return false;
  }
}

export function renderCrtList(set: CertificateSet, pins: ReadonlyMap<string, string>, certDir: string): CrtList {
  const filters = sniFilters(buildSniIndex(set, pins));
  const entries = new Map<string, CrtListEntry>();
  const defaultName = set.defaultCertificate.name;
  const names = [defaultName, ...[...set.certificates.keys()].filter((n) => n !== defaultName).sort()];
  for (const name of names) {
    const certificate = set.certificates.get(name) ?? set.defaultCertificate;
    // A name a certificate could carry in its subjectAltName is not trusted into the crt-list unchecked.
    const served = (filters.get(name) ?? []).filter(isHostName);
    // Without filters HAProxy would take the certificate's own names: a certificate that wins no
    // name is left out, and the default (served anyway, as the first entry) gets a name nobody can own.
    if (served.length === 0 && name !== defaultName) continue;
    const file = path.join(certDir, `${name}.pem`);
    entries.set(file, { file, bundle: certificate.bundlePem, filters: served.length === 0 ? [UNCLAIMABLE_NAME] : served });
  }
  return entries;
}

function crtListLine(entry: CrtListEntry): string {
  return entry.filters.length === 0 ? entry.file : `${entry.file} ${entry.filters.join(' ')}`;
}

export function crtListText(list: CrtList): string {
  return [...list.values()].map((entry) => `${crtListLine(entry)}\n`).join('');
}

/** Writes every bundle and the crt-list itself; the files a later reload reads. */
export async function writeCrtList(list: CrtList, listFile: string, previous?: CrtList): Promise<void> {
  for (const entry of list.values()) {
    if (previous?.get(entry.file)?.bundle !== entry.bundle) await writeFileAtomic(entry.file, entry.bundle);
  }
  await writeFileAtomic(listFile, crtListText(list));
  for (const file of previous?.keys() ?? []) if (!list.has(file)) await rm(file, { force: true });
}

async function expect(socket: string, command: string, success: RegExp): Promise<void> {
  const answer = await runtimeCommand(socket, command);
  if (!success.test(answer)) throw new RuntimeApiError(`${command.split('\n')[0]}: ${answer.trim().slice(0, 300)}`);
}

async function storeCertificate(socket: string, entry: CrtListEntry): Promise<void> {
  await expect(socket, `set ssl cert ${entry.file} <<\n${entry.bundle}`, /Transaction (created|updated)/);
  await expect(socket, `commit ssl cert ${entry.file}`, /Success!/);
}

/**
 * Brings the running worker from `loaded` to `next` through the runtime API. Throws
 * RuntimeApiError when HAProxy refuses a step; the caller then reloads from the files.
 */
export async function updateCrtList(socket: string, listFile: string, loaded: CrtList, next: CrtList): Promise<boolean> {
  const [firstLoaded] = loaded.keys();
  const [firstNext] = next.keys();
  if (firstLoaded !== firstNext) throw new RuntimeApiError('the default certificate changed file; a reload loads it');
  let changed = false;
  for (const entry of next.values()) {
    const before = loaded.get(entry.file);
    if (before === undefined) {
      await expect(socket, `new ssl cert ${entry.file}`, /New empty certificate store/);
      await storeCertificate(socket, entry);
      await expect(socket, `add ssl crt-list ${listFile} <<\n${crtListLine(entry)}\n`, /Success!/);
      changed = true;
      continue;
    }
    if (before.bundle !== entry.bundle) {
      await storeCertificate(socket, entry);
      changed = true;
    }
    if (before.filters.join(' ') !== entry.filters.join(' ')) {
      if (entry.file === firstNext) throw new RuntimeApiError('the default certificate serves other names; a reload applies them');
      await expect(socket, `del ssl crt-list ${listFile} ${entry.file}`, /deleted/);
      await expect(socket, `add ssl crt-list ${listFile} <<\n${crtListLine(entry)}\n`, /Success!/);
      changed = true;
    }
  }
  for (const file of loaded.keys()) {
    if (next.has(file)) continue;
    await expect(socket, `del ssl crt-list ${listFile} ${file}`, /deleted/);
    await expect(socket, `del ssl cert ${file}`, /deleted/);
    changed = true;
  }
  return changed;
}
