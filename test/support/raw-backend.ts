/**
 * A backend that answers with exactly the bytes a test gives, malformed or not, for cases a
 * real HTTP server library would never produce. It records every request head it receives.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface RawBackend {
  readonly port: number;
  /** Request heads received, in order (request line and headers). */
  readonly requests: string[];
  /** Connections the backend accepted. */
  readonly connections: net.Socket[];
  close(): Promise<void>;
}

/** `answer` is called for each request head; the body of a request is read and ignored. */
export async function startRawBackend(
  answer: (socket: net.Socket, head: string, index: number) => void,
  options: { address?: string; port?: number } = {},
): Promise<RawBackend> {
  const requests: string[] = [];
  const connections: net.Socket[] = [];
  const server = net.createServer((socket) => {
    connections.push(socket);
    socket.on('error', () => undefined);
    let buffered = Buffer.alloc(0);
    let skip = 0;
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        if (skip > 0) {
          const dropped = Math.min(skip, buffered.length);
          skip -= dropped;
          buffered = buffered.subarray(dropped);
          if (skip > 0) return;
        }
        const end = buffered.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = buffered.toString('latin1', 0, end);
        buffered = buffered.subarray(end + 4);
        skip = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        requests.push(head);
        answer(socket, head, requests.length - 1);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.address ?? '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of connections) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A complete response with a content-length, keep-alive. */
export function okResponse(body: string, extraHeaders = ''): string {
  return `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n${extraHeaders}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}
