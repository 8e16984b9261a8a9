/**
 * Which certificate answers which TLS server name, written once for both data planes: the
 * built-in plane calls selectCertificate on each handshake, the HAProxy plane writes sniFilters
 * as crt-list SNI filters. HAProxy looks a name up exactly, then as `*.` + the name without its
 * first label, then falls back to the default; the filters give each name to the certificate
 * selectCertificate picks, so both planes answer alike.
 *
 * The more specific name wins, as in routing: a pin (a service's serviceCert) wins over
 * certificates claiming the same name, but an exact name claimed by a certificate wins over a
 * pinned wildcard, so a service pinning *.example.com does not take www.example.com from the
 * service that routes it.
 */
import { isIP } from 'node:net';
import type { Certificate, CertificateSet } from './model.js';

export interface SniIndex {
  readonly set: CertificateSet;
  /** Pinned names (exact or `*.suffix`) whose certificate exists. */
  readonly pins: ReadonlyMap<string, Certificate>;
  /** Every name claimed by a certificate, with the certificate that wins it. */
  readonly names: ReadonlyMap<string, Certificate>;
  /** Pins to a certificate that does not exist: host name -> certificate name. */
  readonly missingPins: ReadonlyMap<string, string>;
}

/** `pins`: host name (exact or `*.suffix`) -> certificate name, from services' serviceCert. */
export function buildSniIndex(set: CertificateSet, pins: ReadonlyMap<string, string>): SniIndex {
  const pinned = new Map<string, Certificate>();
  const missingPins = new Map<string, string>();
  for (const [host, certName] of pins) {
    const cert = set.certificates.get(certName);
    if (cert === undefined) missingPins.set(normalize(host), certName);
    else pinned.set(normalize(host), cert);
  }
  const names = new Map<string, Certificate>();
  for (const cert of set.certificates.values()) {
    for (const name of cert.names) {
      const holder = names.get(name);
      if (holder === undefined || wins(cert, holder)) names.set(name, cert);
    }
  }
  return { set, pins: pinned, names, missingPins };
}

export function selectCertificate(index: SniIndex, serverName: string | undefined): Certificate {
  const host = normalize(serverName ?? '');
  if (host === '' || isIP(host) !== 0) return index.set.defaultCertificate;
  const wildcard = wildcardOf(host);
  return (
    index.pins.get(host) ??
    index.names.get(host) ??
    (wildcard === undefined ? undefined : index.pins.get(wildcard) ?? index.names.get(wildcard)) ??
    index.set.defaultCertificate
  );
}

/**
 * Certificate name -> the names (exact and `*.suffix`) it serves, sorted; every certificate of
 * the set has an entry, possibly empty, and every name is in exactly one entry.
 */
export function sniFilters(index: SniIndex): ReadonlyMap<string, readonly string[]> {
  const filters = new Map<string, string[]>([...index.set.certificates.keys()].sort().map((name) => [name, []]));
  const all = [...new Set([...index.pins.keys(), ...index.names.keys()])].sort();
  // Looked up as a server name, `*.x` finds the pin or the certificate that holds it literally:
  // what HAProxy falls back to for a host under x that no exact entry names.
  for (const name of all) filters.get(selectCertificate(index, name).name)?.push(name);
  return filters;
}

/** Latest notAfter first, then the lower name. */
function wins(a: Certificate, b: Certificate): boolean {
  const byExpiry = a.notAfter.getTime() - b.notAfter.getTime();
  return byExpiry !== 0 ? byExpiry > 0 : a.name < b.name;
}

function normalize(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function wildcardOf(host: string): string | undefined {
  const dot = host.indexOf('.');
  return dot <= 0 ? undefined : `*${host.slice(dot)}`;
}
