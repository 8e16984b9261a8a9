/**
 * Persistence of the route table: one JSON file in the state directory, replaced atomically and
 * fsynced before a change is acknowledged. Services are stored as the parameters they were
 * configured with and parsed again at start-up, so a stored route passes the same validation
 * as a new one.
 */
import { readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { RouteSource, RouteTableSnapshot } from '../routes/model.js';
import { writeFileAtomic } from '../util/atomic-file.js';

export interface StoredService {
  readonly source: RouteSource;
  readonly params: Readonly<Record<string, string>>;
}

interface StoredTable {
  readonly format: 1;
  readonly version: number;
  readonly services: readonly StoredService[];
}

export interface LoadedTable {
  readonly version: number;
  readonly services: readonly StoredService[];
  /** Set when the file could not be read and was moved aside. */
  readonly problem?: string;
}

/** Where the route table is kept between runs. */
export interface RouteStore {
  /** Where changes are saved, for messages. */
  readonly file: string;
  load(): Promise<LoadedTable>;
  save(snapshot: RouteTableSnapshot): Promise<void>;
}

export class TableStore implements RouteStore {
  readonly file: string;

  constructor(stateDir: string) {
    this.file = path.join(stateDir, 'routes.json');
  }

  async load(): Promise<LoadedTable> {
    await this.removeAbandonedTemporaries();
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 0, services: [] };
      throw error;
    }
    try {
      const parsed = JSON.parse(text) as StoredTable;
      if (parsed.format !== 1 || !Array.isArray(parsed.services)) throw new Error('unknown format');
      return { version: parsed.version, services: parsed.services };
    } catch (error) {
      // Atomic writes cannot produce this; only outside damage can. Keep the file for inspection.
      const aside = `${this.file}.unreadable-${Date.now()}`;
      await rename(this.file, aside);
      return { version: 0, services: [], problem: `${this.file} could not be parsed (${(error as Error).message}); moved to ${aside}` };
    }
  }

  /** A kill during a save can leave the temporary file behind; the real file is intact. */
  private async removeAbandonedTemporaries(): Promise<void> {
    const dir = path.dirname(this.file);
    const prefix = `.${path.basename(this.file)}.`;
    const names = await readdir(dir).catch(() => [] as string[]);
    await Promise.all(names.filter((n) => n.startsWith(prefix) && n.endsWith('.tmp')).map((n) => rm(path.join(dir, n), { force: true })));
  }

  async save(snapshot: RouteTableSnapshot): Promise<void> {
    const stored: StoredTable = {
      format: 1,
      version: snapshot.version,
      services: [...snapshot.services.values()].map(({ source, params }) => ({ source, params })),
    };
    await writeFileAtomic(this.file, `${JSON.stringify(stored, null, 1)}\n`);
  }
}
