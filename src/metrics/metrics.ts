/**
 * Prometheus metrics (prom-client), served at /metrics on the API port. The names are the same
 * on both data planes: the built-in plane counts each request as it ends; the HAProxy plane's
 * counters are read from its runtime API (`show stat`) when scraped and carried across reloads,
 * its durations come from its log stream. One registry per proxy, so several proxies in one
 * process (tests) do not mix their figures.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Metric } from 'prom-client';
import type { ChangeResult, ChangeSource } from '../table/table.js';

export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'other'] as const;
export type StatusClass = (typeof STATUS_CLASSES)[number];

/** Index of a status code's class in STATUS_CLASSES (1xx .. 5xx, then other). */
export function statusClassIndex(status: number): number {
  return status >= 100 && status < 600 ? Math.floor(status / 100) - 1 : 5;
}

const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** One service's request durations as a histogram of plain numbers (see TrafficSeries). */
export class DurationSeries {
  /** Observations per DURATION_BUCKETS bound, the last slot for those above every bound. */
  readonly buckets = new Float64Array(DURATION_BUCKETS.length + 1);
  sum = 0;

  took(seconds: number): void {
    let bucket = 0;
    while (bucket < DURATION_BUCKETS.length && seconds > (DURATION_BUCKETS[bucket] as number)) bucket++;
    this.buckets[bucket] = (this.buckets[bucket] ?? 0) + 1;
    this.sum += seconds;
  }
}

/**
 * One destination's traffic as plain numbers. Data planes add to it on every request; nothing on
 * that path hashes a label set (prom-client's `inc`/`observe` do, which cost the built-in plane
 * about 17% of its throughput). The figures reach Prometheus when it scrapes.
 */
export class TrafficSeries {
  /** Responses by STATUS_CLASSES index. */
  readonly responses = new Float64Array(STATUS_CLASSES.length);
  bytesIn = 0;
  bytesOut = 0;

  constructor(
    readonly service: string,
    readonly destination: string,
    /** Shared by the service's destinations: durations are reported per service. */
    readonly durations: DurationSeries,
  ) {}

  answered(status: number): void {
    const i = statusClassIndex(status);
    this.responses[i] = (this.responses[i] ?? 0) + 1;
  }

  get requests(): number {
    let total = 0;
    for (const count of this.responses) total += count;
    return total;
  }
}

type Labels = Record<string, string>;
interface SampleValue {
  readonly value: number;
  readonly labels: Labels;
  readonly metricName?: string;
}

/**
 * A metric whose samples are computed from the traffic series when scraped. It speaks prom-client's
 * metric protocol (`get()` -> name, help, type, values), so the registry renders it like its own.
 */
class SeriesMetric {
  readonly aggregator = 'sum';

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'histogram',
    private readonly samples: () => SampleValue[],
  ) {}

  get(): { name: string; help: string; type: string; aggregator: string; values: SampleValue[] } {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.samples() };
  }

  reset(): void {}
}

/** Per-service sums of the series, in the order services were first seen. */
function byService<T>(series: Iterable<TrafficSeries>, start: () => T, add: (sum: T, one: TrafficSeries) => void): Map<string, T> {
  const sums = new Map<string, T>();
  for (const one of series) {
    let sum = sums.get(one.service);
    if (sum === undefined) sums.set(one.service, (sum = start()));
    add(sum, one);
  }
  return sums;
}

/** What the dashboard shows per service: totals since the proxy started. */
export interface ServiceTraffic {
  readonly service: string;
  readonly requests: number;
  /** 5xx answers. */
  readonly errors: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly series = new Map<string, TrafficSeries>();
  private readonly durationSeries = new Map<string, DurationSeries>();
  readonly connections: Gauge;
  readonly replicas: Gauge<'service' | 'destination'>;
  readonly changes: Counter<'source' | 'result'>;
  readonly changeDuration: Histogram<'source'>;
  readonly reloads: Counter<'result'>;
  readonly reloadDuration: Histogram;
  readonly validationFailures: Counter;
  readonly discoveryEvents: Counter<'source'>;
  readonly certificateExpiry: Gauge<'certificate'>;
  readonly peerReplicas: Gauge<'state'>;
  readonly peerChanges: Counter<'kind' | 'result'>;

