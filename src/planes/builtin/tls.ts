/**
 * The built-in plane's HTTPS side: one secure context per certificate, chosen by SNI with the
 * rules both planes share (src/tls/sni.ts). A new certificate set is swapped in with one
 * assignment, so a handshake already past its SNI callback keeps the context it was given and
 * open connections are never touched.
 */
import type http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import { constants } from 'node:crypto';
import tls from 'node:tls';
import type { Certificate, CertificateSet, TlsSettings } from '../../tls/model.js';
import { buildSniIndex, selectCertificate } from '../../tls/sni.js';
import type { SniIndex } from '../../tls/sni.js';

export type SecureServer = https.Server | http2.Http2SecureServer;

interface CachedContext {
  readonly fingerprint: string;
  readonly context: tls.SecureContext;
}

/** Options shared by the listener and every per-certificate context: protocol bounds and ciphers. */
export function tlsOptions(settings: TlsSettings): tls.SecureContextOptions & tls.TlsOptions {
  return {
    minVersion: settings.minVersion,
    maxVersion: settings.maxVersion,
    // Node takes TLS 1.3 suites and TLS 1.2 ciphers in one list.
    ciphers: `${settings.cipherSuites}:${settings.ciphers}`,
    honorCipherOrder: settings.preferServerCiphers,
    ...(settings.sessionTickets ? {} : { secureOptions: constants.SSL_OP_NO_TICKET }),
  };
}

export class CertificateContexts {
  private index: SniIndex | undefined;
  private contexts = new Map<string, CachedContext>();
  private readonly servers = new Set<SecureServer>();
  private readonly sockets = new WeakMap<SecureServer, Set<tls.TLSSocket>>();
  private readonly sessions = new WeakMap<SecureServer, Set<http2.ServerHttp2Session>>();

  constructor(private readonly settings: TlsSettings) {}

  /** Builds the contexts of a new set (reusing unchanged ones), then swaps them in at once. */
  update(set: CertificateSet, pins: ReadonlyMap<string, string>): void {
    const contexts = new Map<string, CachedContext>();
    for (const certificate of [set.defaultCertificate, ...set.certificates.values()]) {
      const cached = this.contexts.get(certificate.name);
      contexts.set(
        certificate.name,
        cached !== undefined && cached.fingerprint === certificate.fingerprint256
          ? cached
          : { fingerprint: certificate.fingerprint256, context: this.contextOf(certificate) },
      );
    }
    const defaultChanged = this.contexts.get(set.defaultCertificate.name) !== contexts.get(set.defaultCertificate.name);
    this.index = buildSniIndex(set, pins);
    this.contexts = contexts;
    // Clients without SNI get the server's own context.
    if (defaultChanged) for (const server of this.servers) server.setSecureContext(this.serverOptions(set.defaultCertificate));
  }

  private contextOf(certificate: Certificate): tls.SecureContext {
    return tls.createSecureContext({ ...tlsOptions(this.settings), cert: certificate.chainPem, key: certificate.keyPem });
  }

  private serverOptions(certificate: Certificate): tls.SecureContextOptions {
    return { ...tlsOptions(this.settings), cert: certificate.chainPem, key: certificate.keyPem };
  }

  private contextFor(serverName: string): tls.SecureContext | undefined {
    if (this.index === undefined) return undefined;
    return this.contexts.get(selectCertificate(this.index, serverName).name)?.context;
  }

  /** An HTTPS server (HTTP/2 and HTTP/1.1 by ALPN, or HTTP/1.1 only) serving the current set. */
  createServer(defaultCertificate: Certificate, serverOptions: http.ServerOptions): SecureServer {
    const options = {
      ...this.serverOptions(defaultCertificate),
      // A client that never finishes its handshake is cut off like one that never sends its headers.
      ...(serverOptions.headersTimeout === undefined ? {} : { handshakeTimeout: serverOptions.headersTimeout }),
      SNICallback: (serverName: string, done: (error: Error | null, context?: tls.SecureContext) => void) => done(null, this.contextFor(serverName)),
    };
    const server: SecureServer = this.settings.http2
      ? http2.createSecureServer({ ...options, allowHTTP1: true, settings: { maxConcurrentStreams: 128 } })
      : https.createServer({ ...options, ...serverOptions, ALPNProtocols: ['http/1.1'] });
    this.servers.add(server);
    server.once('close', () => this.servers.delete(server));
    const sockets = new Set<tls.TLSSocket>();
    this.sockets.set(server, sockets);
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    if (!(server instanceof https.Server)) {
      const sessions = new Set<http2.ServerHttp2Session>();
      this.sessions.set(server, sessions);
      server.on('session', (session: http2.ServerHttp2Session) => {
        sessions.add(session);
        session.once('close', () => sessions.delete(session));
      });
    }
    return server;
  }

  /** HTTP/2 sessions get a GOAWAY: streams in flight finish, no new ones start. */
  closeGracefully(server: SecureServer): void {
    for (const session of this.sessions.get(server) ?? []) session.close();
    if (server instanceof https.Server) server.closeIdleConnections();
  }

  destroyConnections(server: SecureServer): void {
    for (const socket of this.sockets.get(server) ?? []) socket.destroy();
  }
}
