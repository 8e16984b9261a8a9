/**
 * HAProxy's statistics, read from the runtime API's `show stat` (CSV with a header line), and
 * turned into counters that keep growing across reloads and spare reassignments: HAProxy's own
 * counters restart with each worker and belong to a backend, not to a service.
 */
import { STATUS_CLASSES } from '../../metrics/metrics.js';
import type { Metrics } from '../../metrics/metrics.js';

export interface ProxyCounters {
  /** hrsp_1xx .. hrsp_5xx, hrsp_other, by status class (1xx .. 5xx, other). */
  readonly responses: Readonly<Record<string, number>>;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Sessions open now. */
  readonly current: number;
}

const CLASSES = STATUS_CLASSES;

/** `show stat` -> counters by proxy name, for the BACKEND and FRONTEND lines. */
export function parseShowStat(csv: string): Map<string, ProxyCounters> {
  const lines = csv.split('\n');
  const header = (lines[0] ?? '').replace(/^# /, '').split(',');
  const column = (name: string) => header.indexOf(name);
  const at = { name: column('pxname'), kind: column('svname'), bin: column('bin'), bout: column('bout'), scur: column('scur') };
  const classColumns = CLASSES.map((c) => column(`hrsp_${c}`));
  const found = new Map<string, ProxyCounters>();
  for (const line of lines.slice(1)) {
    const fields = line.split(',');
    const kind = fields[at.kind];
    if (kind !== 'BACKEND' && kind !== 'FRONTEND') continue;
    const number = (index: number) => Number(fields[index] ?? 0) || 0;
    const responses: Record<string, number> = {};
    CLASSES.forEach((c, i) => (responses[c] = number(classColumns[i] ?? -1)));
    found.set(`${kind === 'FRONTEND' ? 'frontend:' : ''}${fields[at.name] ?? ''}`, { responses, bytesIn: number(at.bin), bytesOut: number(at.bout), current: number(at.scur) });
  }
  return found;
}

/** Where a backend's traffic is counted: the service and destination it serves. */
export interface Served {
  readonly service: string;
  readonly destination: number;
}

/** Adds what each backend answered since it was last seen to the Prometheus counters of the service it serves. */
export class TrafficCounters {
  private seen = new Map<string, ProxyCounters>();

  constructor(private readonly metrics: Metrics) {}

  record(stats: ReadonlyMap<string, ProxyCounters>, servedBy: (backend: string) => Served | undefined): void {
    for (const [name, now] of stats) {
      if (name.startsWith('frontend:')) continue;
      const before = this.seen.get(name);
      this.seen.set(name, now);
      const served = servedBy(name);
      if (served === undefined) continue;
      const series = this.metrics.traffic(served.service, served.destination);
      // A counter below what was seen means HAProxy started counting again: all of it is new.
      const delta = (a: number, b: number | undefined) => (b === undefined || a < b ? a : a - b);
      CLASSES.forEach((c, i) => {
        series.responses[i] = (series.responses[i] as number) + delta(now.responses[c] ?? 0, before?.responses[c]);
      });
      series.bytesIn += delta(now.bytesIn, before?.bytesIn);
      series.bytesOut += delta(now.bytesOut, before?.bytesOut);
    }
  }

  /** A new worker counts from zero. */
  restarted(): void {
    this.seen = new Map();
  }
}
