/**
 * The dashboard's server side with a 10,000-service table: a browser gets everything once on
 * connect, then per sample only the rates of the services it shows plus the busiest few, the
 * table only as a version notice, and changes and problems as they come. Real Dashboard, real
 * route entries; the table, plane and traffic counters are stand-ins the test drives.
 */
import { expect, test } from 'vitest';
import { Dashboard, TOP_SERVICES } from '../../src/dashboard/dashboard.js';
import type { EventSink, Hello, RatesEvent, TableEvent } from '../../src/dashboard/dashboard.js';
import { ProblemLog } from '../../src/dashboard/problems.js';
import type { ServiceTraffic } from '../../src/metrics/metrics.js';
import type { PlaneStatus } from '../../src/planes/plane.js';
import type { RouteTableSnapshot, ServiceEntry } from '../../src/routes/model.js';
import { parseServiceParams } from '../../src/routes/params.js';
import type { OutcomeListener } from '../../src/table/table.js';

const SERVICES = 10_000;

function entry(name: string): ServiceEntry {
  const parsed = parseServiceParams({ serviceName: name, servicePath: `/${name}`, port: '8080' });
  if (!parsed.ok) throw new Error(parsed.error.message);
  return { service: parsed.service, params: parsed.params, source: 'api' };
}

const names = Array.from({ length: SERVICES }, (_, i) => `svc-${String(i).padStart(5, '0')}`);

class Fixture {
  snapshot: RouteTableSnapshot = { version: 1, services: new Map(names.map((name) => [name, entry(name)])) };
  readonly outcomeListeners: OutcomeListener[] = [];
  readonly problems = new ProblemLog();
  /** Requests so far per service; every service has traffic. */
  readonly counts = new Map(names.map((name, i) => [name, i]));
  clock = Date.parse('2026-11-26T10:00:00Z');
  trafficReads = 0;
  readonly dashboard = new Dashboard({
    table: { snapshot: () => this.snapshot, onOutcome: (listener) => this.outcomeListeners.push(listener) },
    plane: { status: (): PlaneStatus => ({ kind: 'builtin', ready: true, version: this.snapshot.version }) },
    traffic: async (): Promise<ServiceTraffic[]> => {
      this.trafficReads++;
      return [...this.counts].map(([service, requests]) => ({ service, requests, errors: Math.floor(requests / 10), bytesIn: 0, bytesOut: 0 }));
    },
    addressesOf: (host) => (host.startsWith('svc-') ? ['10.0.0.7'] : undefined),
    settings: { addressMode: 'vip', maxTasks: 32 },
    problems: this.problems,
    sampleIntervalMs: 3_600_000, // the test samples by calling tick()
    now: () => new Date(this.clock),
  });

  /** One second of traffic: service i gets i more requests, so the busiest are the last ones. */
  async second(): Promise<void> {
    for (const [name, count] of this.counts) this.counts.set(name, count + Number(name.slice(4)));
    this.clock += 1000;
    await this.dashboard.tick();
  }
}

class RecordingSink implements EventSink {
  readonly events: { event: string; data: unknown; bytes: number }[] = [];
  ended = false;

  send(event: string, data: unknown): void {
    this.events.push({ event, data, bytes: JSON.stringify(data).length });
  }

  end(): void {
    this.ended = true;
  }

  take<T>(event: string): T[] {
    const found = this.events.filter((e) => e.event === event).map((e) => e.data as T);
    this.events.length = 0;
    return found;
  }
}

test('on connect: everything but the routes, in one small event', async () => {
  const fixture = new Fixture();
  fixture.outcomeListeners.forEach((listener) => listener('api', 'changed', 0.0123, { services: ['svc-00001'] }));
  fixture.problems.write(JSON.stringify({ level: 40, time: fixture.clock, msg: 'address lookup failed', name: 'svc-00002' }));
  const sink = new RecordingSink();
  const id = fixture.dashboard.open(sink);
  const [hello] = sink.take<Hello>('hello');
  expect(hello).toMatchObject({
    stream: id,
    version: 1,
    services: SERVICES,
    plane: { kind: 'builtin', ready: true, version: 1, lastError: null },
    changes: [{ seq: 1, source: 'api', result: 'changed', services: ['svc-00001'], serviceCount: 1, milliseconds: 12.3, at: '2026-11-26T10:00:00.000Z' }],
    problems: [{ seq: 1, level: 'warn', message: 'address lookup failed', details: { name: 'svc-00002' } }],
  });
  expect(JSON.stringify(hello).length).toBeLessThan(2_000);
  fixture.dashboard.stop();
  expect(sink.ended).toBe(true);
});

