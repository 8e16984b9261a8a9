/**
 * Prometheus metrics (prom-client), served at /metrics on the API port. The names are the same
 * on both data planes: the built-in plane reports each request as it ends; the HAProxy plane's
 * counters are read from its runtime API (`show stat`) when scraped and carried across reloads.
 * One registry per proxy, so several proxies in one process (tests) do not mix their figures.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ChangeResult, ChangeSource } from '../table/table.js';

/** HTTP status class label: 1xx .. 5xx, or 'other'. */
export function statusClass(status: number): string {
  return status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : 'other';
}

export class Metrics {
  readonly registry = new Registry();
  readonly requests: Counter<'service' | 'destination' | 'code'>;
  readonly duration: Histogram<'service'>;
  readonly bytesIn: Counter<'service'>;
  readonly bytesOut: Counter<'service'>;
  readonly connections: Gauge;
  readonly replicas: Gauge<'service' | 'destination'>;
  readonly changes: Counter<'source' | 'result'>;
  readonly changeDuration: Histogram<'source'>;
  readonly reloads: Counter<'result'>;
  readonly reloadDuration: Histogram;
  readonly validationFailures: Counter;
  readonly discoveryEvents: Counter<'source'>;
  readonly certificateExpiry: Gauge<'certificate'>;

  constructor() {
    const registers = [this.registry];
    // The control plane's own process: memory, CPU, event-loop lag (process_*, nodejs_*).
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({ name: 'flow_proxy_requests_total', help: 'Requests answered, by service, destination index and status class', labelNames: ['service', 'destination', 'code'], registers });
    this.duration = new Histogram({
      name: 'flow_proxy_request_duration_seconds',
      help: 'Time from the request to the end of the response, by service',
      labelNames: ['service'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.bytesIn = new Counter({ name: 'flow_proxy_request_bytes_total', help: 'Bytes received from clients, by service', labelNames: ['service'], registers });
    this.bytesOut = new Counter({ name: 'flow_proxy_response_bytes_total', help: 'Bytes sent to clients, by service', labelNames: ['service'], registers });
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
  }

  private readonly collectors: (() => Promise<void> | void)[] = [];

  /** `collect` runs before each scrape: figures read from elsewhere (HAProxy, the address book) are brought up to date. */
  onScrape(collect: () => Promise<void> | void): void {
    this.collectors.push(collect);
  }

  /** The Prometheus text exposition. */
  async scrape(): Promise<string> {
    for (const collect of this.collectors) await collect();
    return this.registry.metrics();
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
