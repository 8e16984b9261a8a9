/** Real TLS clients for tests: which certificate a server presents, and HTTPS over HTTP/1.1 or HTTP/2. */
import http2 from 'node:http2';
import https from 'node:https';
import tls from 'node:tls';
import type { ClientResponse } from './http-client.js';

/** The SHA-256 fingerprint of the certificate served on `host`:`port` for `servername` (undefined: no SNI). */
export function presentedCertificate(port: number, servername: string | undefined, host = '127.0.0.1'): Promise<{ fingerprint256: string; protocol: string | null; alpn: string | false | null }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'], ...(servername === undefined ? {} : { servername }) }, () => {
      const peer = socket.getPeerCertificate();
      resolve({ fingerprint256: peer.fingerprint256, protocol: socket.getProtocol(), alpn: socket.alpnProtocol });
      socket.end();
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('TLS handshake timed out')));
    socket.on('error', reject);
  });
}

export interface HttpsOptions {
  readonly servername?: string;
  readonly host?: string;
  readonly method?: string;
  readonly agent?: https.Agent | false;
}

/** HTTPS over HTTP/1.1 (ALPN http/1.1 only), certificate not verified. */
export function httpsRequest(port: number, path: string, options: HttpsOptions = {}): Promise<ClientResponse> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: options.method ?? 'GET',
        servername: options.servername ?? '',
        rejectUnauthorized: false,
        agent: options.agent ?? false,
        headers: options.host === undefined ? {} : { host: options.host },
        timeout: 15_000,
      },
      (res) => collect(res.statusCode ?? 0, res.headers, res, resolve, reject),
    );
    req.on('timeout', () => req.destroy(new Error(`request to ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** One request over HTTP/2 (ALPN h2); fails if the server does not negotiate h2. */
export function http2Request(port: number, path: string, options: { servername?: string; authority?: string; method?: string; body?: string } = {}): Promise<ClientResponse> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://${options.authority ?? '127.0.0.1'}:${port}`, {
      host: '127.0.0.1',
      port,
      rejectUnauthorized: false,
      ...(options.servername === undefined ? {} : { servername: options.servername }),
    } as http2.SecureClientSessionOptions);
    session.on('error', reject);
    const stream = session.request({ ':path': path, ':method': options.method ?? 'GET' });
    stream.on('response', (headers) => {
      collect(Number(headers[':status']), headers as Record<string, string>, stream, (response) => {
        session.close();
        resolve(response);
      }, reject);
    });
    stream.on('error', reject);
    stream.end(options.body);
  });
}

function collect(
  status: number,
  headers: NodeJS.Dict<string | string[]>,
  body: NodeJS.ReadableStream,
  resolve: (response: ClientResponse) => void,
  reject: (error: Error) => void,
): void {
  const chunks: Buffer[] = [];
  body.on('data', (chunk: Buffer) => chunks.push(chunk));
  body.on('error', reject);
  body.on('end', () => {
    const data = Buffer.concat(chunks);
    resolve({ status, headers, body: data, text: () => data.toString('utf8'), json: <T>() => JSON.parse(data.toString('utf8')) as T });
  });
}
