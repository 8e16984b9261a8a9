/**
 * The TLS model shared by the certificate sources (directory, Docker secrets, API, ACME), the
 * certificate table and every data plane. A Certificate has passed validation (pem.ts): its
 * chain parses, its key matches, it is valid now and names at least one host. Its name is safe
 * to use as a file name and in HAProxy configuration.
 */

export type CertificateSource = 'dir' | 'secret' | 'api' | 'acme' | 'generated';

export interface Certificate {
  /** Unique in a set; matches CERT_NAME below. The name `default` makes it the default certificate. */
  readonly name: string;
  readonly source: CertificateSource;
  /** Lower-case DNS names it serves (subjectAltName DNS entries, the CN when there is none); `*.x` for wildcards. */
  readonly names: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subject: string;
  readonly issuer: string;
  readonly serialNumber: string;
  readonly fingerprint256: string;
  /** Certificates only, leaf first, PEM. Safe to show. */
  readonly chainPem: string;
  /** The private key, PEM. Never returned by the API or logged. */
  readonly keyPem: string;
  /** chainPem + keyPem: the bundle HAProxy loads. */
  readonly bundlePem: string;
}

/** Certificate names: letters, digits, '.', '_' and '-', not starting with '.' (they become file names). */
export const CERT_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/;

/** Name of the operator's default certificate, from any source. */
export const DEFAULT_CERT_NAME = 'default';

/** An immutable version of every certificate the proxy serves, as handed to data planes. */
export interface CertificateSet {
  readonly version: number;
  /** Every certificate by name, the default one included. */
  readonly certificates: ReadonlyMap<string, Certificate>;
  /** Served to clients without SNI and to names no certificate covers. */
  readonly defaultCertificate: Certificate;
}

/** TLS settings of the HTTPS listener, validated (settings.ts). */
export interface TlsSettings {
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  readonly maxVersion: 'TLSv1.2' | 'TLSv1.3';
  /** OpenSSL cipher list for TLS 1.2 (Mozilla intermediate by default). */
  readonly ciphers: string;
  /** TLS 1.3 cipher suites. */
  readonly cipherSuites: string;
  /** The server's cipher order wins over the client's. */
  readonly preferServerCiphers: boolean;
  readonly sessionTickets: boolean;
  /** Offer HTTP/2 by ALPN (ENABLE_H2). */
  readonly http2: boolean;
}
