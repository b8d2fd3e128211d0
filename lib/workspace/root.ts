/**
 * The file-system half of the workspace path policy: a workspace root held open as a
 * directory file descriptor, and every path below it walked one component at a time relative
 * to the descriptor of its parent, never following a symbolic link.
 *
 * Node has no `openat`, but Linux gives the same semantics through `/proc/self/fd/<fd>/<name>`:
 * the `/proc/self/fd/<fd>` part resolves to exactly the directory the descriptor holds (even
 * if it was renamed or replaced since), and only `<name>` is looked up in it, with
 * `O_NOFOLLOW`. A task that swaps a directory for a link during the walk cannot redirect it.
 *
 * - Directories are opened `O_RDONLY | O_DIRECTORY | O_NOFOLLOW`: a link fails (`ELOOP`),
 *   a FIFO or device fails (`ENOTDIR`) before the kernel opens it.
 * - Files are first opened `O_PATH | O_NOFOLLOW` (opens nothing: no FIFO blocks, no device
 *   driver runs), checked with `fstat` to be regular, then reopened for reading through
 *   `/proc/self/fd/<pathfd>`, which is the same inode.
 * - Directories are created with `mkdir` at `/proc/self/fd/<parent>/<name>` (which never
 *   follows a link at `<name>`), then opened as above and `fchmod`ed through the descriptor.
 * @module
 */
import { constants as C, type Stats } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readdir, rename, rmdir, unlink } from 'node:fs/promises';
import { SmoothtaskError } from '../errors/index.js';
import { UnsafePathError, WorkspaceError } from './errors.js';
import { entryName, splitRelativePath } from './policy.js';

/** `O_PATH` (Linux; the generic value, used by x86, ARM, PowerPC, s390, RISC-V). Not in `fs.constants`. */
const O_PATH = 0o10000000;
const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;
const PATH_FLAGS = O_PATH | C.O_NOFOLLOW;

/** Default deepest directory level a walk descends to (each level holds one descriptor). */
export const DEFAULT_MAX_DEPTH = 64;

/** What a walk or a listing found at one name. */
export type EntryKind = 'file' | 'directory' | 'symlink' | 'special';

/** One entry of `WorkspaceRoot.list` (never following a link). */
export interface DirEntry {
  /** The name as stored on disk (raw bytes: it need not be UTF-8). */
  name: Buffer;
  /** What it is, by `fstat` of a descriptor that did not follow it. */
  kind: EntryKind;
  /** Size in bytes (regular files; 0 otherwise). */
  size: number;
  /** Modification time. */
  mtime: Date;
  /** `st_mode` (type and permission bits). */
  mode: number;
}

/** A regular file found by {@link WorkspaceRoot.walk}. */
export interface WalkFile {
  /** A regular file. */
  kind: 'file';
  /** Components from the walked folder down, raw bytes; pass to {@link WorkspaceRoot.openFile} with the folder's path. */
  parts: Buffer[];
  /** Archive entry name: the parts escaped by {@link entryName}. */
  name: string;
  /** Size in bytes when walked. */
  size: number;
  /** Modification time. */
  mtime: Date;
  /** `st_mode`. */
  mode: number;
}

/** Something {@link WorkspaceRoot.walk} did not descend into or report as a file. */
export interface WalkSkipped {
  /** Not followed, not read. */
  kind: 'skipped';
  /** Escaped name ({@link entryName}) relative to the walked folder. */
  name: string;
  /** `symlink`, `special` (FIFO, socket, device), `too-deep` (below `maxDepth`), `name-too-long` (entry name over 65535 bytes). */
  why: 'symlink' | 'special' | 'too-deep' | 'name-too-long';
}

/** What {@link WorkspaceRoot.walk} yields. */
export type WalkEntry = WalkFile | WalkSkipped;

/** A regular file opened by `WorkspaceRoot.openFile`. */
export interface OpenedFile {
  /** Read-only handle; the caller closes it (or lets a read stream close it). */
  handle: FileHandle;
  /** `fstat` of the opened file. */
  stats: Stats;
}

const fdPath = (fd: number, name?: Uint8Array): Buffer =>
  name ? Buffer.concat([Buffer.from(`/proc/self/fd/${fd}/`), name]) : Buffer.from(`/proc/self/fd/${fd}`);

const sysCode = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;

