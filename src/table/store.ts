/**
 * Persistence of the route table, in the state directory:
 *
 * - `routes.json`, a snapshot of the whole table at one version (replaced atomically);
 * - journal files `routes.journal.N` (N: the first version they hold), one JSON line per saved
 *   version with the services it put and removed, appended and fdatasynced before the version
 *   is acknowledged. Saving a change costs one small append, whatever the size of the table.
 *
 * Loading reads the snapshot and replays the journal lines of later versions. Once the journal
 * outgrows the snapshot, the snapshot is rewritten in the background (compaction): appends first
 * move to a new journal file, so compaction only ever deletes files whose every line is in the
 * snapshot it wrote, and never waits for, or is waited for by, a save.
 *
 * Services are stored as the parameters they were configured with and parsed again at start-up,
 * so a stored route passes the same validation as a new one.
 */
import { copyFile, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { RouteSource, RouteTableSnapshot, ServiceEntry } from '../routes/model.js';
import { NotConfirmedDurable, syncDirectory, writeFileAtomic } from '../util/atomic-file.js';

export interface StoredService {
  readonly source: RouteSource;
  readonly params: Readonly<Record<string, string>>;
}

interface StoredTable {
  readonly format: 1;
  readonly version: number;
  readonly services: readonly StoredService[];
}

/** One line of a journal file: what one saved version changed. */
interface JournalLine {
  readonly version: number;
  readonly put: readonly StoredService[];
  readonly remove: readonly string[];
}

export interface LoadedTable {
  readonly version: number;
  readonly services: readonly StoredService[];
  /** Set when a file could not be read and was moved aside. */
  readonly problem?: string;
}

/** What one saved version did to one service: its entry before and after (undefined: absent). */
export interface RouteChange {
  readonly name: string;
  readonly before: ServiceEntry | undefined;
  readonly after: ServiceEntry | undefined;
}

/** Where the route table is kept between runs. */
export interface RouteStore {
  /** Where changes are saved, for messages. */
  readonly file: string;
  load(): Promise<LoadedTable>;
  /**
   * Saves `snapshot`, which is the previously saved version with `changes` made (one entry per
   * service that differs). Resolves once the version would survive a crash; rejects with
   * NotConfirmedDurable when it is stored but the disk did not confirm it. Never called again
   * before the previous call settled.
   */
  save(snapshot: RouteTableSnapshot, changes: readonly RouteChange[]): Promise<void>;
}

export interface TableStoreOptions {
  /** Compact once the journal holds this many lines (default 1000), or more bytes than the snapshot. */
  readonly compactAfterLines?: number;
  /** Told when a background compaction fails; every change is still in the journal. */
  readonly onCompactionFailure?: (error: Error) => void;
}

const JOURNAL = /^routes\.journal\.([1-9][0-9]*)$/;
/** Below this a journal is not worth compacting, however small the snapshot. */
const MIN_COMPACTION_BYTES = 64 * 1024;

interface JournalFile {
  readonly file: string;
  /** Bytes of complete lines: a failed append is cut back to this. */
  bytes: number;
  /** The directory entry of a newly created file is not confirmed durable yet. */
  directoryUnsynced: boolean;
}

interface JournalSize {
  lines: number;
  bytes: number;
}

export class TableStore implements RouteStore {
  readonly file: string;
  private readonly dir: string;
  private readonly compactAfterLines: number;
  /** The file appends go to; undefined: the next append starts a new one. */
  private journal: JournalFile | undefined;
  /** Journal content not covered by the snapshot on disk. */
  private readonly sinceSnapshot: JournalSize = { lines: 0, bytes: 0 };
  private snapshotBytes = 0;
  /** Version of the table on disk (snapshot + journal); undefined until loaded or written whole. */
  private persistedVersion: number | undefined;
  private compaction: Promise<void> | undefined;
  /** After a failed compaction, the next attempt waits for this many journal lines. */
  private compactionRetryAtLines = 0;

  constructor(
    stateDir: string,
    private readonly options: TableStoreOptions = {},
  ) {
    this.dir = stateDir;
    this.file = path.join(stateDir, 'routes.json');
    this.compactAfterLines = options.compactAfterLines ?? 1000;
  }

  async load(): Promise<LoadedTable> {
    await this.removeAbandonedTemporaries();
    const journals = await this.journalFiles();
    const snapshot = await this.readSnapshot();
    if ('problem' in snapshot) {
      // The journal only makes sense on top of the snapshot it follows: keep it for inspection too.
      const asides = await Promise.all(journals.map((journal) => moveAside(journal.file)));
      const also = asides.length === 0 ? '' : `; the journal files were moved aside too (${asides.join(', ')})`;
      this.resetTo(0, 0);
      return { version: 0, services: [], problem: `${snapshot.problem}${also}` };
    }
    const services = new Map<string, StoredService>();
    snapshot.services.forEach((stored, position) => services.set(keyOf(stored, position), stored));
    let version = snapshot.version;
    const size: JournalSize = { lines: 0, bytes: 0 };
    for (const [position, journal] of journals.entries()) {
      const text = await readFile(journal.file, 'utf8');
      size.bytes += Buffer.byteLength(text);
      const { lines, corrupt } = parseJournal(text);
      for (const line of lines) {
        if (line.version <= version) continue; // already in the snapshot
        for (const name of line.remove) services.delete(name);
        for (const stored of line.put) services.set(stored.params.serviceName ?? '', stored);
        version = line.version;
        size.lines++;
      }
      if (corrupt !== undefined) {
        // Outside damage (appends only ever leave a torn last line). The lines after it, and later
        // files, would apply on top of a change that is missing: kept for inspection, unapplied.
        // The lines before it stay in place, so what was restored is what is on disk.
        const copy = await keepValidLines(journal.file, corrupt.validBytes);
        const asides = await Promise.all(journals.slice(position + 1).map((later) => moveAside(later.file)));
        const also = asides.length === 0 ? '' : `; the later journal files were moved aside (${asides.join(', ')})`;
        this.resetTo(version, snapshot.bytes, size);
        return {
          version,
          services: [...services.values()],
          problem: `${journal.file} line ${corrupt.line} could not be parsed (${corrupt.reason}); the changes from that line on were not restored; the file was copied to ${copy} and cut before that line${also}`,
        };
      }
    }
    this.resetTo(version, snapshot.bytes, size);
    return { version, services: [...services.values()] };
  }

  async save(snapshot: RouteTableSnapshot, changes: readonly RouteChange[]): Promise<void> {
    if (this.persistedVersion === undefined || snapshot.version !== this.persistedVersion + 1) {
      // The journal would not describe this version from what is on disk (a table restored from
      // elsewhere, a store never loaded, an append that could not be undone): write it whole.
      await this.writeWhole(snapshot);
      return;
    }
    const line: JournalLine = {
      version: snapshot.version,
      put: changes.flatMap((change) => (change.after === undefined ? [] : [stored(change.after)])),
      remove: changes.filter((change) => change.after === undefined).map((change) => change.name),
    };
    await this.append(`${JSON.stringify(line)}\n`, snapshot.version);
    this.compactIfDue(snapshot);
  }

  /** Resolves once no compaction is running. */
  async settled(): Promise<void> {
    while (this.compaction !== undefined) await this.compaction;
  }

  private resetTo(version: number, snapshotBytes: number, size: JournalSize = { lines: 0, bytes: 0 }): void {
    this.persistedVersion = version;
    this.snapshotBytes = snapshotBytes;
    this.sinceSnapshot.lines = size.lines;
    this.sinceSnapshot.bytes = size.bytes;
    // Never append to a file an earlier run wrote: it may end with a torn line.
    this.journal = undefined;
  }

  private async append(text: string, version: number): Promise<void> {
    const journal = this.journal ?? { file: path.join(this.dir, `routes.journal.${version}`), bytes: 0, directoryUnsynced: true };
    // A new file is created empty ('w'): one of that name can only hold the torn first line of
    // a version that was never acknowledged.
    const handle = await open(journal.file, this.journal === undefined ? 'w' : 'a', 0o600);
    this.journal = journal;
    try {
      await handle.appendFile(text);
      await handle.datasync();
    } catch (error) {
      this.journal = undefined; // the next version starts a new file, never after a bad line
      try {
        await handle.truncate(journal.bytes);
      } catch {
        // The line may or may not be on disk: the next save writes the whole table.
        this.persistedVersion = undefined;
        throw new NotConfirmedDurable(`${journal.file}: the append failed (${(error as Error).message}) and could not be undone`, { cause: error });
      }
      throw error;
    } finally {
      await handle.close();
    }
    const bytes = Buffer.byteLength(text);
    journal.bytes += bytes;
    this.sinceSnapshot.lines++;
    this.sinceSnapshot.bytes += bytes;
    this.persistedVersion = version;
    if (journal.directoryUnsynced) {
      try {
        await syncDirectory(this.dir);
      } catch (error) {
        // Tried again with the next append to this file.
        throw new NotConfirmedDurable(`${journal.file} was written but fsync of ${this.dir} failed: ${(error as Error).message}`, { cause: error });
      }
      journal.directoryUnsynced = false;
    }
  }

  private compactIfDue(snapshot: RouteTableSnapshot): void {
    if (this.compaction !== undefined || this.sinceSnapshot.lines < this.compactionRetryAtLines) return;
    const { lines, bytes } = this.sinceSnapshot;
    if (lines < this.compactAfterLines && bytes <= Math.max(this.snapshotBytes, MIN_COMPACTION_BYTES)) return;
    this.journal = undefined; // later versions go to a new file, which this compaction leaves alone
    const covered = { lines, bytes };
    this.compaction = this.compact(snapshot, covered).finally(() => {
      this.compaction = undefined;
    });
  }

  private async compact(snapshot: RouteTableSnapshot, covered: JournalSize): Promise<void> {
    try {
      this.snapshotBytes = await this.writeSnapshot(snapshot);
      await this.removeJournalsUpTo(snapshot.version);
      this.sinceSnapshot.lines -= covered.lines;
      this.sinceSnapshot.bytes -= covered.bytes;
      this.compactionRetryAtLines = 0;
    } catch (error) {
      // NotConfirmedDurable included: the new snapshot may not survive a crash, so the journal stays.
      this.compactionRetryAtLines = this.sinceSnapshot.lines + Math.ceil(this.compactAfterLines / 10);
      this.options.onCompactionFailure?.(error as Error);
    }
  }

  private async writeWhole(snapshot: RouteTableSnapshot): Promise<void> {
    await this.settled(); // an older snapshot must not land after this one
    this.journal = undefined;
    try {
      this.snapshotBytes = await this.writeSnapshot(snapshot);
    } catch (error) {
      if (error instanceof NotConfirmedDurable) this.persistedVersion = snapshot.version;
      throw error;
    }
    this.persistedVersion = snapshot.version;
    // Every journal line is older than this snapshot, or from a history it replaced.
    await this.removeJournalsUpTo(Number.POSITIVE_INFINITY);
    this.sinceSnapshot.lines = 0;
    this.sinceSnapshot.bytes = 0;
  }

  private async writeSnapshot(snapshot: RouteTableSnapshot): Promise<number> {
    const table: StoredTable = { format: 1, version: snapshot.version, services: [...snapshot.services.values()].map(stored) };
    const text = `${JSON.stringify(table, null, 1)}\n`;
    await writeFileAtomic(this.file, text);
    return Buffer.byteLength(text);
  }

  /** Deletes the journal files that start at or before `version` (their lines are in the snapshot). */
  private async removeJournalsUpTo(version: number): Promise<void> {
    const obsolete = (await this.journalFiles()).filter((journal) => journal.firstVersion <= version);
    if (obsolete.length === 0) return;
    await Promise.all(obsolete.map((journal) => rm(journal.file, { force: true })));
    // Not confirming the removals is harmless: a file left behind only holds lines the snapshot has.
    await syncDirectory(this.dir).catch(() => undefined);
  }

  private async journalFiles(): Promise<{ file: string; firstVersion: number }[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    return names
      .flatMap((name) => {
        const match = JOURNAL.exec(name);
        return match === null ? [] : [{ file: path.join(this.dir, name), firstVersion: Number(match[1]) }];
      })
      .sort((a, b) => a.firstVersion - b.firstVersion);
  }

  private async readSnapshot(): Promise<StoredTable & { bytes: number } | { problem: string }> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { format: 1, version: 0, services: [], bytes: 0 };
      throw error;
    }
    try {
      const parsed = JSON.parse(text) as StoredTable;
      if (parsed.format !== 1 || !Number.isInteger(parsed.version) || !Array.isArray(parsed.services)) throw new Error('unknown format');
      return { ...parsed, bytes: Buffer.byteLength(text) };
    } catch (error) {
      // Atomic writes cannot produce this; only outside damage can. Keep the file for inspection.
      const aside = await moveAside(this.file);
      return { problem: `${this.file} could not be parsed (${(error as Error).message}); moved to ${aside}` };
    }
  }

  /** A kill during a save can leave the temporary file behind; the real file is intact. */
  private async removeAbandonedTemporaries(): Promise<void> {
    const prefix = `.${path.basename(this.file)}.`;
    const names = await readdir(this.dir).catch(() => [] as string[]);
    await Promise.all(names.filter((n) => n.startsWith(prefix) && n.endsWith('.tmp')).map((n) => rm(path.join(this.dir, n), { force: true })));
  }
}

