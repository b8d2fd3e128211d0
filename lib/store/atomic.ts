/**
 * Crash-safe file replacement: temp file in the same directory, write, fsync, rename over the
 * target, fsync the directory. After `writeFileDurable` resolves the new content survives a
 * power loss; if the process dies at any point before, the target holds the old content or
 * the new one, never a mix. (write-file-atomic and atomically skip the directory fsync, so
 * the rename itself may be lost on power failure.)
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { SmoothtaskError } from '../errors/index.js';
import { StoreIoError } from './errors.js';

/**
 * Turns a failed system call's error into a {@link StoreIoError} (typed errors and non-system
 * errors pass through unchanged).
 * @internal
 */
export function storeIoError(e: unknown, path: string, operation: string): unknown {
  if (e instanceof SmoothtaskError) return e;
  const ne = e as NodeJS.ErrnoException | null;
  if (ne instanceof Error && typeof ne.code === 'string' && typeof ne.errno === 'number') return new StoreIoError(path, operation, ne);
  return e;
}

/** Runs `fn`; a system error it throws becomes a {@link StoreIoError} for `path`/`operation`. */
async function io<T>(path: string, operation: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw storeIoError(e, path, operation);
  }
}

/** fsyncs a directory so a rename or create inside it is durable. Throws {@link StoreIoError}. */
export async function fsyncDir(dir: string): Promise<void> {
  await io(dir, 'fsync', async () => {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  });
}

/** Creates `dir` (and parents); fsyncs each parent whose entry list changed. Throws {@link StoreIoError}. */
export async function mkdirDurable(dir: string): Promise<void> {
  const first = await io(dir, 'mkdir', () => mkdir(dir, { recursive: true }));
  if (first === undefined) return;
  // `first` is the top-most directory created; fsync from its parent down to dir's parent.
  let d = dir;
  const parents: string[] = [];
  while (d.length >= first.length) {
    parents.push(dirname(d));
    if (d === first) break;
    d = dirname(d);
  }
  for (const p of parents.reverse()) await fsyncDir(p);
}

/** Options of {@link writeFileDurable}. */
export interface DurableWriteOptions {
  /** File mode of a new file (default 0o644). */
  mode?: number;
  /** Called after the temp file is synced and before the rename; throw (or reject) to abort (the temp file is removed). */
  beforeRename?: () => void | Promise<void>;
}

/** The temp-file name used for `path` (`.<name>.tmp-<pid>-<random>`), so sweeps can find leftovers. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Matches temp files made by {@link tempPathFor}; group 1 is the writer's pid. */
export const TEMP_FILE_RE = /^\..+\.tmp-(\d+)-[0-9a-f]{8}$/;

/**
 * Atomically and durably replaces `path` with `data`. A failed system call (e.g. `ENOSPC`
 * while writing the temp file) throws a {@link StoreIoError}; the target keeps its old content
 * and the temp file is removed.
 */
export async function writeFileDurable(path: string, data: string | Uint8Array, options: DurableWriteOptions = {}): Promise<void> {
  const tmp = tempPathFor(path);
  let renamed = false;
  try {
    await io(path, 'write', async () => {
      const fh = await open(tmp, 'wx', options.mode ?? 0o644);
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
    });
    await options.beforeRename?.();
    await io(path, 'rename', () => rename(tmp, path));
    renamed = true;
    await fsyncDir(dirname(path));
  } finally {
    if (!renamed) await unlink(tmp).catch(() => {});
  }
}
