/**
 * What the dashboard shows, kept on the server: recent configuration changes, the problem log,
 * traffic rates (sampled once a second while a browser watches), and the route table a page at a
 * time. Browsers get it over server-sent events: everything once on connect, then each second
 * only what changed and the rates of the services they show (see docs/dashboard.md).
 */
import { randomUUID } from 'node:crypto';
import type { ServiceTraffic } from '../metrics/metrics.js';
import type { DataPlane, PlaneKind } from '../planes/plane.js';
import type { Settings } from '../settings/settings.js';
import type { ChangeDetail, ChangeResult, ChangeSource, RouteTable } from '../table/table.js';
import type { LoggedProblem, ProblemLog } from './problems.js';
import type { History, ServiceRate, Totals } from './rates.js';
import { rounded } from './rates.js';
import { Ring } from './ring.js';
import type { Numbered } from './ring.js';
import { describeRoute, selectPage } from './routes-page.js';
import type { RouteQuery, RouteRow } from './routes-page.js';
import { TrafficSampler } from './sampler.js';

export const CHANGES_KEPT = 100;
/** The busiest services, sent with every sample whatever page a browser shows. */
export const TOP_SERVICES = 5;
/** Samples per sparkline: a minute at one sample a second. */
export const HISTORY_SAMPLES = 60;
const SAMPLE_INTERVAL_MS = 1000;
const SERVICES_NAMED_PER_CHANGE = 10;
const MAX_MESSAGE_LENGTH = 300;

export interface ChangeRecord {
  /** ISO 8601, when the change was answered. */
  readonly at: string;
  readonly source: ChangeSource;
  readonly result: ChangeResult;
  readonly milliseconds: number;
  /** The first services the change named; serviceCount says how many it named. */
  readonly services: readonly string[];
  readonly serviceCount: number;
  readonly message?: string;
}

export function changeRecord(source: ChangeSource, result: ChangeResult, seconds: number, detail: ChangeDetail, at: Date): ChangeRecord {
  const message = detail.message === undefined ? {} : { message: detail.message.slice(0, MAX_MESSAGE_LENGTH) };
  return {
    at: at.toISOString(),
    source,
    result,
    milliseconds: Math.round(seconds * 10_000) / 10,
    services: detail.services.slice(0, SERVICES_NAMED_PER_CHANGE),
    serviceCount: detail.services.length,
    ...message,
  };
}

export interface PlaneSummary {
  readonly kind: PlaneKind;
  readonly ready: boolean;
  /** Table version the plane serves. */
  readonly version: number;
  readonly lastError: string | null;
}

export interface RateEntry extends ServiceRate {
  /** Sent when the browser does not have it yet. */
  readonly history?: History;
}

export interface DashboardRow extends RouteRow {
  readonly rate: Totals;
  /** Undefined when the service had no traffic in the last HISTORY_SAMPLES samples. */
  readonly history?: History;
}

export interface RoutesReply {
  /** Table version the page was cut from. */
  readonly version: number;
  /** Services in the table. */
  readonly services: number;
  /** Services that match q. */
  readonly total: number;
  readonly offset: number;
  readonly limit: number;
  readonly q: string;
  readonly rows: readonly DashboardRow[];
}

/** The first event of a stream: everything a browser needs to draw the page but the routes. */
export interface Hello {
  readonly stream: string;
  readonly version: number;
  readonly services: number;
  readonly plane: PlaneSummary;
  readonly sampleSeconds: number;
  readonly historySamples: number;
  readonly total: Totals;
  readonly top: readonly RateEntry[];
  readonly changes: readonly Numbered<ChangeRecord>[];
  readonly problems: readonly Numbered<LoggedProblem>[];
}

/** Sent after each sample. */
export interface RatesEvent {
  readonly at: string;
  readonly total: Totals;
  readonly top: readonly RateEntry[];
  /** Services the browser shows that had traffic; those left out were at zero. */
  readonly services: readonly ServiceRate[];
}

