/**
 * Access logs: one JSON line per answered request, with the same fields on both data planes
 * (docs/access-log.md). Off by default. Lines are buffered and written asynchronously by
 * sonic-boom (pino's writer), so a slow disk delays lines, not requests.
 */
import sonicBoom from 'sonic-boom';
import type { SonicBoom } from 'sonic-boom';

export interface AccessRecord {
  /** When the request arrived, in epoch milliseconds. */
  readonly time: number;
  readonly client: string;
  readonly method: string;
  /** The Host header, '-' when the request had none. */
  readonly host: string;
  /** The request path without its query string (which may carry secrets). */
  readonly path: string;
  /** The service that answered; undefined when the proxy answered itself (no route, redirect, refusal). */
  readonly service: string | undefined;
  /** -1 when no response was sent (the client left first), as HAProxy logs it. */
  readonly status: number;
  readonly durationMs: number;
  /** Bytes received from the client for this request, head included. */
  readonly bytesIn: number;
  /** Bytes sent to the client for this request, head included. */
  readonly bytesOut: number;
}

/**
 * The line for one request. The HAProxy plane has HAProxy write the same object itself
 * (ACCESS_LOG_FORMAT in planes/haproxy/render.ts); the two are compared by tests.
 */
export function accessLine(record: AccessRecord): string {
  const service = record.service === undefined ? 'null' : JSON.stringify(record.service);
  return (
    `{"time":"${new Date(record.time).toISOString()}","client":${JSON.stringify(record.client)},"method":${JSON.stringify(record.method)},` +
    `"host":${JSON.stringify(record.host)},"path":${JSON.stringify(record.path)},"service":${service},"status":${record.status},` +
    `"duration_ms":${Math.round(record.durationMs * 1000) / 1000},"bytes_in":${record.bytesIn},"bytes_out":${record.bytesOut}}\n`
  );
}

/** Where access lines go: the process's standard output, or a file they are appended to. */
export type AccessLogDestination = 'stdout' | { readonly file: string };

export class AccessLog {
  private readonly out: SonicBoom;
  private closed: Promise<void> | undefined;

  constructor(destination: AccessLogDestination) {
    // sonic-boom is CommonJS: Node gives ESM code its module.exports, the class, as the default.
    this.out = new sonicBoom.SonicBoom({
      dest: destination === 'stdout' ? 1 : destination.file,
      append: true,
      mkdir: true,
      minLength: 4096,
      // With light traffic the buffer would take long to fill: lines wait at most a second.
      periodicFlush: 1000,
      sync: false,
    });
  }

  write(record: AccessRecord): void {
    this.out.write(accessLine(record));
  }

  /** A line already in the access-log format, without its newline. */
  writeLine(line: string): void {
    this.out.write(`${line}\n`);
  }

  /** Writes what is buffered and closes the file. */
  close(): Promise<void> {
    this.closed ??= new Promise((resolve) => {
      this.out.once('close', () => resolve());
      this.out.end();
    });
    return this.closed;
  }
}
