/** Rates from successive since-start totals, the busiest services, and the per-service history. */
import { expect, test } from 'vitest';
import type { ServiceTraffic } from '../../src/metrics/metrics.js';
import { RateHistories, ratesBetween, sumOf, topByRequests, totalsOf } from '../../src/dashboard/rates.js';
import { TrafficSampler } from '../../src/dashboard/sampler.js';

const traffic = (service: string, requests: number, errors = 0): ServiceTraffic => ({ service, requests, errors, bytesIn: 0, bytesOut: 0 });

test('per-second rates between two samples, for services with traffic only', () => {
  const before = totalsOf([traffic('a', 100, 10), traffic('b', 50), traffic('idle', 7)]);
  const rates = ratesBetween(before, [traffic('a', 300, 30), traffic('b', 51), traffic('idle', 7)], 2);
  expect(rates).toEqual([
    { service: 'a', requests: 100, errors: 10 },
    { service: 'b', requests: 0.5, errors: 0 },
  ]);
});

test('a service first seen counts from zero; a counter that went down restarted', () => {
  const before = totalsOf([traffic('restarted', 1000, 40)]);
  const rates = ratesBetween(before, [traffic('restarted', 20, 2), traffic('new', 5, 1)], 1);
  expect(rates).toEqual([
    { service: 'restarted', requests: 20, errors: 2 },
    { service: 'new', requests: 5, errors: 1 },
  ]);
});

test('no rates over no time', () => {
  expect(ratesBetween(new Map(), [traffic('a', 5)], 0)).toEqual([]);
  expect(ratesBetween(new Map(), [traffic('a', 5)], Number.NaN)).toEqual([]);
});

test('the busiest services: most requests, then most errors, then by name', () => {
  const rates = [
    { service: 'c', requests: 5, errors: 0 },
    { service: 'a', requests: 9, errors: 0 },
    { service: 'b', requests: 5, errors: 0 },
    { service: 'd', requests: 5, errors: 2 },
    { service: 'e', requests: 1, errors: 0 },
  ];
  expect(topByRequests(rates, 4).map((r) => r.service)).toEqual(['a', 'd', 'b', 'c']);
  expect(topByRequests(rates, 0)).toEqual([]);
  expect(rates[0]?.service).toBe('c'); // not sorted in place
  expect(sumOf(rates)).toEqual({ requests: 25, errors: 2 });
});

test('history: the last N samples, oldest first, zeros where a service was idle', () => {
  const histories = new RateHistories(4);
  histories.record([{ service: 'a', requests: 1, errors: 0 }]);
  histories.record([]);
  histories.record([{ service: 'a', requests: 3, errors: 1 }, { service: 'b', requests: 2.345, errors: 0 }]);
  expect(histories.of('a')).toEqual({ requests: [0, 1, 0, 3], errors: [0, 0, 0, 1] });
  expect(histories.of('b')).toEqual({ requests: [0, 0, 0, 2.35], errors: [0, 0, 0, 0] });
  histories.record([{ service: 'a', requests: 4, errors: 0 }]);
  histories.record([{ service: 'a', requests: 5, errors: 0 }]);
  expect(histories.of('a')).toEqual({ requests: [0, 3, 4, 5], errors: [0, 1, 0, 0] });
  expect(histories.of('never')).toBeUndefined();
});

test('history: a service idle for a whole window is forgotten', () => {
  const histories = new RateHistories(3);
  histories.record([{ service: 'a', requests: 1, errors: 0 }]);
  histories.record([]);
  histories.record([]);
  expect(histories.size).toBe(1);
  histories.record([]);
  expect(histories.of('a')).toBeUndefined();
  expect(histories.size).toBe(0);
});

test('the sampler: first sample is the baseline, then rates over the time between samples', async () => {
  const samples = [[traffic('a', 10)], [traffic('a', 30, 4)], [traffic('a', 30, 4), traffic('b', 3)]];
  let now = 0;
  const sampler = new TrafficSampler(async () => samples.shift() ?? [], 60, () => now);
  expect(await sampler.sample()).toBe(false);
  expect(sampler.rateOf('a')).toBeUndefined();
  now = 2000;
  expect(await sampler.sample()).toBe(true);
  expect(sampler.rateOf('a')).toEqual({ service: 'a', requests: 10, errors: 2 });
  now = 3000;
  await sampler.sample();
  expect(sampler.rateOf('a')).toBeUndefined(); // idle in the last second
  expect(sampler.rateOf('b')).toEqual({ service: 'b', requests: 3, errors: 0 });
  expect(sampler.top(5).map((r) => r.service)).toEqual(['b']);
  expect(sampler.total()).toEqual({ requests: 3, errors: 0 });
  expect(sampler.historyOf('a')?.requests.slice(-2)).toEqual([10, 0]);
  sampler.reset();
  expect(sampler.historyOf('a')).toBeUndefined();
  expect(sampler.total()).toEqual({ requests: 0, errors: 0 });
});

test('the sampler: a sample read across a reset is dropped, not taken as the next baseline', async () => {
  let release: (traffic: ServiceTraffic[]) => void = () => undefined;
  let now = 0;
  const sampler = new TrafficSampler(() => new Promise((resolve) => (release = resolve)), 60, () => now);
  const reading = sampler.sample();
  sampler.reset();
  release([traffic('a', 100)]);
  expect(await reading).toBe(false);
  // The next sample is a fresh baseline: no rate over the time before the reset.
  now = 60_000;
  const next = sampler.sample();
  release([traffic('a', 160)]);
  expect(await next).toBe(false);
  now = 61_000;
  const third = sampler.sample();
  release([traffic('a', 170)]);
  expect(await third).toBe(true);
  expect(sampler.rateOf('a')).toEqual({ service: 'a', requests: 10, errors: 0 });
});
