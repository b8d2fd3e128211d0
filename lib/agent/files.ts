/**
 * Task workspaces as files, for every remote door (HTTP now, FTP beside it): one service that
 * reads, writes, lists, removes and zips inside `<workspaces>/<taskId>` through the workspace
 * path policy (`lib/workspace`: paths checked lexically, walked one component at a time from a
 * held directory descriptor, never following a link), with upload quotas and atomic writes
 * (a temporary name, `fsync`, then a rename: a failed, cut or refused upload leaves nothing
 * visible).
 * @module
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { ConfigError } from '../errors/index.js';
import { TaskIdSchema } from '../task/types.js';
import {
  type DirEntry,
  entryName,
  type FolderZip,
  type OpenedFile,
  splitRelativePath,
  UnsafePathError,
  WorkspaceError,
  WorkspaceRoot,
  zipFolder,
} from '../workspace/index.js';
import { inlineSha256, OFFLOAD_BUFFER_BYTES, offloadedSha256 } from '../util/sha256-offload.js';
import { AgentError } from './errors.js';

/** The folder of a workspace that remote users upload into. */
export const INPUTS_DIR = 'inputs';

/** Limits of {@link WorkspaceFiles}. */
export interface FileLimits {
  /** Largest single upload, bytes. */
  maxFileBytes: number;
  /** Bytes the `inputs/` folder of one workspace may hold. */
  workspaceBytes: number;
  /** Bytes all `inputs/` folders of the agent may hold together. */
  agentBytes: number;
}

/** One entry of a folder listing. */
export interface FileEntry {
  /** Name (escaped like archive entries when it is not plain UTF-8: `%XX`). */
  name: string;
  /** `file`, `directory`, `symlink` (never followed) or `special` (FIFO, socket, device: never opened). */
  type: DirEntry['kind'];
  /** Size in bytes (regular files; 0 otherwise). */
  size: number;
  /** Modification time, ms since the epoch. */
  mtimeMs: number;
}

/** What {@link WorkspaceFiles.write} stored. */
export interface WrittenFile {
  /** Path relative to the workspace. */
  path: string;
  /** Bytes written. */
  size: number;
  /** SHA-256 of the bytes, hex. */
  sha256: string;
  /** Whether a file was replaced. */
  replaced: boolean;
}

/** Thrown when an upload would take a workspace or the agent over its quota. Nothing is kept. */
export class QuotaExceededError extends AgentError {
  /** `file` (one upload), `workspace` or `agent`. */
  readonly quota: 'file' | 'workspace' | 'agent';
  /** The limit, bytes. */
  readonly limitBytes: number;
  /** Creates the error. */
  constructor(quota: 'file' | 'workspace' | 'agent', limitBytes: number, detail: string) {
    super('ERR_QUOTA_EXCEEDED', `Upload refused: ${detail} (${quota} limit ${limitBytes} bytes); nothing was kept`, { status: 413 });
    this.quota = quota;
    this.limitBytes = limitBytes;
  }
}

