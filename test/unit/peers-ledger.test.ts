/**
 * The ledger of stamps behind replication (src/peers/ledger.ts): it survives a restart, drops a
 * line torn by a crash, compacts itself at start-up, and never gives a stamp below one it saw.
 */
import { appendFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, test } from 'vitest';
import { compareStamps, formatStamp, isStamp, Ledger, parseStamp, TOMBSTONE_DAYS } from '../../src/peers/ledger.js';
import { tempDir } from '../support/proxy.js';

const fail = (error: Error) => {
  throw error;
};

test('stamps survive a restart; a torn last line is dropped and the file is compacted', async () => {
  const dir = await tempDir('ledger');
  const first = await Ledger.open(dir, 'replica-a', fail);
  const at = Date.now() - 60_000;
  await first.record('route:a', { at, by: 'x' }, false);
  await first.record('route:a', { at: at + 20, by: 'y' }, true);
  await first.record('cert:c', { at: at + 15, by: 'x' }, false);
  await first.close();
  await appendFile(path.join(dir, 'replication.jsonl'), '{"key":"route:b","at":3');

  const second = await Ledger.open(dir, 'replica-b', fail);
  expect(second.get('route:a')).toEqual({ stamp: { at: at + 20, by: 'y' }, removed: true });
  expect(second.get('cert:c')).toEqual({ stamp: { at: at + 15, by: 'x' }, removed: false });
  expect(second.get('route:b')).toBeUndefined();
  const lines = (await readFile(path.join(dir, 'replication.jsonl'), 'utf8')).trim().split('\n');
  expect(lines).toHaveLength(2);
  await second.close();
});

test('a fresh stamp is above every stamp seen, even one from a clock ahead of this one', async () => {
  const ledger = await Ledger.open(await tempDir('ledger'), 'replica-a', fail);
  const ahead = Date.now() + 60_000;
  await ledger.record('route:a', { at: ahead, by: 'fast-clock' }, false);
  const fresh = ledger.fresh();
  expect(fresh.at).toBe(ahead + 1);
  expect(fresh.by).toBe('replica-a');
  expect(ledger.fresh().at).toBe(ahead + 2);
  await ledger.close();
});

test('stamps order by time, then by replica id; the header form parses back', () => {
  expect(compareStamps({ at: 1, by: 'b' }, { at: 2, by: 'a' })).toBeLessThan(0);
  expect(compareStamps({ at: 2, by: 'b' }, { at: 2, by: 'a' })).toBeGreaterThan(0);
  expect(compareStamps({ at: 2, by: 'a' }, { at: 2, by: 'a' })).toBe(0);
  const stamp = { at: 1764150000123, by: '6f1c2a4e-1d3b-4c5a-9e8f-0a1b2c3d4e5f' };
  expect(parseStamp(formatStamp(stamp))).toEqual(stamp);
  for (const bad of ['', '12', '@x', '12@', '12@a b', '1.5@x', `12@${'a'.repeat(65)}`]) expect(parseStamp(bad)).toBeUndefined();
  expect(isStamp(0, '')).toBe(true);
  expect(isStamp(stamp.at, stamp.by)).toBe(true);
  for (const [at, by] of [[1, 'a\r\nx'], [1.5, 'a'], ['1', 'a'], [1, 'a'.repeat(65)]]) expect(isStamp(at, by)).toBe(false);
});

test('removals older than TOMBSTONE_DAYS are forgotten at start-up and on demand; live items stay', async () => {
  const dir = await tempDir('ledger');
  const day = 86_400_000;
  const now = Date.now();
  const first = await Ledger.open(dir, 'replica-a', fail);
  await first.record('route:old-removal', { at: now - (TOMBSTONE_DAYS + 1) * day, by: 'x' }, true);
  await first.record('route:old-live', { at: now - (TOMBSTONE_DAYS + 1) * day, by: 'x' }, false);
  await first.record('route:recent-removal', { at: now - day, by: 'x' }, true);
  await first.close();
  const second = await Ledger.open(dir, 'replica-a', fail, now);
  expect(second.get('route:old-removal')).toBeUndefined();
  expect(second.get('route:old-live')?.removed).toBe(false);
  expect(second.get('route:recent-removal')?.removed).toBe(true);
  await second.forgetOldRemovals(now + TOMBSTONE_DAYS * day);
  expect(second.get('route:recent-removal')).toBeUndefined();
  await second.close();
  expect((await readFile(path.join(dir, 'replication.jsonl'), 'utf8')).trim().split('\n')).toHaveLength(1);
});

test('a long-running replica rewrites the file once it holds far more lines than items', async () => {
  const dir = await tempDir('ledger');
  const ledger = await Ledger.open(dir, 'replica-a', fail);
  // Added and removed again and again: the last change (i = 10,009) adds it.
  for (let i = 0; i < 10_010; i++) await ledger.record('route:churned', ledger.fresh(), i % 2 === 0);
  const lines = (await readFile(path.join(dir, 'replication.jsonl'), 'utf8')).trim().split('\n');
  expect(lines.length).toBeLessThan(100);
  await ledger.record('route:after', ledger.fresh(), false);
  await ledger.close();
  const reopened = await Ledger.open(dir, 'replica-b', fail);
  expect(reopened.get('route:churned')?.removed).toBe(false);
  expect(reopened.get('route:after')?.removed).toBe(false);
  await reopened.close();
});
