/**
 * The route store on a real state directory: a snapshot (routes.json) plus journal files, one
 * line per saved version. What it must guarantee: a reload gives back every saved version, a
 * kill during an append (torn last line) costs nothing acknowledged, outside damage is moved
 * aside and reported, and compaction in the background loses none of the changes appended
 * while it runs.
 */
import { appendFile, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, test } from 'vitest';
import type { RouteTableSnapshot, ServiceEntry } from '../../src/routes/model.js';
import { parseServiceParams } from '../../src/routes/params.js';
import { TableStore } from '../../src/table/store.js';
import type { LoadedTable, RouteChange } from '../../src/table/store.js';
import { tempDir } from '../support/proxy.js';

function entry(name: string, servicePath = `/${name}`, source: ServiceEntry['source'] = 'api'): ServiceEntry {
  const parsed = parseServiceParams({ serviceName: name, servicePath, port: '8080' });
  if (!parsed.ok) throw new Error(parsed.error.message);
  return { service: parsed.service, params: parsed.params, source };
}

/** Saves versions the way the route table does: each the previous one with some changes. */
class Writer {
  snapshot: RouteTableSnapshot = { version: 0, services: new Map() };

  constructor(readonly store: TableStore) {}

  async put(...entries: ServiceEntry[]): Promise<void> {
    await this.change(entries.map((e) => ({ name: e.service.name, after: e })));
  }

  async remove(...names: string[]): Promise<void> {
    await this.change(names.map((name) => ({ name, after: undefined })));
  }

  private async change(edits: { name: string; after: ServiceEntry | undefined }[]): Promise<void> {
    const services = new Map(this.snapshot.services);
    const changes: RouteChange[] = edits.map(({ name, after }) => ({ name, before: services.get(name), after }));
    for (const { name, after } of edits) {
      if (after === undefined) services.delete(name);
      else services.set(name, after);
    }
    const next = { version: this.snapshot.version + 1, services };
    await this.store.save(next, changes);
    this.snapshot = next;
  }
}

async function loaded(stateDir: string): Promise<{ table: LoadedTable; store: TableStore }> {
  const store = new TableStore(stateDir);
  return { table: await store.load(), store };
}

/** name -> stored params, as a reload gives them back. */
function byName(table: LoadedTable): Record<string, unknown> {
  return Object.fromEntries(table.services.map((s) => [s.params.serviceName, { source: s.source, params: s.params }]));
}

function expected(snapshot: RouteTableSnapshot): Record<string, unknown> {
  return Object.fromEntries([...snapshot.services].map(([name, e]) => [name, { source: e.source, params: e.params }]));
}

const journalFiles = async (dir: string) => (await readdir(dir)).filter((n) => /^routes\.journal\.\d+$/.test(n)).sort();

test('every saved version comes back: snapshot plus the journal lines after it', async () => {
  const dir = await tempDir('journal');
  const writer = new Writer(new TableStore(dir));
  await writer.store.load();
  await writer.put(entry('a'), entry('b'));
  await writer.put(entry('c', '/c', 'swarm'));
  await writer.remove('a');
  await writer.put(entry('b', '/b2'));
  const { table } = await loaded(dir);
  expect(table.problem).toBeUndefined();
  expect(table.version).toBe(4);
  expect(byName(table)).toEqual(expected(writer.snapshot));
  // One small line per version; the snapshot was never rewritten.
  const [journal] = await journalFiles(dir);
  const lines = (await readFile(path.join(dir, journal ?? ''), 'utf8')).trim().split('\n');
  expect(lines).toHaveLength(4);
  expect(JSON.parse(lines[2] ?? '')).toEqual({ version: 3, put: [], remove: ['a'] });
  await expect(readFile(path.join(dir, 'routes.json'))).rejects.toThrow(/ENOENT/);
});

test('a state directory written before the journal (routes.json only) loads as before', async () => {
  const dir = await tempDir('journal-legacy');
  const a = entry('a');
  await writeFile(path.join(dir, 'routes.json'), JSON.stringify({ format: 1, version: 7, services: [{ source: 'api', params: a.params }] }, null, 1));
  const writer = new Writer(new TableStore(dir));
  const first = await writer.store.load();
  expect(first.version).toBe(7);
  expect(byName(first)).toEqual({ a: { source: 'api', params: a.params } });
  writer.snapshot = { version: 7, services: new Map([['a', a]]) };
  await writer.put(entry('b'));
  const { table } = await loaded(dir);
  expect(table.version).toBe(8);
  expect(byName(table)).toEqual(expected(writer.snapshot));
});

test('a torn last line (a kill during an append) is ignored, and later saves do not build on it', async () => {
  const dir = await tempDir('journal-torn');
  const writer = new Writer(new TableStore(dir));
  await writer.store.load();
  await writer.put(entry('a'));
  await writer.put(entry('b'));
  const [journal] = await journalFiles(dir);
  await appendFile(path.join(dir, journal ?? ''), '{"version":3,"put":[{"source":"api","par');

  const reopened = new Writer(new TableStore(dir));
  const table = await reopened.store.load();
  expect(table.problem).toBeUndefined();
  expect(table.version).toBe(2);
  expect(byName(table)).toEqual(expected(writer.snapshot));

  reopened.snapshot = writer.snapshot;
  await reopened.put(entry('c'));
  const again = (await loaded(dir)).table;
  expect(again.problem).toBeUndefined();
  expect(again.version).toBe(3);
  expect(Object.keys(byName(again)).sort()).toEqual(['a', 'b', 'c']);
});