/** Thrown when the uploaded bytes do not have the SHA-256 the client announced. Nothing is kept. */
export class ChecksumMismatchError extends AgentError {
  /** Creates the error. */
  constructor(path: string, expected: string, actual: string) {
    super('ERR_CHECKSUM_MISMATCH', `The upload of '${path}' has SHA-256 ${actual}, not ${expected}; nothing was kept`, { status: 422 });
  }
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
/** Uploads of at least this size (or of unknown size) are hashed on the worker thread. */
const OFFLOAD_HASH_MIN_BYTES = 1024 * 1024;
/** Bytes written between two background `fdatasync` calls of an upload. */
const SYNC_EVERY_BYTES = 64 * 1024 * 1024;

/** Maps a workspace refusal or failure to the API answer it means (400/403/404/409). */
export function fileErrorOf(e: unknown, path: string): unknown {
  if (e instanceof UnsafePathError) {
    const lexical = !['symlink', 'not-directory', 'not-regular-file'].includes(e.reason);
    return new AgentError('ERR_UNSAFE_PATH', e.message, { status: lexical ? 400 : 403, cause: e });
  }
  if (e instanceof WorkspaceError) {
    if (e.sysCode === 'ENOENT') return new AgentError('ERR_FILE_NOT_FOUND', `No file or folder '${path}' in the workspace`, { status: 404, cause: e });
    if (e.sysCode === 'ENOTEMPTY' || e.sysCode === 'EEXIST' || e.sysCode === 'EISDIR') return new AgentError('ERR_FILE_CONFLICT', e.message, { status: 409, cause: e });
    if (e.sysCode === 'ENOSPC' || e.sysCode === 'EDQUOT') return new AgentError('ERR_NO_SPACE', `The agent's disk is full: ${e.message}`, { status: 507, cause: e });
  }
  return e;
}

/** A ready-to-stream folder ZIP; `close()` releases the workspace when the stream is done. */
export interface WorkspaceZip extends FolderZip {
  /** Releases the workspace descriptor (call once the stream ended or was abandoned). */
  close(): Promise<void>;
}

/** An opened file and the workspace it came from; `close()` releases both. */
export interface WorkspaceReadFile extends OpenedFile {
  /** Closes the file (if still open) and the workspace descriptor. */
  close(): Promise<void>;
}

/**
 * File access to task workspaces, shared by every door. Paths are relative to the task's
 * workspace (`inputs/data.csv`, `out/result.json`); each call opens the workspace root
 * without following a link and walks from it.
 */
export class WorkspaceFiles {
  /** The folder holding one workspace per task. */
  readonly root: string;
  readonly #limits: FileLimits;
  /** Bytes of each workspace's `inputs/` as last measured (lazily, on the first upload). */
  #measured: Map<string, number> | undefined;
  #measuring: Promise<Map<string, number>> | undefined;
  /** Bytes promised to uploads in flight, per task and in all. */
  readonly #reserved = new Map<string, number>();
  #reservedTotal = 0;
  /** SHA-256 of files written through this service, by `dev:ino:size:mtimeMs` (bounded). */
  readonly #sums = new Map<string, string>();

  readonly #layout: (taskId: string) => string | undefined;

  /**
   * Serves the workspaces under `root` with the upload limits `limits` (the agent builds one from `config.files`).
   * @param root the folder holding the workspaces (`<dataDir>/workspaces`)
   * @param limits upload limits
   * @param layout the folder of a task's workspace as the task sees it, relative to
   *   `<root>/<taskId>` (`'work'` for container and compose tasks, whose `/work` it is; `''` or
   *   `undefined` for process tasks, whose working directory is the workspace itself)
   */
  constructor(root: string, limits: FileLimits, layout: (taskId: string) => string | undefined = () => undefined) {
    this.root = root;
    this.#limits = limits;
    this.#layout = layout;
  }

  /** The workspace path of a task, as the task sees it. @throws {@link ConfigError} for an id that is not a task id. */
  workspaceOf(taskId: string): string {
    if (!TaskIdSchema.safeParse(taskId).success) throw new ConfigError(`'${taskId}' is not a task id`);
    const sub = this.#layout(taskId);
    return sub ? join(this.root, taskId, sub) : join(this.root, taskId);
  }

  async #open(taskId: string, create = false): Promise<WorkspaceRoot> {
    return WorkspaceRoot.open(this.workspaceOf(taskId), create ? { create: true, mode: 0o755 } : {});
  }

