import { describe, expect, test } from 'vitest';
import type { Certificate, CertificateSet } from '../../src/tls/model.js';
import { buildSniIndex, selectCertificate, sniFilters } from '../../src/tls/sni.js';
import type { SniIndex } from '../../src/tls/sni.js';

/** The rules only read name, names and notAfter. */
function cert(name: string, names: string[], notAfter = '2030-01-01'): Certificate {
  return { name, names, notAfter: new Date(notAfter) } as Partial<Certificate> as Certificate;
}

function index(certs: Certificate[], pins: Record<string, string> = {}): SniIndex {
  const certificates = new Map(certs.map((c) => [c.name, c]));
  const set: CertificateSet = { version: 1, certificates, defaultCertificate: certificates.get('default') as Certificate };
  return buildSniIndex(set, new Map(Object.entries(pins)));
}

const pick = (i: SniIndex, serverName: string | undefined) => selectCertificate(i, serverName).name;

/** What HAProxy does with crt-list filters: exact entry, else `*.` + the name without its first label, else the default. */
function haproxy(i: SniIndex, serverName: string | undefined): string {
  const entries = new Map<string, string>();
  for (const [name, filters] of sniFilters(i)) for (const filter of filters) entries.set(filter, name);
  const host = (serverName ?? '').toLowerCase().replace(/\.$/, '');
  const dot = host.indexOf('.');
  return entries.get(host) ?? (dot > 0 ? entries.get(`*${host.slice(dot)}`) : undefined) ?? i.set.defaultCertificate.name;
}

const certs = [
  cert('default', ['fallback.example']),
  cert('apex', ['example.com']),
  cert('wild', ['*.example.com']),
  cert('www', ['www.example.com', 'www.other.org']),
];

describe('selectCertificate', () => {
  const i = index(certs);

  test('exact names, then a wildcard covering exactly one more label, then the default', () => {
    expect(pick(i, 'www.example.com')).toBe('www');
    expect(pick(i, 'a.example.com')).toBe('wild');
    expect(pick(i, 'example.com')).toBe('apex');
    expect(pick(i, 'a.b.example.com')).toBe('default');
    expect(pick(i, 'unknown.org')).toBe('default');
    expect(pick(i, 'fallback.example')).toBe('default');
  });

  test('case-insensitive, trailing dot ignored; no name or an IP literal gets the default', () => {
    expect(pick(i, 'WWW.Example.COM.')).toBe('www');
    expect(pick(i, 'A.EXAMPLE.com')).toBe('wild');
    for (const name of [undefined, '', '10.0.0.1', '::1']) expect(pick(i, name)).toBe('default');
  });

  test('the latest notAfter wins a name several certificates claim, then the lower name', () => {
    const tie = index([cert('default', []), cert('b-late', ['x.org'], '2031-01-01'), cert('a-early', ['x.org'], '2030-01-01'), cert('c-late', ['x.org'], '2031-01-01')]);
    expect(pick(tie, 'x.org')).toBe('b-late');
  });

  test('a pin wins over certificates claiming the name; missing pins are reported and ignored', () => {
    const pinned = index(certs, { 'www.example.com': 'apex', '*.example.com': 'www', 'Lost.Example.com': 'nope' });
    expect(pick(pinned, 'www.example.com')).toBe('apex');
    expect(pick(pinned, 'a.example.com')).toBe('www');
    expect(pick(pinned, 'lost.example.com')).toBe('www');
    expect([...pinned.missingPins]).toEqual([['lost.example.com', 'nope']]);
  });

  test('an exact name claimed by a certificate wins over a pinned wildcard', () => {
    const pinned = index(certs, { '*.example.com': 'apex' });
    expect(pick(pinned, 'www.example.com')).toBe('www');
    expect(pick(pinned, 'api.example.com')).toBe('apex');
  });
});

describe('sniFilters', () => {
  test('every name once, under the certificate selectCertificate picks, the default included', () => {
    const filters = sniFilters(index([...certs, cert('old-www', ['www.example.com'], '2029-01-01')], { 'shop.example.com': 'apex' }));
    expect([...filters]).toEqual([
      ['apex', ['example.com', 'shop.example.com']],
      ['default', ['fallback.example']],
      ['old-www', []],
      ['wild', ['*.example.com']],
      ['www', ['www.example.com', 'www.other.org']],
    ]);
  });

  test('HAProxy reading the filters answers like selectCertificate', () => {
    const pins = { 'www.example.com': 'apex', '*.other.org': 'wild', 'a.example.com': 'default', 'x.missing.org': 'nope' };
    const i = index([...certs, cert('other', ['*.other.org', 'z.other.org'], '2035-01-01'), cert('deep', ['a.b.example.com'])], pins);
    const names = ['www.example.com', 'a.example.com', 'b.example.com', 'a.b.example.com', 'example.com', 'other.org', 'y.other.org', 'z.other.org', 'www.other.org', 'x.missing.org', 'fallback.example', 'nothing.net', '', undefined];
    for (const name of names) expect([name, haproxy(i, name)]).toEqual([name, pick(i, name)]);
    expect(pick(i, 'y.other.org')).toBe('wild');
    expect(pick(i, 'z.other.org')).toBe('other');
  });
});