export interface TableEvent {
  readonly version: number;
  readonly services: number;
}

/** One browser's end of the event stream. */
export interface EventSink {
  send(event: 'hello', data: Hello): void;
  send(event: 'rates', data: RatesEvent): void;
  send(event: 'table', data: TableEvent): void;
  send(event: 'plane', data: PlaneSummary): void;
  send(event: 'changes', data: readonly Numbered<ChangeRecord>[]): void;
  send(event: 'problems', data: readonly Numbered<LoggedProblem>[]): void;
  end(): void;
}

interface Stream {
  readonly sink: EventSink;
  /** Services on the page the browser shows. */
  watched: readonly string[];
  version: number;
  plane: string;
  changesSeen: number;
  problemsSeen: number;
  /** Top services whose history the browser has. */
  topSent: ReadonlySet<string>;
}

export interface DashboardSources {
  readonly table: Pick<RouteTable, 'snapshot' | 'onOutcome'>;
  readonly plane: Pick<DataPlane, 'status'>;
  /** Totals per service since start (Metrics.serviceTraffic). */
  readonly traffic: () => Promise<readonly ServiceTraffic[]>;
  /** Addresses in rotation for a backend host name (AddressBook.addresses). */
  readonly addressesOf: (host: string) => readonly string[] | undefined;
  readonly settings: Pick<Settings, 'addressMode' | 'maxTasks'>;
  readonly problems: ProblemLog;
  readonly sampleIntervalMs?: number;
  /** The clock for timestamps and rates (tests); the system clock by default. */
  readonly now?: () => Date;
}

function roundedRate(rate: ServiceRate): ServiceRate {
  return { service: rate.service, requests: rounded(rate.requests), errors: rounded(rate.errors) };
}

function roundedTotals(totals: Totals): Totals {
  return { requests: rounded(totals.requests), errors: rounded(totals.errors) };
}

export class Dashboard {
  readonly changes = new Ring<ChangeRecord>(CHANGES_KEPT);
  private readonly sampler: TrafficSampler;
  private readonly streams = new Map<string, Stream>();
  private timer: NodeJS.Timeout | undefined;
  private sampling: Promise<void> | undefined;
  private readonly now: () => Date;

  constructor(private readonly sources: DashboardSources) {
    this.now = sources.now ?? (() => new Date());
    this.sampler = new TrafficSampler(sources.traffic, HISTORY_SAMPLES, sources.now === undefined ? undefined : () => this.now().getTime());
    sources.table.onOutcome((source, result, seconds, detail) => this.changes.push(changeRecord(source, result, seconds, detail, this.now())));
  }

  /** Browsers connected now. */
  get watchers(): number {
    return this.streams.size;
  }

  /**
   * One page of the route table with each row's rates. With `streamId`, that stream is sent the
   * rates of these services from now on (the page it shows).
   */
  routes(query: RouteQuery, streamId?: string): RoutesReply {
    const snapshot = this.sources.table.snapshot();
    const page = selectPage(snapshot, query);
    const rows = page.entries.map((entry): DashboardRow => {
      const row = describeRoute(entry, this.sources.settings, this.sources.addressesOf);
      const rate = this.sampler.rateOf(row.service);
      const history = this.sampler.historyOf(row.service);
      return { ...row, rate: rate === undefined ? { requests: 0, errors: 0 } : roundedTotals(rate), ...(history === undefined ? {} : { history }) };
    });
    const stream = streamId === undefined ? undefined : this.streams.get(streamId);
    if (stream !== undefined) stream.watched = rows.map((row) => row.service);
    return { version: snapshot.version, services: snapshot.services.size, total: page.total, offset: page.offset, limit: query.limit, q: query.q, rows };
  }

