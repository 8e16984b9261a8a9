/**
 * Real HTTP backends on loopback. Each answers with a JSON body naming itself, so a test can
 * tell which service and which replica served a request. Replicas of one service share a port
 * on different loopback addresses (127.0.0.2, 127.0.0.3, ...), like Swarm tasks on one network.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface BackendReply {
  readonly backend: string;
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
}

export interface Backend {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly server: http.Server;
  close(): Promise<void>;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, name: string) => void;

export const echoHandler: Handler = (req, res, name) => {
  if (req.url?.endsWith('/hello')) {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('hello, world!\n');
    return;
  }
  const reply: BackendReply = { backend: name, method: req.method ?? '', url: req.url ?? '', headers: req.headers };
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
};

export async function startBackend(name: string, options: { address?: string; port?: number; handler?: Handler } = {}): Promise<Backend> {
  const handler = options.handler ?? echoHandler;
  const server = http.createServer((req, res) => handler(req, res, name));
  server.keepAliveTimeout = 60_000;
  const address = options.address ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, address, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    address,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
