/**
 * Self-signed certificates: the one served when the operator gives no default certificate, so
 * the HTTPS listener always has something to present (and, with other names and dates, the
 * certificates tests need).
 */
import { KeyObject, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

const TEN_YEARS_MS = 10 * 365 * 24 * 3600 * 1000;

export interface SelfSignedOptions {
  readonly commonName?: string;
  /** DNS names in the subjectAltName; default: the common name. None: no subjectAltName at all. */
  readonly names?: readonly string[];
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

export async function generateSelfSigned(options: SelfSignedOptions = {}): Promise<{ chainPem: string; keyPem: string }> {
  const commonName = options.commonName ?? 'flow-proxy.invalid';
  const names = options.names ?? [commonName];
  const crypto = webcrypto as unknown as Crypto;
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await crypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const serial = randomBytes(16);
  serial[0] = (serial[0] as number) & 0x7f; // a positive serial number
  // Back-dated an hour so that a client with a slightly late clock accepts it too.
  const notBefore = options.notBefore ?? new Date(Date.now() - 3600 * 1000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial.toString('hex'),
      name: `CN=${commonName}`,
      notBefore,
      notAfter: options.notAfter ?? new Date(notBefore.getTime() + TEN_YEARS_MS),
      signingAlgorithm: algorithm,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        ...(names.length === 0 ? [] : [new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: 'dns' as const, value })))]),
      ],
    },
    crypto,
  );
  const keyPem = KeyObject.from(keys.privateKey as webcrypto.CryptoKey).export({ type: 'pkcs8', format: 'pem' }) as string;
  return { chainPem: `${cert.toString('pem').replace(/\r\n/g, '\n').trimEnd()}\n`, keyPem };
}