  constructor() {
    const registers = [this.registry];
    // The control plane's own process: memory, CPU, event-loop lag (process_*, nodejs_*).
    collectDefaultMetrics({ register: this.registry });
    this.registerSeries('flow_proxy_requests_total', 'Requests answered, by service, destination index and status class', 'counter', () => this.requestSamples());
    this.registerSeries('flow_proxy_request_duration_seconds', 'Time from the request to the end of the response, by service', 'histogram', () => this.durationSamples());
    this.registerSeries('flow_proxy_request_bytes_total', 'Bytes received from clients, by service', 'counter', () => this.byteSamples((one) => one.bytesIn));
    this.registerSeries('flow_proxy_response_bytes_total', 'Bytes sent to clients, by service', 'counter', () => this.byteSamples((one) => one.bytesOut));
    this.connections = new Gauge({ name: 'flow_proxy_connections_active', help: 'Client connections open now', registers });
    this.replicas = new Gauge({ name: 'flow_proxy_backend_replicas', help: 'Replica addresses in rotation, by service and destination', labelNames: ['service', 'destination'], registers });
    this.changes = new Counter({ name: 'flow_proxy_config_changes_total', help: 'Route change requests, by source (api, swarm, bulk) and result', labelNames: ['source', 'result'], registers });
    this.changeDuration = new Histogram({
      name: 'flow_proxy_config_change_duration_seconds',
      help: 'Time from a route change request to its answer (checked, saved and applied), by source',
      labelNames: ['source'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.reloads = new Counter({ name: 'flow_proxy_haproxy_reloads_total', help: 'HAProxy reloads, by result (ok, failed)', labelNames: ['result'], registers });
    this.reloadDuration = new Histogram({ name: 'flow_proxy_haproxy_reload_duration_seconds', help: 'Time a successful HAProxy reload took', buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers });
    this.validationFailures = new Counter({ name: 'flow_proxy_config_validation_failures_total', help: 'Candidate configurations the data plane refused', registers });
    this.discoveryEvents = new Counter({ name: 'flow_proxy_discovery_events_total', help: 'Service events received from discovery sources', labelNames: ['source'], registers });
    this.certificateExpiry = new Gauge({ name: 'flow_proxy_certificate_expiry_timestamp_seconds', help: 'When each certificate served expires (Unix time)', labelNames: ['certificate'], registers });
    this.peerReplicas = new Gauge({ name: 'flow_proxy_peer_replicas', help: 'Other replicas of the proxy found in the last round, by state (reached, unreached)', labelNames: ['state'], registers });
    this.peerChanges = new Counter({
      name: 'flow_proxy_peer_changes_total',
      help: 'Changes taken from other replicas, by kind (route, cert) and result (applied, refused)',
      labelNames: ['kind', 'result'],
      registers,
    });
  }

  private readonly collectors: (() => Promise<void> | void)[] = [];

  /** The series of one service destination, created the first time it is asked for. */
  traffic(service: string, destination: number | string): TrafficSeries {
    const key = `${service}\u0000${destination}`;
    let found = this.series.get(key);
    if (found === undefined) this.series.set(key, (found = new TrafficSeries(service, String(destination), this.durations(service))));
    return found;
  }

  /** The series of one service destination as of the last refresh; undefined when it saw no traffic. */
  trafficSoFar(service: string, destination: number): TrafficSeries | undefined {
    return this.series.get(`${service}\u0000${destination}`);
  }

  /** Replicas in rotation by "SERVICE DESTINATION", as of the last refresh. */
  async replicaCounts(): Promise<Map<string, number>> {
    const { values } = await this.replicas.get();
    return new Map(values.map((v) => [`${v.labels.service} ${v.labels.destination}`, v.value]));
  }

  /** The request durations of one service. */
  durations(service: string): DurationSeries {
    let found = this.durationSeries.get(service);
    if (found === undefined) this.durationSeries.set(service, (found = new DurationSeries()));
    return found;
  }

  /** Totals per service, brought up to date first (the HAProxy plane's are read when asked). */
  async serviceTraffic(): Promise<ServiceTraffic[]> {
    await this.refresh();
    const sums = byService(
      this.series.values(),
      () => ({ requests: 0, errors: 0, bytesIn: 0, bytesOut: 0 }),
      (sum, one) => {
        sum.requests += one.requests;
        sum.errors += one.responses[statusClassIndex(500)] as number;
        sum.bytesIn += one.bytesIn;
        sum.bytesOut += one.bytesOut;
      },
    );
    return [...sums].map(([service, sum]) => ({ service, ...sum }));
  }

  private registerSeries(name: string, help: string, type: 'counter' | 'histogram', samples: () => SampleValue[]): void {
    // prom-client's registry only needs the metric protocol SeriesMetric implements.
    this.registry.registerMetric(new SeriesMetric(name, help, type, samples) as unknown as Metric);
  }

  private requestSamples(): SampleValue[] {
    const samples: SampleValue[] = [];
    for (const one of this.series.values()) {
      STATUS_CLASSES.forEach((code, i) => {
        const value = one.responses[i] as number;
        if (value > 0) samples.push({ value, labels: { service: one.service, destination: one.destination, code } });
      });
    }
    return samples;
  }

  private byteSamples(bytes: (one: TrafficSeries) => number): SampleValue[] {
    const sums = byService(this.series.values(), () => ({ value: 0 }), (sum, one) => (sum.value += bytes(one)));
    return [...sums].map(([service, sum]) => ({ value: sum.value, labels: { service } }));
  }

  private durationSamples(): SampleValue[] {
    const samples: SampleValue[] = [];
    for (const [service, { buckets, sum }] of this.durationSeries) {
      let count = 0;
      if (buckets.every((n) => n === 0)) continue;
      buckets.forEach((n, i) => {
        count += n;
        const le = i < DURATION_BUCKETS.length ? String(DURATION_BUCKETS[i]) : '+Inf';
        samples.push({ metricName: 'flow_proxy_request_duration_seconds_bucket', value: count, labels: { le, service } });
      });
      samples.push({ metricName: 'flow_proxy_request_duration_seconds_sum', value: sum, labels: { service } });
      samples.push({ metricName: 'flow_proxy_request_duration_seconds_count', value: count, labels: { service } });
    }
    return samples;
  }

  /** `collect` runs before each scrape: figures read from elsewhere (HAProxy, the address book) are brought up to date. */
  onScrape(collect: () => Promise<void> | void): void {
    this.collectors.push(collect);
  }

  /** The Prometheus text exposition. */
  async scrape(): Promise<string> {
    await this.refresh();
    return this.registry.metrics();
  }

  /** Brings figures read from elsewhere (HAProxy, the address book) up to date. */
  async refresh(): Promise<void> {
    for (const collect of this.collectors) await collect();
  }

  changeAnswered(source: ChangeSource, result: ChangeResult, seconds: number): void {
    this.changes.inc({ source, result });
    this.changeDuration.observe({ source }, seconds);
  }

  reloaded(ok: boolean, seconds: number): void {
    this.reloads.inc({ result: ok ? 'ok' : 'failed' });
    if (ok) this.reloadDuration.observe(seconds);
  }
}
