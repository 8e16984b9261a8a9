/**
 * Which change of each replicated item (a hand-sent route, a hand-sent certificate) a replica
 * holds, so replicas that saw changes in different orders, or missed some, agree on the result.
 *
 * Every change made through the API gets a stamp: the accepting replica's clock in milliseconds
 * (never below a stamp it has already seen, plus one) and that replica's id. A replica keeps, per
 * item, the change with the highest stamp; equal stamps (only possible for items that predate
 * stamps, which all get stamp zero) are ordered by their content (replication.ts). The newest write wins
 * everywhere, whatever order the changes arrive in. A removal is a change too (a tombstone), so
 * a replica that missed it does not bring the item back.
 *
 * The stamps are kept in the state directory (`replication.jsonl`, one line per change, compacted
 * at start-up); the items themselves are in the route table and certificate store as before.
 */
import { open, readFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../util/atomic-file.js';

export interface Stamp {
  readonly at: number;
  readonly by: string;
}

/** The stamp of items that were never stamped (stored before replication, restored from a Swarm copy): older than any change. */
export const UNSTAMPED: Stamp = { at: 0, by: '' };

/** Negative when `a` is older than `b`. */
export function compareStamps(a: Stamp, b: Stamp): number {
  return a.at - b.at || (a.by < b.by ? -1 : a.by > b.by ? 1 : 0);
}

const STAMP_HEADER_FORMAT = /^([0-9]{1,15})@([A-Za-z0-9-]{1,64})$/;

/** `at@by`, as sent in the Flow-Proxy-Stamp header of changes passed to peers. */
export function formatStamp(stamp: Stamp): string {
  return `${stamp.at}@${stamp.by}`;
}

export function parseStamp(text: string): Stamp | undefined {
  const match = STAMP_HEADER_FORMAT.exec(text);
  return match === null ? undefined : { at: Number(match[1]), by: match[2] ?? '' };
}

/** Whether a stamp read from a peer is one a replica gives (or UNSTAMPED), so it can be passed on. */
export function isStamp(at: unknown, by: unknown): boolean {
  return typeof at === 'number' && typeof by === 'string' && (parseStamp(`${at}@${by}`) !== undefined || (at === UNSTAMPED.at && by === UNSTAMPED.by));
}

export interface LedgerEntry {
  readonly stamp: Stamp;
  readonly removed: boolean;
}

interface LedgerLine {
  readonly key: string;
  readonly at: number;
  readonly by: string;
  readonly removed?: true;
}

/** How long a removal is remembered: a replica away for longer may bring a removed item back. */
export const TOMBSTONE_DAYS = 30;
const DAY_MS = 86_400_000;
/** The file is rewritten once it holds this many lines more than twice the items it describes. */
const SLACK_LINES = 10_000;

export class Ledger {
  private highest = 0;
  /** Changes recorded since start-up: tells when what this replica holds may have changed. */
  private recorded = 0;
  /** Lines in the file now; beyond twice the entries (plus SLACK_LINES) it is rewritten. */
  private lines: number;
  /** File writes, one at a time: appends and rewrites. */
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly file: string,
    private readonly entries: Map<string, LedgerEntry>,
    private handle: FileHandle,
    /** This replica's id: the `by` of the stamps it gives. */
    readonly replica: string,
    private readonly onWriteFailure: (error: Error) => void,
  ) {
    for (const entry of entries.values()) this.highest = Math.max(this.highest, entry.stamp.at);
    this.lines = entries.size;
  }

  /**
   * Reads the file (a torn last line is dropped), forgets removals older than TOMBSTONE_DAYS,
   * rewrites it when that leaves lines out, and keeps it open for appends. A write that fails (a
   * full disk) is told to `onWriteFailure` and otherwise ignored: the stamps stay in memory, and a
   * replica that lost some only holds older stamps after a restart, which its peers correct.
   */
  static async open(stateDir: string, replica: string, onWriteFailure: (error: Error) => void, now = Date.now()): Promise<Ledger> {
    const file = path.join(stateDir, 'replication.jsonl');
    const entries = new Map<string, LedgerEntry>();
    const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return '';
      throw error;
    });
    let lines = 0;
    for (const line of text.split('\n')) {
      const parsed = parseLine(line);
      if (parsed === undefined) continue;
      lines++;
      entries.set(parsed.key, { stamp: { at: parsed.at, by: parsed.by }, removed: parsed.removed === true });
    }
    forgetOldRemovals(entries, now);
    if (lines > entries.size || (text.length > 0 && !text.endsWith('\n'))) await writeFileAtomic(file, textOf(entries)).catch(onWriteFailure);
    return new Ledger(file, entries, await open(file, 'a', 0o600), replica, onWriteFailure);
  }

  get(key: string): LedgerEntry | undefined {
    return this.entries.get(key);
  }

  get changes(): number {
    return this.recorded;
  }

  keys(): IterableIterator<string> {
    return this.entries.keys();
  }

  /** A stamp newer than every stamp this replica has seen. */
  fresh(): Stamp {
    this.highest = Math.max(Date.now(), this.highest + 1);
    return { at: this.highest, by: this.replica };
  }

  /**
   * Records what a change did. The line is written (not fsynced: a process crash keeps it, and
   * after a power loss the replica only holds an older stamp, which its peers correct). A file
   * grown well past what it describes is rewritten.
   */
  async record(key: string, stamp: Stamp, removed: boolean): Promise<void> {
    const entry = { stamp, removed };
    this.entries.set(key, entry);
    this.recorded++;
    this.highest = Math.max(this.highest, stamp.at);
    this.lines++;
    await this.write(() => this.handle.appendFile(lineOf(key, entry)));
    if (this.lines > 2 * this.entries.size + SLACK_LINES) await this.compact();
  }

  /** Forgets removals older than TOMBSTONE_DAYS (a long-running replica calls it now and then). */
  async forgetOldRemovals(now = Date.now()): Promise<void> {
    if (forgetOldRemovals(this.entries, now) > 0) {
      this.recorded++;
      await this.compact();
    }
  }

  private async compact(): Promise<void> {
    await this.write(async () => {
      await writeFileAtomic(this.file, textOf(this.entries));
      await this.handle.close();
      this.handle = await open(this.file, 'a', 0o600);
      this.lines = this.entries.size;
    });
  }

  private write(work: () => Promise<void>): Promise<void> {
    this.writing = this.writing.then(work).catch(this.onWriteFailure);
    return this.writing;
  }

  async close(): Promise<void> {
    await this.writing;
    await this.handle.close();
  }
}

