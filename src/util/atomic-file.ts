import { mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';

/**
 * Replaces `file` with `content` so that a crash at any moment leaves either the old or the new
 * content, never a mix: write a temporary file in the same directory, fsync it, rename it over
 * the target, then fsync the directory so the rename itself is durable.
 */
let sequence = 0;

/**
 * The new content is in place (the rename happened) but fsyncing its directory failed, so the
 * disk did not confirm that the rename survives a crash. The change is there, not "nothing".
 */
export class NotConfirmedDurable extends Error {}

export async function writeFileAtomic(file: string, content: string | Uint8Array): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true });
  const temporary = path.join(dir, `.${path.basename(file)}.${process.pid}.${++sequence}.tmp`);
  try {
    const handle = await open(temporary, 'w', 0o600);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  try {
    await syncDirectory(dir);
  } catch (error) {
    throw new NotConfirmedDurable(`${file} was replaced but fsync of ${dir} failed: ${(error as Error).message}`, { cause: error });
  }
}

/** Removes `file` (if present) so that the removal survives a crash: the directory is fsynced. */
export async function removeFileDurably(file: string): Promise<void> {
  await rm(file, { force: true });
  await syncDirectory(path.dirname(file)).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}

/** Makes the creation, rename or removal of entries in `dir` durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
