import { createWriteStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { dirname, relative } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';
import { splitRelativePath, UnsafePathError, type WalkFile, WorkspaceError, WorkspaceRoot } from '../workspace/index.js';
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
    const files: WalkFile[] = [];
    const skipped: string[] = [];
    try {
      for await (const e of root.walk(rel, { what: OUTPUTS })) {
        if (e.kind === 'file') files.push(e);
        else skipped.push(e.name);
      }
    } catch (e) {
      if (e instanceof WorkspaceError && e.sysCode === 'ENOENT') return undefined;
      throw e;
    }
    if (files.length === 0) return undefined;
    let total = 0;
    for (const f of files) {
      total += f.size;
      if (total > maxBytes) throw new OutputTooLargeError(maxBytes, total);
    }
    await mkdir(dirname(dest), { recursive: true });
    const zip = new yazl.ZipFile();
    const top = splitRelativePath(rel, OUTPUTS).map((p) => Buffer.from(p, 'utf8'));
    for (const f of files) {
      // Opened when yazl gets to it (one at a time), again without following anything; at most
      // the walked size is read, so a file that grew since cannot push the total over the cap.
      zip.addReadStreamLazy(f.name, { size: f.size, mtime: f.mtime, mode: f.mode }, (cb) => {
        root.openFile([...top, ...f.parts], 'output file').then(
          ({ handle }) => {
            if (f.size === 0) {
              void handle.close();
              cb(null, Readable.from([]));
            } else cb(null, handle.createReadStream({ start: 0, end: f.size - 1 }));
          },
          (err: unknown) => cb(err, Readable.from([])),
        );
      });
    }
    zip.end();
    const failed = new Promise<never>((_, reject) => zip.on('error', reject));
    failed.catch(() => undefined);
    try {
      await Promise.race([pipeline(zip.outputStream, createWriteStream(dest), options.signal ? { signal: options.signal } : {}), failed]);
    } catch (e) {
      (zip.outputStream as Readable).destroy();
      await rm(dest, { force: true });
      throw e;
    }
    return { path: dest, files: files.length, bytes: total, zipBytes: (await stat(dest)).size, skipped };
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