function kindOf(st: Stats): EntryKind {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  return 'special';
}

function wrap(e: unknown, what: string, rel: string): SmoothtaskError {
  if (e instanceof SmoothtaskError) return e;
  const err = e as NodeJS.ErrnoException;
  const code = sysCode(e);
  return new WorkspaceError(`${what} ${JSON.stringify(rel)}: ${err?.message ?? String(e)}`, rel, {
    cause: e,
    ...(code ? { sysCode: code } : {}),
    ...(typeof err?.errno === 'number' ? { errno: Math.abs(err.errno) } : {}),
  });
}

async function closeQuietly(h: FileHandle | undefined): Promise<void> {
  try {
    await h?.close();
  } catch {
    // Already closed.
  }
}

/** Options of {@link WorkspaceRoot.open}. */
export interface OpenRootOptions {
  /** Create the root (and its missing parents, which are trusted) when missing. */
  create?: boolean;
  /** `fchmod` the root to this mode once open. */
  mode?: number;
}

/** Options of {@link WorkspaceRoot.ensureDir}. */
export interface EnsureDirOptions {
  /** `fchmod` every directory of the path (created or found) to this mode. */
  mode?: number;
  /**
   * Remove whatever non-directory (link, file, FIFO, socket, device) sits where a directory of
   * the path should be, then create the directory. Default `false`: refuse with
   * {@link UnsafePathError}. The entry is unlinked, never followed.
   */
  replace?: boolean;
  /** How the path is named in error messages. */
  what?: string;
}

/**
 * A workspace root directory held open. Every method takes a path relative to the root,
 * checks it with {@link splitRelativePath}, and walks it one component at a time without
 * following links. Close it when done.
 *
 * @example
 * ```ts
 * const root = await WorkspaceRoot.open('/data/task-1/work');
 * try {
 *   for await (const e of root.walk('out')) if (e.kind === 'file') console.log(e.name, e.size);
 * } finally {
 *   await root.close();
 * }
 * ```
 */
export class WorkspaceRoot {
  /** The root's path as given. */
  readonly path: string;
  readonly #dir: FileHandle;

  private constructor(path: string, dir: FileHandle) {
    this.path = path;
    this.#dir = dir;
  }

  /**
   * Opens a root directory. Its parents are trusted (they are ours); the root itself must be a
   * real directory, not a link.
   *
   * @throws {@link UnsafePathError} when the root is a link or not a directory;
   *   {@link WorkspaceError} (`sysCode` `ENOENT`, …) when it cannot be opened.
   */
  static async open(path: string, options: OpenRootOptions = {}): Promise<WorkspaceRoot> {
    if (options.create) {
      try {
        await mkdir(path, { recursive: true, ...(options.mode !== undefined ? { mode: options.mode } : {}) });
      } catch (e) {
        if (sysCode(e) !== 'EEXIST') throw wrap(e, 'Cannot create workspace root', path);
      }
    }
    let h: FileHandle;
    try {
      h = await open(path, DIR_FLAGS);
    } catch (e) {
      throw await refusalOr(e, path, path, 'workspace root', () => lstat(path));
    }
    try {
      if (options.mode !== undefined) await h.chmod(options.mode);
    } catch (e) {
      await closeQuietly(h);
      throw wrap(e, 'Cannot chmod workspace root', path);
    }
    return new WorkspaceRoot(path, h);
  }