  async #with<T>(taskId: string, path: string, fn: (root: WorkspaceRoot) => Promise<T>, create = false): Promise<T> {
    let root: WorkspaceRoot | undefined;
    try {
      root = await this.#open(taskId, create);
      return await fn(root);
    } catch (e) {
      throw fileErrorOf(e, path);
    } finally {
      await root?.close();
    }
  }

  /** What is at `path` (`''`: the workspace), never following a link; `undefined` when nothing is. */
  async stat(taskId: string, path: string): Promise<Omit<DirEntry, 'name'> | undefined> {
    try {
      return await this.#with(taskId, path, (r) => r.stat(path));
    } catch (e) {
      if (e instanceof AgentError && e.code === 'ERR_FILE_NOT_FOUND') return undefined;
      throw e;
    }
  }

  /** The entries of the folder `path`, sorted by name. */
  async list(taskId: string, path: string): Promise<FileEntry[]> {
    const entries = await this.#with(taskId, path, (r) => r.list(path));
    return entries
      .map((e) => ({ name: entryName([e.name]), type: e.kind, size: e.size, mtimeMs: e.mtime.getTime() }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Opens the regular file `path` for reading (links and special files refused unopened). The caller calls `close()`. */
  async openRead(taskId: string, path: string): Promise<WorkspaceReadFile> {
    let root: WorkspaceRoot | undefined;
    try {
      root = await this.#open(taskId);
      const f = await root.openFile(path);
      const r = root;
      return {
        ...f,
        close: async () => {
          await f.handle.close().catch(() => undefined);
          await r.close();
        },
      };
    } catch (e) {
      await root?.close();
      throw fileErrorOf(e, path);
    }
  }

  /** The SHA-256 of a file written through this service, when it is unchanged since (same inode, size and mtime). */
  knownSha256(stats: { dev: number; ino: number; size: number; mtimeMs: number }): string | undefined {
    return this.#sums.get(`${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}`);
  }

  /** The folder `path` as a streamed ZIP (`undefined` when it holds no file). The caller calls `close()` when done. */
  async zip(taskId: string, path: string, maxBytes?: number): Promise<WorkspaceZip | undefined> {
    let root: WorkspaceRoot | undefined;
    try {
      root = await this.#open(taskId);
      const z = await zipFolder(root, path, { ...(maxBytes !== undefined ? { maxBytes } : {}) });
      if (!z) {
        await root.close();
        return undefined;
      }
      const r = root;
      return { ...z, close: () => r.close() };
    } catch (e) {
      await root?.close();
      throw fileErrorOf(e, path);
    }
  }

  /**
   * Removes the file, link or folder at `path` (a folder with everything in it; no link is
   * followed at any level). The workspace itself cannot be removed this way.
   * @returns whether something was there.
   */
  async remove(taskId: string, path: string): Promise<boolean> {
    const parts = splitPath(path);
    if (parts.length === 0) throw new AgentError('ERR_UNSAFE_PATH', 'The workspace itself cannot be removed (name a file or folder in it)', { status: 400 });
    const removed = await this.#with(taskId, path, (r) => r.remove(path));
    if (removed !== undefined && parts[0] === INPUTS_DIR) this.#adjust(taskId, -removed);
    return removed !== undefined;
  }

  /** Creates the folder `path` (and its parents) inside `inputs/`. */
  async mkdir(taskId: string, path: string): Promise<void> {
    this.#checkInputs(path);
    await this.#with(taskId, path, (r) => r.ensureDir(path), true);
  }

  /**
   * Stores `source` at `path` (which must lie in `inputs/`): the bytes go to a temporary name,
   * are counted against the quotas as they arrive and hashed, and only a complete, verified
   * upload is `fsync`ed and renamed into place (replacing a file, or a link, never writing
   * through one). Missing folders of `path` are created.
   *
   * @throws {@link QuotaExceededError} (413), {@link ChecksumMismatchError} (422), `ERR_UNSAFE_PATH`
   *   (400/403), or the source's own error (a cut connection); nothing is left at `path` then.
   */
  async write(taskId: string, path: string, source: Readable | AsyncIterable<Uint8Array>, options: { sha256?: string; size?: number } = {}): Promise<WrittenFile> {
    const parts = this.#checkInputs(path);
    const expected = options.sha256?.toLowerCase();
    if (expected !== undefined && !SHA256_HEX.test(expected)) throw new AgentError('ERR_BAD_CHECKSUM', 'The expected SHA-256 must be 64 hex digits', { status: 400 });
    const lim = this.#limits;
    if (options.size !== undefined && options.size > lim.maxFileBytes) {
      throw new QuotaExceededError('file', lim.maxFileBytes, `the file is ${options.size} bytes`);
    }
    const measured = await this.#measure();
    let root: WorkspaceRoot | undefined;
    let reserved = 0;
    const reserve = (n: number, wsNow: number) => {
      if (reserved + n > lim.maxFileBytes) throw new QuotaExceededError('file', lim.maxFileBytes, `the file is larger than ${lim.maxFileBytes} bytes`);
      if (wsNow + (this.#reserved.get(taskId) ?? 0) + n > lim.workspaceBytes) {
        throw new QuotaExceededError('workspace', lim.workspaceBytes, `the inputs of task '${taskId}' would exceed the workspace quota`);
      }
      if (this.#usedTotal(measured) + this.#reservedTotal + n > lim.agentBytes) throw new QuotaExceededError('agent', lim.agentBytes, 'the inputs of all tasks would exceed the agent quota');
      reserved += n;
      this.#reserved.set(taskId, (this.#reserved.get(taskId) ?? 0) + n);
      this.#reservedTotal += n;
    };
    try {
      root = await this.#open(taskId, true);
      const wsNow = await inputsBytes(root);
      measured.set(taskId, wsNow);
      const old = await root.stat(path);
      // Replacing a file frees its bytes once the new one is in place; until then both count.
      if (parts.length > 1) await root.ensureDir(parts.slice(0, -1).join('/'), { what: 'folder' });
      if (old?.kind === 'directory') throw new AgentError('ERR_FILE_CONFLICT', `'${path}' is a folder`, { status: 409 });
      const nf = await root.createFile(path, { durable: true });
      // The hash runs on a worker thread for uploads that may be large (on the event loop it
      // was the largest single cost of an upload), inline for small ones of known size.
      const hash = options.size !== undefined && options.size < OFFLOAD_HASH_MIN_BYTES ? inlineSha256() : offloadedSha256();
      let size = 0;
      // Chunks are copied into batches written with one write each (a network chunk is often
      // 16-64 KiB: a thread-pool round trip per chunk would bound the throughput); a batch is
      // written while the next one fills, then handed (not copied) to the hash worker.
      let batch: Buffer | undefined;
      let fill = 0;
      let inflight: Promise<void> = Promise.resolve();
      const writeAll = async (buf: Buffer, len: number) => {
        let off = 0;
        while (off < len) off += (await nf.handle.write(buf, off, len - off)).bytesWritten;
      };
      // The page cache is flushed while the upload goes on (a `fdatasync` every
      // SYNC_EVERY_BYTES, one at a time, beside the writes), so the final fsync before the
      // rename finds little left to write instead of the whole file.
      let unsynced = 0;
      let syncing: Promise<void> | undefined;
      const flush = async () => {
        if (fill === 0 || !batch) return;
        const buf = batch;
        const len = fill;
        batch = undefined;
        fill = 0;
        await inflight;
        unsynced += len;
        if (unsynced >= SYNC_EVERY_BYTES && !syncing) {
          unsynced = 0;
          syncing = nf.handle.datasync().finally(() => (syncing = undefined));
          syncing.catch(() => undefined); // the final fsync reports a failing disk
        }
        inflight = (async () => {
          await writeAll(buf, len);
          hash.update(buf, len); // after the write: the buffer goes to the hash worker, and comes back
        })();
        inflight.catch(() => undefined); // surfaced by the next await of it
      };
      try {
        try {
          for await (const chunk of source) {
            const b = chunk as Uint8Array;
            reserve(b.byteLength, wsNow);
            size += b.byteLength;
            for (let off = 0; off < b.byteLength; ) {
              batch ??= await hash.buffer();
              const n = Math.min(b.byteLength - off, OFFLOAD_BUFFER_BYTES - fill);
              batch.set(off === 0 && n === b.byteLength ? b : b.subarray(off, off + n), fill);
              fill += n;
              off += n;
              if (fill === OFFLOAD_BUFFER_BYTES) await flush();
            }
          }
          await flush();
        } finally {
          // No write or sync may still run when the file is aborted or committed.
          await inflight.catch(() => undefined);
          await syncing?.catch(() => undefined);
        }
        await inflight;
        if (options.size !== undefined && size !== options.size) {
          throw new AgentError('ERR_INCOMPLETE_UPLOAD', `The upload of '${path}' ended after ${size} of ${options.size} bytes; nothing was kept`, { status: 400 });
        }
        const sha256 = await hash.digest();
        if (expected !== undefined && expected !== sha256) throw new ChecksumMismatchError(path, expected, sha256);
        const st = await nf.handle.stat();
        await nf.commit();
        this.#remember(`${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`, sha256);
        measured.set(taskId, wsNow + size - (old?.kind === 'file' ? old.size : 0));
        return { path, size, sha256, replaced: old !== undefined };
      } catch (e) {
        hash.abort();
        await nf.abort();
        throw e;
      }
    } catch (e) {
      throw fileErrorOf(e, path);
    } finally {
      this.#reserved.set(taskId, (this.#reserved.get(taskId) ?? 0) - reserved);
      if (this.#reserved.get(taskId) === 0) this.#reserved.delete(taskId);
      this.#reservedTotal -= reserved;
      await root?.close();
    }
  }

  /** Bytes in all `inputs/` folders (as last measured) and in uploads now in flight. */
  async usage(): Promise<{ inputsBytes: number; inFlightBytes: number; limits: FileLimits }> {
    const m = await this.#measure();
    return { inputsBytes: this.#usedTotal(m), inFlightBytes: this.#reservedTotal, limits: { ...this.#limits } };
  }

  /** Forgets a task's workspace (it was deleted). */
  forget(taskId: string): void {
    this.#measured?.delete(taskId);
  }

  #checkInputs(path: string): string[] {
    const parts = splitPath(path);
    if (parts.length < 2 || parts[0] !== INPUTS_DIR) {
      throw new AgentError('ERR_READ_ONLY_PATH', `Uploads go under '${INPUTS_DIR}/' (got '${path}')`, { status: 403 });
    }
    return parts;
  }

  #usedTotal(m: Map<string, number>): number {
    let t = 0;
    for (const v of m.values()) t += v;
    return t;
  }

  #adjust(taskId: string, delta: number): void {
    const m = this.#measured;
    if (m) m.set(taskId, Math.max(0, (m.get(taskId) ?? 0) + delta));
  }

  #remember(key: string, sha: string): void {
    this.#sums.set(key, sha);
    if (this.#sums.size > 10_000) this.#sums.delete(this.#sums.keys().next().value!);
  }

  /** Measures every workspace's `inputs/` once (the agent's starting usage). */
  #measure(): Promise<Map<string, number>> {
    if (this.#measured) return Promise.resolve(this.#measured);
    this.#measuring ??= (async () => {
      const m = new Map<string, number>();
      let top: WorkspaceRoot | undefined;
      try {
        top = await WorkspaceRoot.open(this.root, { create: true });
        for (const e of await top.list('')) {
          if (e.kind !== 'directory') continue;
          const id = e.name.toString('utf8');
          if (!TaskIdSchema.safeParse(id).success) continue;
          let ws: WorkspaceRoot | undefined;
          try {
            ws = await WorkspaceRoot.open(this.workspaceOf(id));
            m.set(id, await inputsBytes(ws));
          } catch {
            // Vanished or unreadable: counts as empty.
          } finally {
            await ws?.close();
          }
        }
      } finally {
        await top?.close();
      }
      this.#measured = m;
      return m;
    })();
    this.#measuring.catch(() => (this.#measuring = undefined));
    return this.#measuring;
  }
}

/** The components of `path`, or the API refusal (400) of a path the policy refuses lexically. */
function splitPath(path: string): string[] {
  try {
    return splitRelativePath(path, 'path');
  } catch (e) {
    throw fileErrorOf(e, path);
  }
}

/** Bytes of the regular files under `inputs/` of an open workspace (0 when it has none). */
async function inputsBytes(root: WorkspaceRoot): Promise<number> {
  let n = 0;
  try {
    for await (const e of root.walk(INPUTS_DIR)) if (e.kind === 'file') n += e.size;
  } catch (e) {
    if (e instanceof WorkspaceError && e.sysCode === 'ENOENT') return 0;
    if (e instanceof UnsafePathError) return 0; // a link or file where inputs/ should be holds nothing of ours
    throw e;
  }
  return n;
}

