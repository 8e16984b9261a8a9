/**
 * The built-in plane's share of the Prometheus metrics: each forwarded request is counted when
 * its response ends. Label children are looked up once per target, not per request. Bytes are
 * the client connection's byte counters between two responses on it, so over a connection they
 * add up exactly; with HTTP/2 the streams of one connection share them.
 */
import type http from 'node:http';
import type { Counter, Histogram } from 'prom-client';
import type { Metrics } from '../../metrics/metrics.js';
import { statusClass } from '../../metrics/metrics.js';
import type { Target } from './proxy.js';

interface TargetSeries {
  readonly byClass: Map<string, Counter.Internal>;
  readonly duration: Histogram.Internal<'service'>;
  readonly bytesIn: Counter.Internal;
  readonly bytesOut: Counter.Internal;
}

interface Counted {
  read: number;
  written: number;
}

interface ByteCounters {
  readonly bytesRead: number;
  readonly bytesWritten: number;
}

export class TrafficObserver {
  private readonly series = new WeakMap<Target, TargetSeries>();
  private readonly counted = new WeakMap<object, Counted>();

  constructor(private readonly metrics: Metrics) {}

  /** Counts `res` for `target` once it has ended (or was cut off). */
  observe(req: http.IncomingMessage, res: http.ServerResponse, target: Target): void {
    const started = performance.now();
    res.once('close', () => {
      const series = this.seriesOf(target);
      const code = res.writableFinished ? statusClass(res.statusCode) : 'other';
      let counter = series.byClass.get(code);
      if (counter === undefined) {
        counter = this.metrics.requests.labels(target.service.name, String(target.destination.index), code);
        series.byClass.set(code, counter);
      }
      counter.inc();
      series.duration.observe((performance.now() - started) / 1000);
      const socket = req.socket as unknown as ByteCounters | null;
      if (socket === null) return;
      const last = this.counted.get(socket) ?? { read: 0, written: 0 };
      series.bytesIn.inc(Math.max(0, socket.bytesRead - last.read));
      series.bytesOut.inc(Math.max(0, socket.bytesWritten - last.written));
      last.read = socket.bytesRead;
      last.written = socket.bytesWritten;
      this.counted.set(socket, last);
    });
  }

  private seriesOf(target: Target): TargetSeries {
    let found = this.series.get(target);
    if (found === undefined) {
      const service = target.service.name;
      found = {
        byClass: new Map(),
        duration: this.metrics.duration.labels(service),
        bytesIn: this.metrics.bytesIn.labels(service),
        bytesOut: this.metrics.bytesOut.labels(service),
      };
      this.series.set(target, found);
    }
    return found;
  }
}