  /** Closes the root's descriptor. Idempotent. */
  async close(): Promise<void> {
    await closeQuietly(this.#dir);
  }

  /**
   * Opens the directory at `rel` (`''` is the root itself). The caller closes the handle.
   * @throws {@link UnsafePathError} for a refused path, a link or a non-directory on the way;
   *   {@link WorkspaceError} for a missing entry (`sysCode` `ENOENT`) and other failures.
   */
  async openDir(rel: string | readonly Uint8Array[], what = 'path'): Promise<FileHandle> {
    const parts = toParts(rel, what);
    return this.#openDirParts(parts, parts.length, typeof rel === 'string' ? rel : entryName(parts), what);
  }

  /** Opens the directory made of the first `n` of `parts`; errors name `shown` (the whole path). */
  async #openDirParts(parts: readonly Buffer[], n: number, shown: string, what: string): Promise<FileHandle> {
    let cur = this.#dir;
    let owned: FileHandle | undefined;
    try {
      for (let i = 0; i < n; i++) {
        const next = await openChildDir(cur.fd, parts[i]!, shown, leading(parts, i, n === parts.length ? shown : undefined), what);
        await closeQuietly(owned);
        owned = cur = next;
      }
      // Hand out a descriptor of its own even for the root, so closing it never closes the root.
      return owned ?? (await open(fdPath(this.#dir.fd), C.O_RDONLY | C.O_DIRECTORY));
    } catch (e) {
      await closeQuietly(owned);
      throw wrap(e, `Cannot open ${what}`, shown);
    }
  }

  /**
   * Makes sure every directory of `rel` exists as a real directory, creating what is missing
   * and `fchmod`ing each one when `mode` is given. Nothing is created or chmodded through a link.
   * @throws {@link UnsafePathError} for a refused path, or a link or non-directory on the way
   *   (unless `replace`); {@link WorkspaceError} for other failures.
   */
  async ensureDir(rel: string, options: EnsureDirOptions = {}): Promise<void> {
    const what = options.what ?? 'path';
    const parts = splitRelativePath(rel, what).map((p) => Buffer.from(p, 'utf8'));
    let cur = this.#dir;
    let owned: FileHandle | undefined;
    try {
      for (const [i, name] of parts.entries()) {
        const next = await ensureChildDir(cur.fd, name, rel, leading(parts, i, rel), what, options);
        await closeQuietly(owned);
        owned = cur = next;
      }
    } catch (e) {
      throw wrap(e, `Cannot create ${what}`, rel);
    } finally {
      await closeQuietly(owned);
    }
  }

  /**
   * Opens the regular file at `rel` for reading. Links and special files are refused without
   * being opened (a FIFO never blocks, a device's driver never runs).
   * @throws {@link UnsafePathError} (`symlink`, `not-regular-file`, or a refused path);
   *   {@link WorkspaceError} for a missing file and other failures.
   */
  async openFile(rel: string | readonly Uint8Array[], what = 'file'): Promise<OpenedFile> {
    const parts = toParts(rel, what);
    const shown = typeof rel === 'string' ? rel : entryName(parts);
    const last = parts.at(-1);
    if (!last) throw new UnsafePathError(shown, 'not-regular-file', what);
    const dir = await this.#openDirParts(parts, parts.length - 1, shown, what);
    try {
      return await openChildFile(dir.fd, last, shown, what);
    } catch (e) {
      throw wrap(e, `Cannot open ${what}`, shown);
    } finally {
      await closeQuietly(dir);
    }
  }

  /**
   * Lists the directory at `rel`: each name with its kind, found with `fstat` on an `O_PATH`
   * descriptor (links are reported as `symlink`, never followed).
   */
  async list(rel: string | readonly Uint8Array[] = '', what = 'folder'): Promise<DirEntry[]> {
    const dir = await this.openDir(rel, what);
    try {
      const out: DirEntry[] = [];
      for (const name of await readNames(dir.fd, typeof rel === 'string' ? rel : entryName(rel))) {
        const st = await statChild(dir.fd, name);
        if (st) out.push({ name, kind: kindOf(st), size: st.isFile() ? st.size : 0, mtime: st.mtime, mode: st.mode });
      }
      return out;
    } finally {
      await closeQuietly(dir);
    }
  }

  /**
   * Walks the folder at `rel` depth first, yielding each regular file (with its size) and each
   * entry it did not follow: links, FIFOs, sockets, devices, folders below `maxDepth`. The walk
   * holds one descriptor per level and never follows a link, at any level.
   * @throws {@link UnsafePathError} when `rel` itself is refused, a link or not a directory;
   *   {@link WorkspaceError} when it is missing (`ENOENT`).
   */
  async *walk(rel = '', options: { maxDepth?: number; what?: string } = {}): AsyncGenerator<WalkEntry> {
    const what = options.what ?? 'folder';
    const top = await this.openDir(rel, what);
    try {
      yield* walkDir(top, [], 1, options.maxDepth ?? DEFAULT_MAX_DEPTH, rel);
    } finally {
      await closeQuietly(top);
    }
  }

  /**
   * What is at `rel`, found with `fstat` on an `O_PATH | O_NOFOLLOW` descriptor (a link is
   * reported as `symlink`, never followed; a FIFO is never opened). `''` is the root.
   * @returns `undefined` when nothing is there.
   * @throws {@link UnsafePathError} for a refused path or a link or non-directory on the way.
   */
  async stat(rel: string | readonly Uint8Array[], what = 'path'): Promise<Omit<DirEntry, 'name'> | undefined> {
    const parts = toParts(rel, what);
    const shown = typeof rel === 'string' ? rel : entryName(parts);
    const last = parts.at(-1);
    let dir: FileHandle;
    try {
      dir = await this.#openDirParts(parts, last ? parts.length - 1 : 0, shown, what);
    } catch (e) {
      if (e instanceof WorkspaceError && e.sysCode === 'ENOENT') return undefined;
      throw e;
    }
    try {
      const st = last ? await statChild(dir.fd, last) : await dir.stat();
      return st && { kind: kindOf(st), size: st.isFile() ? st.size : 0, mtime: st.mtime, mode: st.mode };
    } catch (e) {
      throw wrap(e, `Cannot stat ${what}`, shown);
    } finally {
      await closeQuietly(dir);
    }
  }

  /**
   * Removes what is at `rel`: a file, link, FIFO or socket is unlinked (a link itself, never its
   * target); a folder is emptied depth first the same way (no link followed at any level), then
   * removed. The root itself cannot be removed.
   * @returns the bytes of regular files removed, or `undefined` when nothing was there.
   * @throws {@link UnsafePathError} for a refused path or a link or non-directory on the way.
   */
  async remove(rel: string | readonly Uint8Array[], what = 'path'): Promise<number | undefined> {
    const parts = toParts(rel, what);
    const shown = typeof rel === 'string' ? rel : entryName(parts);
    const last = parts.at(-1);
    if (!last) throw new UnsafePathError(shown, 'empty', what);
    let dir: FileHandle;
    try {
      dir = await this.#openDirParts(parts, parts.length - 1, shown, what);
    } catch (e) {
      if (e instanceof WorkspaceError && e.sysCode === 'ENOENT') return undefined;
      throw e;
    }
    try {
      return await removeChild(dir.fd, last, 0);
    } catch (e) {
      throw wrap(e, `Cannot remove ${what}`, shown);
    } finally {
      await closeQuietly(dir);
    }
  }

  /**
   * Creates a regular file at `rel` without ever opening an existing inode: the data goes to a
   * fresh name (`O_CREAT | O_EXCL`) in the same folder, and {@link NewFile.commit} renames it
   * over `rel` (replacing a link or file there, never writing through it). The parent folders
   * must exist ({@link WorkspaceRoot.ensureDir}). With `durable`, commit `fsync`s the file
   * before the rename and the folder after it.
   */
  async createFile(rel: string, options: { mode?: number; what?: string; durable?: boolean } = {}): Promise<NewFile> {
    const what = options.what ?? 'file';
    const parts = splitRelativePath(rel, what).map((p) => Buffer.from(p, 'utf8'));
    const last = parts.at(-1);
    if (!last) throw new UnsafePathError(rel, 'not-regular-file', what);
    const dir = await this.#openDirParts(parts, parts.length - 1, rel, what);
    const tmp = Buffer.from(`.${last.toString('utf8').slice(0, 32)}.${process.pid}.${Math.random().toString(36).slice(2)}.part`);
    let h: FileHandle;
    try {
      h = await open(fdPath(dir.fd, tmp), C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, options.mode ?? 0o644);
    } catch (e) {
      await closeQuietly(dir);
      throw wrap(e, `Cannot create ${what}`, rel);
    }
    let settled = false;
    const settle = async (keep: boolean): Promise<void> => {
      if (settled) return;
      settled = true;
      try {
        if (keep && options.durable) await h.sync();
        await closeQuietly(h);
        if (keep) {
          await rename(fdPath(dir.fd, tmp), fdPath(dir.fd, last));
          // The rename itself survives a crash once the folder is synced.
          if (options.durable) await dir.sync();
        } else await unlink(fdPath(dir.fd, tmp)).catch(() => undefined);
      } catch (e) {
        await unlink(fdPath(dir.fd, tmp)).catch(() => undefined);
        throw wrap(e, `Cannot create ${what}`, rel);
      } finally {
        await closeQuietly(dir);
      }
    };
    return { handle: h, commit: () => settle(true), abort: () => settle(false) };
  }
}

/** A file being written by {@link WorkspaceRoot.createFile}. */
export interface NewFile {
  /** Write handle of the temporary file. */
  handle: FileHandle;
  /** Closes the handle and moves the file to its name. */
  commit(): Promise<void>;
  /** Closes the handle and removes the temporary file (nothing appears at the name). */
  abort(): Promise<void>;
}

function toParts(rel: string | readonly Uint8Array[], what: string): Buffer[] {
  if (typeof rel === 'string') return splitRelativePath(rel, what).map((p) => Buffer.from(p, 'utf8'));
  return rel.map((p) => {
    const b = Buffer.from(p.buffer, p.byteOffset, p.byteLength);
    const s = b.toString('latin1');
    if (s === '' || s === '.' || s === '..' || s.includes('/') || s.includes('\0')) throw new UnsafePathError(entryName(rel), 'traversal', what);
    return b;
  });
}

/** The path made of `parts[0..i]`, for messages; `whole` when that is all of it. */
function leading(parts: readonly Buffer[], i: number, whole?: string): string {
  return i === parts.length - 1 && whole !== undefined ? whole : entryName(parts.slice(0, i + 1));
}

/** Turns a failed no-follow open into the refusal it means (link, non-directory), or a WorkspaceError. */
async function refusalOr(e: unknown, shown: string, at: string, what: string, lst: () => Promise<Stats>): Promise<SmoothtaskError> {
  const code = sysCode(e);
  if (code === 'ELOOP' || code === 'ENOTDIR') {
    const st = await lst().catch(() => undefined);
    return new UnsafePathError(shown, st?.isSymbolicLink() || code === 'ELOOP' ? 'symlink' : 'not-directory', what, { cause: e, at });
  }
  return wrap(e, `Cannot open ${what}`, shown);
}

async function openChildDir(parentFd: number, name: Buffer, shown: string, at: string, what: string): Promise<FileHandle> {
  const p = fdPath(parentFd, name);
  try {
    return await open(p, DIR_FLAGS);
  } catch (e) {
    throw await refusalOr(e, shown, at, what, () => lstat(p));
  }
}

async function ensureChildDir(parentFd: number, name: Buffer, shown: string, at: string, what: string, o: EnsureDirOptions): Promise<FileHandle> {
  const p = fdPath(parentFd, name);
  // A racing task can recreate what we remove; give up after a few rounds.
  for (let round = 0; round < 4; round++) {
    try {
      await mkdir(p, o.mode ?? 0o755);
    } catch (e) {
      if (sysCode(e) !== 'EEXIST') throw wrap(e, `Cannot create ${what}`, shown);
    }
    let h: FileHandle;
    try {
      h = await open(p, DIR_FLAGS);
    } catch (e) {
      const code = sysCode(e);
      if ((code === 'ELOOP' || code === 'ENOTDIR') && o.replace) {
        // unlink never follows the last component: the link itself goes, not its target.
        await unlink(p).catch((u: unknown) => {
          if (sysCode(u) !== 'ENOENT') throw wrap(u, `Cannot replace ${what}`, shown);
        });
        continue;
      }
      if (code === 'ENOENT') continue;
      throw await refusalOr(e, shown, at, what, () => lstat(p));
    }
    try {
      if (o.mode !== undefined) await h.chmod(o.mode);
      return h;
    } catch (e) {
      await closeQuietly(h);
      throw wrap(e, `Cannot chmod ${what}`, shown);
    }
  }
  throw new UnsafePathError(shown, 'not-directory', what, { at });
}

/** `fstat` of a child through an `O_PATH | O_NOFOLLOW` descriptor; `undefined` when it vanished. */
async function statChild(dirFd: number, name: Buffer): Promise<Stats | undefined> {
  let h: FileHandle;
  try {
    h = await open(fdPath(dirFd, name), PATH_FLAGS);
  } catch (e) {
    if (sysCode(e) === 'ENOENT') return undefined;
    throw e;
  }
  try {
    return await h.stat();
  } finally {
    await closeQuietly(h);
  }
}

/** Removes `name` in the folder `dirFd` without following links; bytes of files removed, `undefined` when absent. */
async function removeChild(dirFd: number, name: Buffer, depth: number): Promise<number | undefined> {
  const st = await statChild(dirFd, name);
  if (!st) return undefined;
  const p = fdPath(dirFd, name);
  if (!st.isDirectory()) {
    await unlink(p).catch((e: unknown) => {
      if (sysCode(e) !== 'ENOENT') throw e;
    });
    return st.isFile() ? st.size : 0;
  }
  if (depth >= DEFAULT_MAX_DEPTH * 4) throw new WorkspaceError(`Folder nesting deeper than ${DEFAULT_MAX_DEPTH * 4} levels`, entryName([name]));
  let bytes = 0;
  let sub: FileHandle;
  try {
    sub = await open(p, DIR_FLAGS);
  } catch (e) {
    // Replaced by a link or file since the stat: unlink that instead.
    if (sysCode(e) === 'ELOOP' || sysCode(e) === 'ENOTDIR') return removeChild(dirFd, name, depth);
    if (sysCode(e) === 'ENOENT') return undefined;
    throw e;
  }
  try {
    for (const child of await readdir(fdPath(sub.fd), { encoding: 'buffer' })) bytes += (await removeChild(sub.fd, child, depth + 1)) ?? 0;
  } finally {
    await closeQuietly(sub);
  }
  await rmdir(p).catch((e: unknown) => {
    if (sysCode(e) !== 'ENOENT') throw e;
  });
  return bytes;
}

async function openChildFile(dirFd: number, name: Buffer, shown: string, what: string): Promise<OpenedFile> {
  const pathHandle = await open(fdPath(dirFd, name), PATH_FLAGS);
  try {
    const st = await pathHandle.stat();
    if (st.isSymbolicLink()) throw new UnsafePathError(shown, 'symlink', what);
    if (!st.isFile()) throw new UnsafePathError(shown, 'not-regular-file', what);
    // Reopening through the O_PATH descriptor reaches the inode just checked, whatever the name now holds.
    const handle = await open(fdPath(pathHandle.fd), C.O_RDONLY | C.O_NONBLOCK);
    const stats = await handle.stat();
    if (!stats.isFile() || stats.ino !== st.ino || stats.dev !== st.dev) {
      await closeQuietly(handle);
      throw new UnsafePathError(shown, 'not-regular-file', what);
    }
    return { handle, stats };
  } finally {
    await closeQuietly(pathHandle);
  }
}

async function readNames(dirFd: number, shown: string): Promise<Buffer[]> {
  try {
    return await readdir(fdPath(dirFd), { encoding: 'buffer' });
  } catch (e) {
    throw wrap(e, 'Cannot list folder', shown);
  }
}

async function* walkDir(dir: FileHandle, prefix: Buffer[], depth: number, maxDepth: number, shown: string): AsyncGenerator<WalkEntry> {
  const names = await readNames(dir.fd, shown);
  names.sort(Buffer.compare);
  for (const name of names) {
    const parts = [...prefix, name];
    const ename = entryName(parts);
    if (Buffer.byteLength(ename) > 0xffff) {
      yield { kind: 'skipped', name: ename, why: 'name-too-long' };
      continue;
    }
    let ph: FileHandle;
    try {
      ph = await open(fdPath(dir.fd, name), PATH_FLAGS);
    } catch (e) {
      if (sysCode(e) === 'ENOENT') continue; // Gone since the listing.
      throw wrap(e, 'Cannot open', ename);
    }
    let sub: FileHandle | undefined;
    try {
      const st = await ph.stat();
      if (st.isFile()) {
        yield { kind: 'file', parts, name: ename, size: st.size, mtime: st.mtime, mode: st.mode };
        continue;
      }
      if (st.isSymbolicLink()) {
        yield { kind: 'skipped', name: ename, why: 'symlink' };
        continue;
      }
      if (!st.isDirectory()) {
        yield { kind: 'skipped', name: ename, why: 'special' };
        continue;
      }
      if (depth >= maxDepth) {
        yield { kind: 'skipped', name: ename, why: 'too-deep' };
        continue;
      }
      // The directory just checked, reopened through its O_PATH descriptor: no name lookup.
      sub = await open(fdPath(ph.fd), C.O_RDONLY | C.O_DIRECTORY);
    } finally {
      await closeQuietly(ph);
    }
    try {
      yield* walkDir(sub, parts, depth + 1, maxDepth, shown);
    } finally {
      await closeQuietly(sub);
    }
  }
}