  /** Starts a stream: sends `hello` at once, then updates after each sample. Returns its id. */
  open(sink: EventSink): string {
    const id = randomUUID();
    const snapshot = this.sources.table.snapshot();
    const plane = this.planeSummary();
    const top = this.sampler.top(TOP_SERVICES);
    const stream: Stream = {
      sink,
      watched: [],
      version: snapshot.version,
      plane: JSON.stringify(plane),
      changesSeen: this.changes.lastSeq,
      problemsSeen: this.sources.problems.entries.lastSeq,
      topSent: new Set(top.map((rate) => rate.service)),
    };
    this.streams.set(id, stream);
    sink.send('hello', {
      stream: id,
      version: snapshot.version,
      services: snapshot.services.size,
      plane,
      sampleSeconds: this.intervalMs / 1000,
      historySamples: HISTORY_SAMPLES,
      total: roundedTotals(this.sampler.total()),
      top: top.map((rate) => this.rateEntry(rate, true)),
      changes: this.changes.entries(),
      problems: this.sources.problems.entries.entries(),
    });
    if (this.timer === undefined) {
      this.timer = setInterval(() => void this.tick(), this.intervalMs);
      this.timer.unref();
      void this.tick(); // the baseline: rates from the next sample on
    }
    return id;
  }

  close(id: string): void {
    this.streams.delete(id);
    if (this.streams.size > 0 || this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.sampler.reset();
  }

  /** Samples the traffic and sends each stream what is new. A sample still running is not doubled. */
  tick(): Promise<void> {
    this.sampling ??= this.sampleAndSend().finally(() => (this.sampling = undefined));
    return this.sampling;
  }

  stop(): void {
    for (const [id, stream] of this.streams) {
      this.close(id);
      stream.sink.end();
    }
  }

  private get intervalMs(): number {
    return this.sources.sampleIntervalMs ?? SAMPLE_INTERVAL_MS;
  }

  private async sampleAndSend(): Promise<void> {
    // A failed sample (the HAProxy plane restarting) only skips this second's rates.
    const sampled = await this.sampler.sample().catch(() => false);
    const snapshot = this.sources.table.snapshot();
    const plane = this.planeSummary();
    const planeText = JSON.stringify(plane);
    const top = sampled ? this.sampler.top(TOP_SERVICES) : [];
    const total = roundedTotals(this.sampler.total());
    const at = this.now().toISOString();
    for (const stream of this.streams.values()) {
      if (sampled) {
        const services: ServiceRate[] = [];
        for (const name of stream.watched) {
          const rate = this.sampler.rateOf(name);
          if (rate !== undefined) services.push(roundedRate(rate));
        }
        stream.sink.send('rates', { at, total, top: top.map((rate) => this.rateEntry(rate, !stream.topSent.has(rate.service))), services });
        stream.topSent = new Set(top.map((rate) => rate.service));
      }
      if (stream.version !== snapshot.version) {
        stream.version = snapshot.version;
        stream.sink.send('table', { version: snapshot.version, services: snapshot.services.size });
      }
      if (stream.plane !== planeText) {
        stream.plane = planeText;
        stream.sink.send('plane', plane);
      }
      const changes = this.changes.since(stream.changesSeen);
      if (changes.length > 0) stream.sink.send('changes', changes);
      stream.changesSeen = this.changes.lastSeq;
      const problems = this.sources.problems.entries.since(stream.problemsSeen);
      if (problems.length > 0) stream.sink.send('problems', problems);
      stream.problemsSeen = this.sources.problems.entries.lastSeq;
    }
  }

  private rateEntry(rate: ServiceRate, withHistory: boolean): RateEntry {
    const history = withHistory ? this.sampler.historyOf(rate.service) : undefined;
    return { ...roundedRate(rate), ...(history === undefined ? {} : { history }) };
  }

  private planeSummary(): PlaneSummary {
    const status = this.sources.plane.status();
    return { kind: status.kind, ready: status.ready, version: status.version, lastError: status.lastError ?? null };
  }
}
