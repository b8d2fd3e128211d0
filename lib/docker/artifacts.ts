import { createWriteStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { dirname, relative } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ArchiveTooLargeError, UnsafePathError, WorkspaceError, WorkspaceRoot, zipFolder } from '../workspace/index.js';
import { OutputTooLargeError } from './errors.js';

/** What {@link zipDirectory} produced. */
export interface ArchiveInfo {
  /** Path of the ZIP file. */
  path: string;
  /** Number of regular files archived. */
  files: number;
  /** Sum of the archived files' sizes (uncompressed). */
  bytes: number;
  /** Size of the ZIP file. */
  zipBytes: number;
  /**
   * Entries that were not archived, by escaped entry name: symbolic links (never followed:
   * they could point outside), FIFOs, sockets, devices, folders deeper than 64 levels.
   */
  skipped: string[];
}

/** Options of {@link zipDirectory}. */
export interface ZipOptions {
  /** Cap on the uncompressed total; over it the archive is not written. Default 1 GiB. */
  maxBytes?: number;
  /** Abort the archiving; the partial ZIP is removed. */
  signal?: AbortSignal;
  /**
   * The workspace root `src` lies in. Every component of `src` below it, `src` itself
   * included, is opened without following links; the root's own parents are trusted. Default:
   * `src` (only `src`'s last component is checked).
   */
  root?: string;
}

/** How the outputs folder is named in errors. */
const OUTPUTS = 'outputs folder';

/**
 * Zips a directory into `dest` as a stream (files are opened one at a time, never held in
 * memory). Returns `undefined` when the directory is missing or holds no regular file.
 *
 * Nothing outside the directory is read: the walk never follows a symbolic link at any level
 * (including `src` itself and its components below `root`), only regular files are opened,
 * FIFOs and devices are never opened at all. Entry names are the relative paths with each
 * component escaped as described by `escapeEntryComponent` (`%XX` for `%`, `\`, control and
 * bidi characters, bytes that are not UTF-8, and the colon of a leading drive letter).
 *
 * @throws {@link OutputTooLargeError} when the files add up to more than `maxBytes`; nothing is
 *   left at `dest` then.
 * @throws {@link UnsafePathError} when `src` (or a folder between `root` and `src`) is a
 *   symbolic link or not a directory, or lies outside `root`; nothing is written then.
 */
export async function zipDirectory(src: string, dest: string, options: ZipOptions = {}): Promise<ArchiveInfo | undefined> {
  const maxBytes = options.maxBytes ?? 1024 ** 3;
  const rootPath = options.root ?? src;
  const rel = options.root === undefined ? '' : relative(options.root, src);
  let root: WorkspaceRoot;
  try {
    root = await WorkspaceRoot.open(rootPath);
  } catch (e) {
    if (e instanceof WorkspaceError && e.sysCode === 'ENOENT') return undefined;
    if (e instanceof UnsafePathError && options.root === undefined) throw new UnsafePathError(src, e.reason, OUTPUTS, { cause: e });
    throw e;
  }
  try {
    let z;
    try {
      z = await zipFolder(root, rel, { maxBytes, what: OUTPUTS });
    } catch (e) {
      if (e instanceof WorkspaceError && e.sysCode === 'ENOENT') return undefined;
      if (e instanceof ArchiveTooLargeError) throw new OutputTooLargeError(maxBytes, e.bytes);
      throw e;
    }
    if (!z) return undefined;
    await mkdir(dirname(dest), { recursive: true });
    try {
      await pipeline(z.stream, createWriteStream(dest), options.signal ? { signal: options.signal } : {});
    } catch (e) {
      z.stream.destroy();
      await rm(dest, { force: true });
      throw e;
    }
    return { path: dest, files: z.files, bytes: z.bytes, zipBytes: (await stat(dest)).size, skipped: z.skipped };
  } finally {
    await root.close();
  }
}

/**
 * Creates a task's outputs folder `dir` (relative) inside its workspace `workspaceDir`, both
 * mode 0777 (the container may run as another uid), without following a link at any level:
 * a link, file, FIFO or device the task left where a folder should be (a previous attempt
 * planting `out -> /host/dir`) is unlinked and replaced by a fresh folder, never chmodded
 * or written through.
 *
 * @throws {@link UnsafePathError} when `dir` is absolute, has `..`, NUL, a backslash or a drive letter.
 * @internal
 */
export async function prepareOutputsDir(workspaceDir: string, dir: string): Promise<void> {
  const root = await WorkspaceRoot.open(workspaceDir, { create: true, mode: 0o777 });
  try {
    await root.ensureDir(dir, { mode: 0o777, replace: true, what: OUTPUTS });
  } finally {
    await root.close();
  }
}