function stored({ source, params }: ServiceEntry): StoredService {
  return { source, params };
}

/** Snapshot services by name; one without a name (outside damage) keeps its own slot, and is refused at restore. */
function keyOf(service: StoredService, position: number): string {
  const name = (service as Partial<StoredService> | null)?.params?.serviceName;
  return typeof name === 'string' ? name : `\u0000${position}`;
}

/** Copies `file` aside for inspection, then durably cuts it to its first `validBytes`. */
async function keepValidLines(file: string, validBytes: number): Promise<string> {
  const copy = `${file}.unreadable-${Date.now()}`;
  await copyFile(file, copy);
  const handle = await open(file, 'r+');
  try {
    await handle.truncate(validBytes);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  return copy;
}

async function moveAside(file: string): Promise<string> {
  const aside = `${file}.unreadable-${Date.now()}`;
  await rename(file, aside);
  return aside;
}

/**
 * The complete lines of a journal file. A last line without its newline is a kill during an
 * append, never acknowledged: ignored. Any other line that does not parse is damage.
 */
function parseJournal(text: string): { lines: JournalLine[]; corrupt?: { line: number; reason: string; validBytes: number } } {
  const pieces = text.split('\n');
  pieces.pop(); // '' after the last newline, or the torn last line
  const lines: JournalLine[] = [];
  let validBytes = 0;
  for (const [index, piece] of pieces.entries()) {
    try {
      lines.push(journalLine(JSON.parse(piece)));
    } catch (error) {
      return { lines, corrupt: { line: index + 1, reason: (error as Error).message, validBytes } };
    }
    validBytes += Buffer.byteLength(piece) + 1;
  }
  return { lines };
}

function journalLine(value: unknown): JournalLine {
  const line = value as Partial<JournalLine> | null;
  if (typeof line !== 'object' || line === null || !Number.isInteger(line.version) || !Array.isArray(line.put) || !Array.isArray(line.remove)) {
    throw new Error('not a journal line: expected {"version":N,"put":[...],"remove":[...]}');
  }
  for (const service of line.put) {
    const valid =
      typeof service === 'object' && service !== null && (service.source === 'api' || service.source === 'swarm') &&
      typeof service.params === 'object' && service.params !== null && Object.values(service.params).every((v) => typeof v === 'string') &&
      typeof service.params.serviceName === 'string';
    if (!valid) throw new Error('a put entry is not {"source":"api"|"swarm","params":{"serviceName":"...",...}}');
  }
  if (!line.remove.every((name) => typeof name === 'string')) throw new Error('a removed name is not a string');
  return line as JournalLine;
}