/** Removes the removals older than TOMBSTONE_DAYS from `entries`; returns how many. */
function forgetOldRemovals(entries: Map<string, LedgerEntry>, now: number): number {
  let forgotten = 0;
  for (const [key, entry] of entries) {
    if (entry.removed && entry.stamp.at < now - TOMBSTONE_DAYS * DAY_MS) {
      entries.delete(key);
      forgotten++;
    }
  }
  return forgotten;
}

function textOf(entries: ReadonlyMap<string, LedgerEntry>): string {
  return [...entries].map(([key, entry]) => lineOf(key, entry)).join('');
}

function lineOf(key: string, { stamp, removed }: LedgerEntry): string {
  const line: LedgerLine = { key, at: stamp.at, by: stamp.by, ...(removed ? { removed: true } : {}) };
  return `${JSON.stringify(line)}\n`;
}

function parseLine(line: string): LedgerLine | undefined {
  if (line.trim() === '') return undefined;
  try {
    const value = JSON.parse(line) as Partial<LedgerLine>;
    if (typeof value.key !== 'string' || typeof value.at !== 'number' || typeof value.by !== 'string') return undefined;
    return { key: value.key, at: value.at, by: value.by, ...(value.removed === true ? { removed: true } : {}) };
  } catch {
    return undefined; // a line torn by a crash
  }
}
