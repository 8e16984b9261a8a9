import { execFileSync } from 'node:child_process';
import { createPrivateKey, KeyObject, webcrypto, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { afterAll, describe, expect, test } from 'vitest';
import { CertificateRejected, MAX_BUNDLE_BYTES, parseBundle } from '../../src/tls/pem.js';
import { generateSelfSigned } from '../../src/tls/self-signed.js';

const dir = mkdtempSync(path.join(tmpdir(), 'tls-pem-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let sequence = 0;
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

const read = (file: string) => readFileSync(path.join(dir, file), 'utf8');

interface Pair {
  readonly cert: string;
  readonly key: string;
  readonly certFile: string;
  readonly keyFile: string;
}

function selfSigned(subject: string, san?: string, keyArgs = EC): Pair {
  const id = ++sequence;
  const [certFile, keyFile] = [`c${id}.pem`, `k${id}.pem`];
  openssl('req', '-x509', ...keyArgs, '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '30', '-subj', subject, ...(san === undefined ? [] : ['-addext', `subjectAltName=${san}`]));
  return { cert: read(certFile), key: read(keyFile), certFile, keyFile };
}

/** A certificate signed by `issuer`: a CA when `san` is undefined, else a server certificate. */
function signed(subject: string, issuer: Pair, san?: string): Pair {
  const id = ++sequence;
  const [certFile, keyFile, ext] = [`c${id}.pem`, `k${id}.pem`, `e${id}.cnf`];
  writeFileSync(path.join(dir, ext), san === undefined ? 'basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign\n' : `subjectAltName=${san}\n`);
  openssl('req', '-new', ...EC, '-nodes', '-keyout', keyFile, '-out', `r${id}.csr`, '-subj', subject);
  openssl('x509', '-req', '-in', `r${id}.csr`, '-CA', issuer.certFile, '-CAkey', issuer.keyFile, '-set_serial', String(id), '-days', '30', '-extfile', ext, '-out', certFile);
  return { cert: read(certFile), key: read(keyFile), certFile, keyFile };
}

async function dated(notBefore: Date, notAfter: Date): Promise<string> {
  const crypto = webcrypto as unknown as Crypto;
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await crypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: 'CN=dated.example.com',
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: algorithm,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'dated.example.com' }])],
    },
    crypto,
  );
  return `${cert.toString('pem')}\n${KeyObject.from(keys.privateKey as webcrypto.CryptoKey).export({ type: 'pkcs8', format: 'pem' }) as string}`;
}

function rejected(bundle: string, named: RegExp, name = 'site'): void {
  expect(() => parseBundle(name, 'api', bundle)).toThrow(CertificateRejected);
  expect(() => parseBundle(name, 'api', bundle)).toThrow(named);
}

const day = 24 * 3600 * 1000;
const site = selfSigned('/CN=Example.com', 'DNS:Example.com,DNS:example.com,DNS:*.Example.com,IP:10.0.0.1');

