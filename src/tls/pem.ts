/**
 * Validation of PEM bundles (certificates and their private key, in any order) from every
 * source. Whatever passes becomes a Certificate (model.ts); whatever fails is refused with a
 * message that says what is wrong and how to fix it.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { CERT_NAME } from './model.js';
import type { Certificate, CertificateSource } from './model.js';

/** A certificate chain and its key fit in a few KiB; this bounds what the API and files can make us parse. */
export const MAX_BUNDLE_BYTES = 64 * 1024;

/** Thrown by parseBundle; the message names the problem and how to fix it. */
export class CertificateRejected extends Error {
  override readonly name = 'CertificateRejected';
}

interface PemBlock {
  readonly label: string;
  /** The block with '\n' line endings, ending with a newline. */
  readonly text: string;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
const HOST_NAME = /^(?:\*\.)?[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;
const KEY_LABELS = new Set(['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY', 'ENCRYPTED PRIVATE KEY']);

export function parseBundle(name: string, source: CertificateSource, pem: string | Buffer, now: Date = new Date()): Certificate {
  const size = typeof pem === 'string' ? Buffer.byteLength(pem) : pem.length;
  if (size > MAX_BUNDLE_BYTES) {
    throw new CertificateRejected(`certificate ${name} is ${size} bytes, more than ${MAX_BUNDLE_BYTES}; send only the certificate, its intermediates and its private key`);
  }
  if (!CERT_NAME.test(name)) {
    throw new CertificateRejected(
      `${JSON.stringify(name.slice(0, 110))} is not a valid certificate name: use up to 100 letters, digits, '.', '_' or '-', not starting with '.'`,
    );
  }
  const blocks = pemBlocks(name, typeof pem === 'string' ? pem : pem.toString('utf8'));
  const certBlocks = blocks.filter((b) => b.label === 'CERTIFICATE');
  const keyBlocks = blocks.filter((b) => KEY_LABELS.has(b.label));
  if (certBlocks.length === 0) {
    throw new CertificateRejected(`certificate ${name} has no "BEGIN CERTIFICATE" block; send a PEM bundle: the certificate, its intermediates and its private key`);
  }
  if (keyBlocks.length === 0) throw new CertificateRejected(`certificate ${name} has no private key; append the certificate's private key (PEM) to the bundle`);
  if (keyBlocks.length > 1) {
    throw new CertificateRejected(`certificate ${name} has ${keyBlocks.length} private keys; keep only the one that belongs to the certificate`);
  }
  const keyBlock = keyBlocks[0] as PemBlock;
  const key = parseKey(name, keyBlock);
  const certs = certBlocks.map((block, index) => {
    try {
      return new X509Certificate(block.text);
    } catch (error) {
      throw new CertificateRejected(`certificate ${name}: certificate block ${index + 1} does not parse (${(error as Error).message}); check that it was copied whole`);
    }
  });
  const leafIndex = certs.findIndex((cert) => cert.checkPrivateKey(key));
  const leaf = certs[leafIndex];
  if (leaf === undefined) {
    throw new CertificateRejected(
      `certificate ${name}: the private key matches none of its ${certs.length} certificate(s); send the key the certificate was issued for`,
    );
  }
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (now < notBefore) {
    throw new CertificateRejected(`certificate ${name} is not valid before ${notBefore.toISOString()} (now ${now.toISOString()}); send it once it is valid or check the clock`);
  }
  if (now > notAfter) {
    throw new CertificateRejected(`certificate ${name} expired on ${notAfter.toISOString()} (now ${now.toISOString()}); renew it`);
  }
  const names = dnsNames(leaf);
  if (names.length === 0) {
    throw new CertificateRejected(
      `certificate ${name} names no host: it has no subjectAltName DNS entry and its CN is not a host name; issue it with subjectAltName DNS:<host name>`,
    );
  }
  const chainPem = [certBlocks[leafIndex] as PemBlock, ...certBlocks.filter((_, i) => i !== leafIndex)].map((b) => b.text).join('');
  return {
    name,
    source,
    names,
    notBefore,
    notAfter,
    subject: leaf.subject,
    issuer: leaf.issuer,
    serialNumber: leaf.serialNumber,
    fingerprint256: leaf.fingerprint256,
    chainPem,
    keyPem: keyBlock.text,
    bundlePem: chainPem + keyBlock.text,
  };
}

function pemBlocks(name: string, text: string): PemBlock[] {
  const blocks = [...text.matchAll(BLOCK)].map((match) => ({
    label: match[1] as string,
    text: `${match[0].replace(/\r\n?/g, '\n')}\n`,
  }));
  const begins = text.match(/-----BEGIN /g)?.length ?? 0;
  if (begins !== blocks.length) {
    throw new CertificateRejected(`certificate ${name} has a PEM block without its matching END line; check that the bundle was copied whole`);
  }
  return blocks;
}

function parseKey(name: string, block: PemBlock): KeyObject {
  if (block.label === 'ENCRYPTED PRIVATE KEY' || /^Proc-Type:.*ENCRYPTED/m.test(block.text)) {
    throw new CertificateRejected(`certificate ${name} has an encrypted private key; decrypt it first: openssl pkey -in key.pem -out key-decrypted.pem`);
  }
  try {
    return createPrivateKey(block.text);
  } catch (error) {
    throw new CertificateRejected(`certificate ${name}: the private key does not parse (${(error as Error).message}); check that it was copied whole`);
  }
}

/** subjectAltName DNS entries, else the CN when it is a host name; lower-case, unique. */
function dnsNames(cert: X509Certificate): string[] {
  const fromSan = (cert.subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4));
  const fromCn = cert.subject
    .split('\n')
    .filter((line) => line.startsWith('CN='))
    .map((line) => line.slice(3));
  const candidates = fromSan.length > 0 ? fromSan : fromCn;
  const names = candidates.map((n) => n.toLowerCase()).filter((n) => n.length <= 253 && HOST_NAME.test(n) && isIP(n) === 0);
  return [...new Set(names)];
}
