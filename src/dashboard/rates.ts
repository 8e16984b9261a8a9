/**
 * Request and error rates per service, computed from successive samples of the since-start
 * totals that the metrics keep (Metrics.serviceTraffic), and a short history of them per service.
 */
import type { ServiceTraffic } from '../metrics/metrics.js';

export interface Totals {
  readonly requests: number;
  /** 5xx answers. */
  readonly errors: number;
}

/** Requests and 5xx answers per second. */
export interface ServiceRate extends Totals {
  readonly service: string;
}

export function totalsOf(traffic: readonly ServiceTraffic[]): Map<string, Totals> {
  return new Map(traffic.map(({ service, requests, errors }) => [service, { requests, errors }]));
}

/** A counter lower than before was restarted: everything it holds is new, as in Prometheus's rate(). */
function increase(before: number, now: number): number {
  return now >= before ? now - before : now;
}

/**
 * Per-second rates between two samples taken `seconds` apart, for the services with traffic in
 * between only (the others are at zero). A service absent from `previous` started from zero.
 */
export function ratesBetween(previous: ReadonlyMap<string, Totals>, current: readonly ServiceTraffic[], seconds: number): ServiceRate[] {
  if (!(seconds > 0)) return [];
  const rates: ServiceRate[] = [];
  for (const now of current) {
    const before = previous.get(now.service);
    const requests = increase(before?.requests ?? 0, now.requests);
    const errors = increase(before?.errors ?? 0, now.errors);
    if (requests === 0 && errors === 0) continue;
    rates.push({ service: now.service, requests: requests / seconds, errors: errors / seconds });
  }
  return rates;
}

/** The `n` busiest services: most requests, then most errors, then by name so the order is stable. */
export function topByRequests(rates: readonly ServiceRate[], n: number): ServiceRate[] {
  return [...rates]
    .sort((a, b) => b.requests - a.requests || b.errors - a.errors || (a.service < b.service ? -1 : a.service > b.service ? 1 : 0))
    .slice(0, Math.max(0, n));
}

export function sumOf(rates: readonly ServiceRate[]): Totals {
  let requests = 0;
  let errors = 0;
  for (const rate of rates) {
    requests += rate.requests;
    errors += rate.errors;
  }
  return { requests, errors };
}

/** Rates as sent to browsers: two decimals are plenty for a chart and keep the events small. */
export function rounded(value: number): number {
  return Math.round(value * 100) / 100;
}

/** Oldest first, one value per sample. */
export interface History {
  readonly requests: readonly number[];
  readonly errors: readonly number[];
}

interface Window {
  readonly requests: Float64Array;
  readonly errors: Float64Array;
  /** The last sample with traffic. */
  lastActive: number;
}

/**
 * The last `length` samples of every service that had traffic within them. A service idle for a
 * whole window is forgotten, so the memory follows the busy services, not the size of the table.
 */
export class RateHistories {
  private readonly windows = new Map<string, Window>();
  private samples = 0;

  constructor(readonly length: number) {
    if (!Number.isInteger(length) || length < 1) throw new RangeError(`length must be a positive integer, got ${length}`);
  }

  /** One sample: `rates` for the services listed, zero for every other service followed. */
  record(rates: readonly ServiceRate[]): void {
    this.samples++;
    const slot = this.samples % this.length;
    for (const window of this.windows.values()) {
      window.requests[slot] = 0;
      window.errors[slot] = 0;
    }
    for (const rate of rates) {
      let window = this.windows.get(rate.service);
      if (window === undefined) {
        window = { requests: new Float64Array(this.length), errors: new Float64Array(this.length), lastActive: this.samples };
        this.windows.set(rate.service, window);
      }
      window.requests[slot] = rate.requests;
      window.errors[slot] = rate.errors;
      window.lastActive = this.samples;
    }
    for (const [service, window] of this.windows) {
      if (this.samples - window.lastActive >= this.length) this.windows.delete(service);
    }
  }

  /** Undefined when the service had no traffic in the window: all zeros. */
  of(service: string): History | undefined {
    const window = this.windows.get(service);
    if (window === undefined) return undefined;
    const requests: number[] = [];
    const errors: number[] = [];
    for (let age = this.length - 1; age >= 0; age--) {
      const slot = (((this.samples - age) % this.length) + this.length) % this.length;
      requests.push(rounded(window.requests[slot] as number));
      errors.push(rounded(window.errors[slot] as number));
    }
    return { requests, errors };
  }

  /** Services followed now. */
  get size(): number {
    return this.windows.size;
  }

  clear(): void {
    this.windows.clear();
    this.samples = 0;
  }
}
