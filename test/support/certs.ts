/**
 * Real X.509 certificates for tests, made on the fly: any names, any validity window, so a test
 * can present exactly the certificate (or the defect) it needs.
 */
import { X509Certificate } from 'node:crypto';
import { generateSelfSigned } from '../../src/tls/self-signed.js';

export interface TestCertificate {
  readonly certPem: string;
  readonly keyPem: string;
  /** Certificate then key, as the API and HAProxy take it. */
  readonly bundle: string;
  readonly fingerprint256: string;
}

const DAY = 24 * 3600 * 1000;

export async function makeCertificate(names: readonly string[], options: { notBefore?: Date; notAfter?: Date; commonName?: string } = {}): Promise<TestCertificate> {
  const { chainPem, keyPem } = await generateSelfSigned({
    commonName: options.commonName ?? names[0] ?? 'no-name',
    names,
    notBefore: options.notBefore ?? new Date(Date.now() - DAY),
    notAfter: options.notAfter ?? new Date(Date.now() + 30 * DAY),
  });
  return { certPem: chainPem, keyPem, bundle: chainPem + keyPem, fingerprint256: new X509Certificate(chainPem).fingerprint256 };
}

export const daysFromNow = (days: number): Date => new Date(Date.now() + days * DAY);
