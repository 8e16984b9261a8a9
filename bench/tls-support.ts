/** TLS pieces of the benchmarks: a test certificate and a wrk that never resumes TLS sessions. */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { tempDir } from '../test/support/proxy.js';

/** The name the certificate is issued for: wrk sends it as SNI, so it selects the uploaded certificate. */
export const HOST = 'localhost';

export interface TestCertificate {
  readonly certFile: string;
  readonly keyFile: string;
  readonly bundleFile: string;
  readonly certPem: string;
  readonly fingerprint: string;
}

/** One ECDSA P-256 certificate for HOST and 127.0.0.1, self-signed, made by openssl. */
export async function makeCertificate(): Promise<TestCertificate> {
  const dir = await tempDir('bench-https-cert');
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  const bundleFile = path.join(dir, 'bundle.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', `/CN=${HOST}`, '-addext', `subjectAltName=DNS:${HOST},IP:127.0.0.1`, '-keyout', keyFile, '-out', certFile,
  ], { stdio: 'ignore' });
  const certPem = await readFile(certFile, 'utf8');
  await writeFile(bundleFile, certPem + (await readFile(keyFile, 'utf8')));
  return { certFile, keyFile, bundleFile, certPem, fingerprint: new X509Certificate(certPem).fingerprint256 };
}

/**
 * wrk keeps a connection's TLS session for the next one (SSL_clear after a clean shutdown), so it
 * resumes whenever the server let it; this shim forgets the session, making every handshake full.
 */
const NO_RESUMPTION_SHIM = `#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
extern int SSL_set_session(SSL *ssl, SSL_SESSION *session);
int SSL_clear(SSL *ssl) {
  static int (*real)(SSL *);
  if (real == NULL) real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
  int result = real(ssl);
  SSL_set_session(ssl, NULL);
  return result;
}
`;

/** Compiles the shim; wrk run with LD_PRELOAD set to the returned path does a full handshake on every connection. */
export async function buildNoResumptionShim(): Promise<string> {
  const dir = await tempDir('bench-https-shim');
  await writeFile(path.join(dir, 'no-resumption.c'), NO_RESUMPTION_SHIM);
  execFileSync('gcc', ['-shared', '-fPIC', '-O2', '-o', path.join(dir, 'no-resumption.so'), path.join(dir, 'no-resumption.c'), '-ldl']);
  return path.join(dir, 'no-resumption.so');
}

