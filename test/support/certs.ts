/**
 * Real X.509 certificates for tests, made on the fly: any names, any validity window, so a test
 * can present exactly the certificate (or the defect) it needs.
 */
import { KeyObject, X509Certificate, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

export interface TestCertificate {
  readonly certPem: string;
  readonly keyPem: string;
  /** Certificate then key, as the API and HAProxy take it. */
  readonly bundle: string;
  readonly fingerprint256: string;
}

const crypto = webcrypto as unknown as Crypto;
const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const DAY = 24 * 3600 * 1000;

export async function makeCertificate(names: readonly string[], options: { notBefore?: Date; notAfter?: Date; commonName?: string } = {}): Promise<TestCertificate> {
  const keys = await crypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const serial = randomBytes(12);
  serial[0] = (serial[0] as number) & 0x7f;
  const notBefore = options.notBefore ?? new Date(Date.now() - DAY);
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial.toString('hex'),
      name: `CN=${options.commonName ?? names[0] ?? 'no-name'}`,
      notBefore,
      notAfter: options.notAfter ?? new Date(Date.now() + 30 * DAY),
      signingAlgorithm: algorithm,
      keys,
      extensions: names.length === 0 ? [] : [new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: 'dns' as const, value })))],
    },
    crypto,
  );
  const certPem = `${cert.toString('pem').replace(/\r\n/g, '\n').trimEnd()}\n`;
  const keyPem = KeyObject.from(keys.privateKey as webcrypto.CryptoKey).export({ type: 'pkcs8', format: 'pem' }) as string;
  return { certPem, keyPem, bundle: certPem + keyPem, fingerprint256: new X509Certificate(certPem).fingerprint256 };
}

export const daysFromNow = (days: number): Date => new Date(Date.now() + days * DAY);