test('a corrupt line in the middle is reported and moved aside with the lines after it', async () => {
  const dir = await tempDir('journal-corrupt');
  const writer = new Writer(new TableStore(dir));
  await writer.store.load();
  await writer.put(entry('a'));
  const [journal] = await journalFiles(dir);
  const file = path.join(dir, journal ?? '');
  await appendFile(file, 'not json\n');
  await appendFile(file, `${JSON.stringify({ version: 3, put: [{ source: 'api', params: entry('c').params }], remove: [] })}\n`);

  const { table, store } = await loaded(dir);
  expect(table.problem).toMatch(/routes\.journal\.1 line 2 could not be parsed .*not restored; the file was copied to .*routes\.journal\.1\.unreadable-\d+ and cut before that line/);
  expect(table.version).toBe(1);
  expect(Object.keys(byName(table))).toEqual(['a']);
  // The damaged file is kept whole for inspection; in place, only the lines that were restored.
  const copy = (await readdir(dir)).find((n) => n.startsWith('routes.journal.1.unreadable-'));
  expect(await readFile(path.join(dir, copy ?? ''), 'utf8')).toContain('not json\n');
  expect((await readFile(file, 'utf8')).trim().split('\n')).toHaveLength(1);

  // The store carries on from what it restored.
  const next = new Writer(store);
  next.snapshot = { version: 1, services: new Map([['a', entry('a')]]) };
  await next.put(entry('d'));
  const again = (await loaded(dir)).table;
  expect(again.problem).toBeUndefined();
  expect(Object.keys(byName(again)).sort()).toEqual(['a', 'd']);
});

test('an unreadable snapshot is moved aside with the journal that follows it', async () => {
  const dir = await tempDir('journal-bad-snapshot');
  const writer = new Writer(new TableStore(dir, { compactAfterLines: 2 }));
  await writer.store.load();
  await writer.put(entry('a'));
  await writer.put(entry('b'));
  await writer.store.settled();
  await writer.put(entry('c'));
  await writeFile(path.join(dir, 'routes.json'), '{"format":1,');
  const { table } = await loaded(dir);
  expect(table.problem).toMatch(/routes\.json could not be parsed.*the journal files were moved aside too/);
  expect(table.version).toBe(0);
  expect(await journalFiles(dir)).toEqual([]);
});

test('compaction rewrites the snapshot in the background and loses no change appended while it runs', async () => {
  const dir = await tempDir('journal-compaction');
  const failures: Error[] = [];
  const writer = new Writer(new TableStore(dir, { compactAfterLines: 5, onCompactionFailure: (error) => failures.push(error) }));
  await writer.store.load();
  for (let i = 0; i < 60; i++) {
    // Each fifth save starts a compaction; the next saves are appended while it runs.
    if (i % 7 === 3) await writer.remove(`svc-${i - 2}`);
    else await writer.put(entry(`svc-${i}`, `/p-${i % 11}-${i}`));
  }
  await writer.store.settled();
  expect(failures).toEqual([]);
  const snapshot = JSON.parse(await readFile(path.join(dir, 'routes.json'), 'utf8')) as { format: number; version: number; services: unknown[] };
  expect(snapshot.format).toBe(1);
  expect(snapshot.version).toBeGreaterThan(50);
  // Compaction deleted the journal files its snapshot covers.
  expect((await journalFiles(dir)).length).toBeLessThanOrEqual(2);

  const after = (await loaded(dir)).table;
  expect(after.problem).toBeUndefined();
  expect(after.version).toBe(60);
  expect(byName(after)).toEqual(expected(writer.snapshot));
});

test('a change appended while a compaction writes a large snapshot survives the compaction', async () => {
  const dir = await tempDir('journal-during');
  const failures: Error[] = [];
  const writer = new Writer(new TableStore(dir, { compactAfterLines: 1, onCompactionFailure: (error) => failures.push(error) }));
  await writer.store.load();
  for (let round = 0; round < 4; round++) {
    // This version starts a compaction: some 3,000 services to write and fsync ...
    await writer.put(...Array.from({ length: 3000 }, (_, i) => entry(`svc-${i}`, `/r${round}/svc-${i}`)));
    // ... while this one is appended and acknowledged.
    await writer.put(entry(`during-${round}`));
    await writer.store.settled();
    const { table } = await loaded(dir);
    expect(table.version).toBe(writer.snapshot.version);
    expect(byName(table)[`during-${round}`]).toBeDefined();
    expect(byName(table)).toEqual(expected(writer.snapshot));
  }
  expect(failures).toEqual([]);
  expect(JSON.parse(await readFile(path.join(dir, 'routes.json'), 'utf8'))).toMatchObject({ format: 1, version: 7 });
});

test('a version that does not follow the one on disk is written whole (a table restored from elsewhere)', async () => {
  const dir = await tempDir('journal-whole');
  const writer = new Writer(new TableStore(dir));
  await writer.store.load();
  await writer.put(entry('a'));
  await writer.put(entry('b'));
  const restored: RouteTableSnapshot = { version: 41, services: new Map([['x', entry('x')]]) };
  await writer.store.save({ version: 42, services: new Map([...restored.services, ['y', entry('y')]]) }, [{ name: 'y', before: undefined, after: entry('y') }]);
  expect(await journalFiles(dir)).toEqual([]);
  const { table } = await loaded(dir);
  expect(table.version).toBe(42);
  expect(Object.keys(byName(table)).sort()).toEqual(['x', 'y']);
});