test('each sample: rates of the page shown and the busiest services only, not of 10,000', async () => {
  const fixture = new Fixture();
  const sink = new RecordingSink();
  const id = fixture.dashboard.open(sink);
  await fixture.dashboard.tick(); // the baseline
  const page = fixture.dashboard.routes({ offset: 100, limit: 50, q: '' }, id);
  expect(page).toMatchObject({ version: 1, services: SERVICES, total: SERVICES, offset: 100, limit: 50 });
  expect(page.rows.map((row) => row.service)).toEqual(names.slice(100, 150));
  expect(page.rows[0]).toMatchObject({ replicas: ['10.0.0.7'], replicaCount: 1, rate: { requests: 0, errors: 0 } });
  sink.take('hello');

  await fixture.second();
  const [rates] = sink.take<RatesEvent>('rates');
  expect(rates?.services.map((r) => r.service)).toEqual(names.slice(100, 150));
  expect(rates?.services[0]).toEqual({ service: 'svc-00100', requests: 100, errors: 10 });
  expect(rates?.top.map((r) => r.service)).toEqual(names.slice(-TOP_SERVICES).reverse());
  expect(rates?.top[0]?.history?.requests.at(-1)).toBe(9_999); // new to this browser: with its history
  expect(rates?.total.requests).toBe((SERVICES * (SERVICES - 1)) / 2);
  expect(JSON.stringify(rates).length).toBeLessThan(10_000);

  await fixture.second();
  const [next] = sink.take<RatesEvent>('rates');
  expect(next?.top.every((r) => r.history === undefined)).toBe(true); // the browser has them already
  expect(JSON.stringify(next).length).toBeLessThan(4_000);

  // The page's rows now carry their history for the sparklines.
  const again = fixture.dashboard.routes({ offset: 100, limit: 2, q: '' }, id);
  expect(again.rows[1]).toMatchObject({ service: 'svc-00101', rate: { requests: 101, errors: 10 } });
  expect(again.rows[1]?.history?.requests.slice(-2)).toEqual([101, 101]);
  fixture.dashboard.stop();
});

test('the table is announced by version only; changes and problems arrive as deltas', async () => {
  const fixture = new Fixture();
  const sink = new RecordingSink();
  fixture.dashboard.open(sink);
  await fixture.dashboard.tick();
  sink.take('hello');

  await fixture.second();
  expect(sink.events.map((e) => e.event)).toEqual(['rates']);
  sink.take('rates');

  const services = new Map(fixture.snapshot.services);
  services.set('added', entry('added'));
  fixture.snapshot = { version: 2, services };
  fixture.outcomeListeners.forEach((listener) => listener('bulk', 'refused', 0.5, { services: names, message: 'svc-00003: conflict' }));
  fixture.problems.write(JSON.stringify({ level: 50, time: fixture.clock, msg: 'change not persisted', reason: 'disk full' }));
  await fixture.second();
  const table = sink.events.find((e) => e.event === 'table');
  expect(table?.data as TableEvent).toEqual({ version: 2, services: SERVICES + 1 });
  expect(table?.bytes).toBeLessThan(100);
  const changes = sink.events.find((e) => e.event === 'changes')?.data;
  expect(changes).toEqual([
    { seq: 1, at: '2026-11-26T10:00:01.000Z', source: 'bulk', result: 'refused', milliseconds: 500, services: names.slice(0, 10), serviceCount: SERVICES, message: 'svc-00003: conflict' },
  ]);
  expect(sink.events.find((e) => e.event === 'problems')?.data).toMatchObject([{ seq: 1, level: 'error', message: 'change not persisted', details: { reason: 'disk full' } }]);
  expect(sink.events.find((e) => e.event === 'plane')?.data).toMatchObject({ version: 2 });
  sink.events.length = 0;

  await fixture.second();
  expect(sink.events.map((e) => e.event)).toEqual(['rates']); // nothing new: nothing else sent
  fixture.dashboard.stop();
});

test('no browser, no sampling: closing the last stream stops it and forgets the samples', async () => {
  const fixture = new Fixture();
  const first = new RecordingSink();
  const id = fixture.dashboard.open(first);
  await fixture.dashboard.tick();
  await fixture.second();
  expect(first.take<RatesEvent>('rates')).toHaveLength(1);
  fixture.dashboard.close(id);
  expect(fixture.dashboard.watchers).toBe(0);

  const second = new RecordingSink();
  fixture.dashboard.open(second);
  await fixture.dashboard.tick(); // a new baseline, not a rate over the time nobody watched
  expect(second.take('rates')).toEqual([]);
  await fixture.second();
  expect(second.take<RatesEvent>('rates')[0]?.services).toEqual([]); // this browser shows no page yet
  fixture.dashboard.stop();
});
