/**
 * HAProxy's access lines, read from its standard output. HAProxy writes each line in the
 * access-log format itself (ACCESS_LOG_FORMAT in render.ts), so the control plane only picks
 * the service and duration out of it for the request-duration histogram (HAProxy's statistics
 * keep averages only) and passes the line on unchanged.
 */

/** How every access line starts, so nothing else HAProxy prints is taken for one. */
export const ACCESS_LINE_START = '{"time":"';

export interface AnsweredRequest {
  /** undefined when the proxy answered itself (no route, redirect). */
  readonly service: string | undefined;
  readonly durationMs: number;
}

const SERVICE_FIELD = ',"service":';
const DURATION_FIELD = ',"duration_ms":';

/** The service and duration of an access line, or undefined for any other output line. */
export function scanAccessLine(line: string): AnsweredRequest | undefined {
  if (!line.startsWith(ACCESS_LINE_START) || !line.endsWith('}')) return undefined;
  // Searched from the end: the fields before them (host, path) hold client-chosen text, which
  // HAProxy's json converter escapes, so they cannot contain these markers' quotes unescaped.
  const service = line.lastIndexOf(SERVICE_FIELD);
  const duration = line.lastIndexOf(DURATION_FIELD);
  if (service === -1 || duration < service) return undefined;
  const serviceStart = service + SERVICE_FIELD.length;
  const serviceEnd = line.indexOf(',', serviceStart);
  const durationStart = duration + DURATION_FIELD.length;
  const durationMs = Number(line.slice(durationStart, line.indexOf(',', durationStart)));
  return {
    service: line.charCodeAt(serviceStart) === 34 /* " */ ? line.slice(serviceStart + 1, serviceEnd - 1) : undefined,
    durationMs: Number.isFinite(durationMs) && durationMs > 0 ? durationMs : 0,
  };
}

/** Splits a stream's chunks into lines, keeping a line cut between two chunks whole. */
export class LineSplitter {
  private rest = '';

  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: string): void {
    const lines = (this.rest + chunk).split('\n');
    this.rest = lines.pop() ?? '';
    for (const line of lines) this.onLine(line);
  }
}
