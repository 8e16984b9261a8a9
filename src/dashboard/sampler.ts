/**
 * Samples the per-service totals once per tick and keeps the rates between the last two samples
 * and a short history of them. The dashboard runs it only while a browser is watching.
 */
import type { ServiceTraffic } from '../metrics/metrics.js';
import { RateHistories, ratesBetween, sumOf, topByRequests, totalsOf } from './rates.js';
import type { History, ServiceRate, Totals } from './rates.js';

export class TrafficSampler {
  private previous: Map<string, Totals> | undefined;
  private previousAt = 0;
  private latest: readonly ServiceRate[] = [];
  private latestByService = new Map<string, ServiceRate>();
  private readonly histories: RateHistories;
  private generation = 0;

  constructor(
    private readonly read: () => Promise<readonly ServiceTraffic[]>,
    historyLength: number,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.histories = new RateHistories(historyLength);
  }

  /** Takes one sample. The first after construction or reset() only sets the baseline: false. */
  async sample(): Promise<boolean> {
    const generation = this.generation;
    const current = await this.read();
    if (generation !== this.generation) return false; // reset while reading: belongs to no baseline
    const at = this.clock();
    const previous = this.previous;
    const seconds = (at - this.previousAt) / 1000;
    this.previous = totalsOf(current);
    this.previousAt = at;
    if (previous === undefined) return false;
    this.latest = ratesBetween(previous, current, seconds);
    this.latestByService = new Map(this.latest.map((rate) => [rate.service, rate]));
    this.histories.record(this.latest);
    return true;
  }

  /** Undefined when the service had no traffic between the last two samples. */
  rateOf(service: string): ServiceRate | undefined {
    return this.latestByService.get(service);
  }

  historyOf(service: string): History | undefined {
    return this.histories.of(service);
  }

  top(n: number): ServiceRate[] {
    return topByRequests(this.latest, n);
  }

  total(): Totals {
    return sumOf(this.latest);
  }

  /** Forgets every sample: after a pause the next sample is a new baseline, not a rate over the pause. */
  reset(): void {
    this.generation++;
    this.previous = undefined;
    this.latest = [];
    this.latestByService = new Map();
    this.histories.clear();
  }
}
