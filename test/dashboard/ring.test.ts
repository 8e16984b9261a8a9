/** The bounded, numbered logs behind the dashboard's recent changes and problems. */
import { expect, test } from 'vitest';
import { Ring } from '../../src/dashboard/ring.js';

const texts = (ring: Ring<{ text: string }>, since = 0) => ring.since(since).map((entry) => `${entry.seq}:${entry.text}`);

test('keeps entries in order, numbered from 1', () => {
  const ring = new Ring<{ text: string }>(5);
  expect(ring.lastSeq).toBe(0);
  expect(ring.entries()).toEqual([]);
  for (const text of ['a', 'b', 'c']) ring.push({ text });
  expect(texts(ring)).toEqual(['1:a', '2:b', '3:c']);
  expect(ring.lastSeq).toBe(3);
});

test('keeps only the newest `capacity` entries', () => {
  const ring = new Ring<{ text: string }>(3);
  for (let i = 1; i <= 7; i++) ring.push({ text: `e${i}` });
  expect(texts(ring)).toEqual(['5:e5', '6:e6', '7:e7']);
});

test('since(seq) gives what a reader has not seen, even past the wrap-around', () => {
  const ring = new Ring<{ text: string }>(4);
  for (let i = 1; i <= 10; i++) ring.push({ text: `e${i}` });
  expect(texts(ring, 8)).toEqual(['9:e9', '10:e10']);
  expect(texts(ring, 10)).toEqual([]);
  // A reader too far behind gets what is still kept.
  expect(texts(ring, 2)).toEqual(['7:e7', '8:e8', '9:e9', '10:e10']);
});

test('push returns the numbered entry and does not change the one given', () => {
  const ring = new Ring<{ text: string }>(2);
  const given = { text: 'x' };
  expect(ring.push(given)).toEqual({ text: 'x', seq: 1 });
  expect(given).toEqual({ text: 'x' });
});

test('refuses a capacity that is not a positive integer', () => {
  expect(() => new Ring(0)).toThrow(RangeError);
  expect(() => new Ring(1.5)).toThrow(RangeError);
});