describe('parseBundle accepts', () => {
  test('certificate and key in any order, with CRLF and text around the blocks', () => {
    const bundle = `Bag Attributes\r\n${site.key.replace(/\n/g, '\r\n')}junk between blocks\n${site.cert}trailer`;
    const cert = parseBundle('site', 'api', Buffer.from(bundle));
    const expected = new X509Certificate(site.cert);
    expect(cert).toMatchObject({
      name: 'site',
      source: 'api',
      names: ['example.com', '*.example.com'],
      fingerprint256: expected.fingerprint256,
      serialNumber: expected.serialNumber,
      subject: 'CN=Example.com',
      issuer: 'CN=Example.com',
      chainPem: site.cert,
      keyPem: site.key,
    });
    expect(cert.bundlePem).toBe(site.cert + site.key);
    expect(cert.bundlePem).not.toContain('\r');
    expect(cert.notAfter.getTime() - cert.notBefore.getTime()).toBe(30 * day);
  });

  test('a CA-signed leaf given after its intermediate comes first in the chain', () => {
    const root = selfSigned('/CN=Test Root', undefined);
    const intermediate = signed('/CN=Test Intermediate', root);
    const leaf = signed('/CN=shop.example.com', intermediate, 'DNS:shop.example.com');
    const cert = parseBundle('shop', 'dir', intermediate.cert + leaf.key + leaf.cert);
    expect(cert.chainPem).toBe(leaf.cert + intermediate.cert);
    expect(cert.bundlePem).toBe(leaf.cert + intermediate.cert + leaf.key);
    expect(cert.issuer).toBe('CN=Test Intermediate');
    expect(cert.names).toEqual(['shop.example.com']);
  });

  test('the CN when there is no subjectAltName', () => {
    const legacy = selfSigned('/CN=Legacy.Example.com/O=Acme');
    expect(parseBundle('legacy', 'secret', legacy.cert + legacy.key).names).toEqual(['legacy.example.com']);
    const both = selfSigned('/CN=cn.example.com', 'DNS:san.example.com');
    expect(parseBundle('both', 'secret', both.cert + both.key).names).toEqual(['san.example.com']);
  });

  test('a traditional RSA key', () => {
    const rsa = selfSigned('/CN=rsa.example.com', 'DNS:rsa.example.com', ['-newkey', 'rsa:2048']);
    openssl('rsa', '-in', rsa.keyFile, '-traditional', '-out', 'rsa-trad.pem');
    const key = read('rsa-trad.pem');
    expect(key).toContain('BEGIN RSA PRIVATE KEY');
    expect(parseBundle('rsa', 'api', rsa.cert + key).keyPem).toBe(key);
  });

  test('the generated self-signed certificate', async () => {
    const { chainPem, keyPem } = await generateSelfSigned({ commonName: 'proxy.example.com' });
    const cert = parseBundle('default', 'generated', chainPem + keyPem);
    expect(cert.names).toEqual(['proxy.example.com']);
    expect(cert.notAfter.getTime() - cert.notBefore.getTime()).toBeGreaterThan(9 * 365 * day);
    expect(new X509Certificate(chainPem).checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
  });
});

describe('parseBundle refuses', () => {
  test('a bundle over the size limit', () => {
    const padding = `${'#'.repeat(79)}\n`.repeat(Math.ceil(MAX_BUNDLE_BYTES / 80));
    expect(() => parseBundle('site', 'api', site.cert + site.key)).not.toThrow();
    rejected(site.cert + padding + site.key, /bytes, more than 65536/);
  });

  test.each(['../etc', '.hidden', '', 'a b', 'x'.repeat(101)])('the name %j', (name) => {
    expect(() => parseBundle('ok', 'api', site.cert + site.key)).not.toThrow();
    rejected(site.cert + site.key, /not a valid certificate name/, name);
  });

  test('garbage and a key without certificate', () => {
    rejected('hello, world\n', /no "BEGIN CERTIFICATE" block/);
    rejected(site.key, /no "BEGIN CERTIFICATE" block/);
  });

  test('a missing key, or two', () => {
    const other = selfSigned('/CN=other.example.com', 'DNS:other.example.com');
    rejected(site.cert, /no private key/);
    rejected(site.cert + site.key + other.key, /2 private keys/);
  });

  test('an encrypted key, PKCS#8 or traditional', () => {
    openssl('pkey', '-in', site.keyFile, '-aes256', '-passout', 'pass:secret', '-out', 'enc8.pem');
    rejected(site.cert + read('enc8.pem'), /encrypted private key; decrypt it/);
    const rsa = selfSigned('/CN=rsa.example.com', 'DNS:rsa.example.com', ['-newkey', 'rsa:2048']);
    openssl('rsa', '-in', rsa.keyFile, '-traditional', '-aes128', '-passout', 'pass:secret', '-out', 'enc-trad.pem');
    expect(() => parseBundle('rsa', 'api', rsa.cert + rsa.key)).not.toThrow();
    rejected(rsa.cert + read('enc-trad.pem'), /encrypted private key/);
  });

  test('blocks that do not parse or do not end', () => {
    rejected(`-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n${site.key}`, /certificate block 1 does not parse/);
    rejected(`${site.cert}-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n`, /private key does not parse/);
    rejected(site.cert + site.key.slice(0, 100), /without its matching END line/);
  });

  test('a key that belongs to none of the certificates', () => {
    const other = selfSigned('/CN=other.example.com', 'DNS:other.example.com');
    rejected(site.cert + other.key, /matches none of its 1 certificate/);
  });

  test('an expired or not yet valid certificate, naming the dates', async () => {
    const now = Date.now();
    const valid = await dated(new Date(now - day), new Date(now + day));
    expect(parseBundle('dated', 'api', valid).names).toEqual(['dated.example.com']);
    const expired = await dated(new Date(now - 10 * day), new Date(Date.UTC(2020, 0, 2)));
    rejected(expired, /expired on 2020-01-02T00:00:00.000Z.*renew it/);
    const future = await dated(new Date(Date.UTC(2099, 0, 1)), new Date(Date.UTC(2100, 0, 1)));
    rejected(future, /not valid before 2099-01-01T00:00:00.000Z/);
    // The same certificate is accepted at a moment it is valid.
    expect(() => parseBundle('future', 'api', future, new Date(Date.UTC(2099, 5, 1)))).not.toThrow();
  });

  test('a certificate naming no host', () => {
    const person = selfSigned('/CN=My Server', 'IP:10.0.0.1,email:admin@example.com');
    rejected(person.cert + person.key, /names no host/);
    const ipCn = selfSigned('/CN=10.0.0.1');
    rejected(ipCn.cert + ipCn.key, /names no host/);
  });
});
