/**
 * What the built-in plane records when a response ends: the destination's traffic series (plain
 * numbers, read by Prometheus when it scrapes) and, when access logs are on, one access line.
 * Bytes are the client connection's byte counters between two responses on it, so over a
 * connection they add up exactly; with HTTP/2 the streams of one connection share them.
 */
import type http from 'node:http';
import type { AccessLog } from '../../logs/access-log.js';
import { hostOf, originForm, pathOf } from './proxy.js';
import type { Target } from './proxy.js';
import { clientAddressOf } from './proxy-protocol.js';

interface Counted {
  read: number;
  written: number;
}

interface ByteCounters {
  readonly bytesRead: number;
  readonly bytesWritten: number;
}

export class TrafficObserver {
  private readonly counted = new WeakMap<object, Counted>();

  constructor(private readonly accessLog: AccessLog | undefined) {}

  /**
   * Records a response that has ended (or was cut off). `target` is the destination that
   * answered, undefined when the proxy answered itself; `started` is performance.now() at arrival.
   */
  ended(req: http.IncomingMessage, res: http.ServerResponse, target: Target | undefined, started: number): void {
    const durationMs = performance.now() - started;
    let bytesIn = 0;
    let bytesOut = 0;
    const socket = req.socket as unknown as ByteCounters | null;
    if (socket !== null) {
      let last = this.counted.get(socket);
      if (last === undefined) this.counted.set(socket, (last = { read: 0, written: 0 }));
      bytesIn = Math.max(0, socket.bytesRead - last.read);
      bytesOut = Math.max(0, socket.bytesWritten - last.written);
      last.read = socket.bytesRead;
      last.written = socket.bytesWritten;
    }
    if (target !== undefined) {
      const series = target.traffic;
      // A response cut off before its end is counted apart from the answers that were whole.
      series.answered(res.writableFinished ? res.statusCode : 0);
      series.durations.took(durationMs / 1000);
      series.bytesIn += bytesIn;
      series.bytesOut += bytesOut;
    }
    if (this.accessLog !== undefined) {
      this.accessLog.write({
        time: Date.now() - durationMs,
        client: req.socket === undefined ? '' : clientAddressOf(req.socket),
        method: req.method ?? '',
        host: hostOf(req) ?? '-',
        path: pathOf(originForm(req.url ?? '/')),
        service: target?.service.name,
        status: res.headersSent ? res.statusCode : -1,
        durationMs,
        bytesIn,
        bytesOut,
      });
    }
  }
}
