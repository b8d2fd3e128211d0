/**
 * JsonStore: a directory of JSON documents, each validated with zod, written crash-safely and
 * guarded by an inter-process lock.
 * @module
 */
import { channel } from 'node:diagnostics_channel';
import { readdir, readFile, rename, unlink, stat } from 'node:fs/promises';
import { join, resolve, dirname } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors/index.js';
import { validate } from '../errors/validate.js';
import { fsyncDir, mkdirDurable, storeIoError, TEMP_FILE_RE, writeFileDurable } from './atomic.js';
import { StoreClosedError, StoreCorruptError } from './errors.js';
import { leaseOf } from './lease.js';

/** Channel names of the store (`node:diagnostics_channel`). */
export const STORE_CHANNELS = {
  /** `{ path, bytes, durationMs }` after each durable write. */
  write: 'smoothtask:store:write',
  /** `{ path, movedTo, kind }` when a corrupt document was moved aside. */
  corrupt: 'smoothtask:store:corrupt',
  /** `{ path, error }` when a held lock was compromised (e.g. the event loop stalled past `staleMs`). */
  lockCompromised: 'smoothtask:store:lock-compromised',
} as const;
const writeCh = channel(STORE_CHANNELS.write);
const corruptCh = channel(STORE_CHANNELS.corrupt);

/** Options of {@link JsonStore.open}. */
export const JsonStoreOptionsSchema = z.strictObject({
  /** Root directory (created if missing). */
  dir: z.string().min(1),
  /**
   * Inter-process locking: one lease per store directory (proper-lockfile's `.store.lock`
   * directory, its mtime refreshed while held), held by a process while it has writes in
   * flight and handed to a waiting process within about 200 ms. `false` when this process is
   * known to be the only writer.
   */
  lock: z
    .union([
      z.literal(false),
      z.object({
        /** A lock not refreshed for this long is stale and taken over (proper-lockfile minimum 2000). */
        staleMs: z.number().min(2000).default(20_000),
        /** Refresh period of a held lock (at most staleMs/2, at least 1000). */
        updateMs: z.number().min(1000).default(5_000),
        /** How long to wait for a lock held by another process. */
        waitMs: z.number().min(0).default(30_000),
      }),
    ])
    .default({ staleMs: 20_000, updateMs: 5_000, waitMs: 30_000 }),
  /** Pretty-print documents (2 spaces). */
  pretty: z.boolean().default(true),
});
/** Options of {@link JsonStore.open}. */
export type JsonStoreOptions = z.input<typeof JsonStoreOptionsSchema>;

const KEY_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/;

/** Process-wide per-path mutexes: one writer per document per process, even across store instances. */
const mutexes = new Map<string, Promise<unknown>>();
function serialize<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const prev = mutexes.get(path) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  const tail = run.then(
    () => {},
    () => {},
  );
  mutexes.set(path, tail);
  void tail.then(() => {
    if (mutexes.get(path) === tail) mutexes.delete(path);
  });
  return run;
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * A directory of JSON documents. Keys are relative paths without extension
 * (`tasks/abc` -> `<dir>/tasks/abc.json`).
 *
 * Guarantees: a write that resolved survives a crash or power loss (temp file + fsync +
 * rename + directory fsync); a crash at any moment leaves the old or the new document, never
 * a torn one; read-modify-write with {@link JsonStore.update} is serialized across processes
 * by the lock, so no update is lost; a corrupt document is moved aside and reported with a
 * {@link StoreCorruptError}, never overwritten blindly.
 *
 * @example
 * ```ts
 * const store = await JsonStore.open({ dir: '/var/lib/app/state' });
 * const Counter = z.object({ n: z.number() });
 * await store.update('counters/jobs', Counter, (c) => ({ n: (c?.n ?? 0) + 1 }));
 * ```
 */
export class JsonStore {
  /** Absolute root directory. */
  readonly dir: string;
  readonly #opts: z.output<typeof JsonStoreOptionsSchema>;
  readonly #dirs = new Set<string>();
  #closed = false;

  private constructor(opts: z.output<typeof JsonStoreOptionsSchema>) {
    this.#opts = opts;
    this.dir = resolve(opts.dir);
  }

  /** Opens (creating) a store and removes temp files left by dead writers. */
  static async open(options: JsonStoreOptions): Promise<JsonStore> {
    const opts = validate(JsonStoreOptionsSchema, options, 'store options');
    const s = new JsonStore(opts);
    await mkdirDurable(s.dir);
    s.#dirs.add(s.dir);
    await s.#sweep(s.dir, 0);
    return s;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Further calls throw {@link StoreClosedError}; operations in flight finish. Idempotent. */
  close(): void {
    this.#closed = true;
  }

  /**
   * Throws {@link StoreClosedError} if the store was closed.
   * @internal
   */
  assertOpen(): void {
    this.#check();
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** The file path of a key. */
  path(key: string): string {
    if (!KEY_RE.test(key) || key.split('/').some((p) => p === '.' || p === '..')) {
      throw new ConfigError(`Invalid store key '${key}' (use segments of letters, digits, . _ - separated by /)`);
    }
    return join(this.dir, `${key}.json`);
  }

  /**
   * Reads a document: `undefined` if absent. A corrupt one is moved aside and a
   * {@link StoreCorruptError} thrown.
   */
  async read<S extends z.ZodType>(key: string, schema: S): Promise<z.output<S> | undefined> {
    this.#check();
    const path = this.path(key);
    const raw = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw storeIoError(e, path, 'read');
    });
    if (raw === undefined) return undefined;
    const parsed = this.#parse(raw, schema);
    if (parsed.ok) return parsed.value;
    // Move aside under the lock, and only if the bytes are still the bad ones (a writer may have just replaced them).
    return this.#locked(path, async () => {
      const again = await readFile(path, 'utf8').catch(() => undefined);
      if (again === undefined) return undefined;
      if (again !== raw) {
        const p2 = this.#parse(again, schema);
        if (p2.ok) return p2.value;
      }
      throw await this.#moveAside(path, parsed.kind, parsed.error);
    });
  }

  /** Validates `value` and writes it durably (under the lock). */
  async write<S extends z.ZodType>(key: string, schema: S, value: z.input<S>): Promise<void> {
    this.#check();
    const path = this.path(key);
    const data = validate(schema, value, `store document '${key}'`);
    await this.#locked(path, (guard) => this.#writeRaw(path, data, guard));
  }

  /**
   * Read-modify-write under the lock: `fn` gets the current document (or `undefined`) and
   * returns the new one, which is validated and written. Returns what was written. If the
   * current document is corrupt the update throws {@link StoreCorruptError} (after moving the
   * file aside) instead of replacing it.
   */
  async update<S extends z.ZodType>(
    key: string,
    schema: S,
    fn: (current: z.output<S> | undefined) => z.input<S> | Promise<z.input<S>>,
  ): Promise<z.output<S>> {
    this.#check();
    const path = this.path(key);
    return this.#locked(path, async (guard) => {
      const raw = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return undefined;
        throw storeIoError(e, path, 'read');
      });
      let current: z.output<S> | undefined;
      if (raw !== undefined) {
        const p = this.#parse(raw, schema);
        if (!p.ok) throw await this.#moveAside(path, p.kind, p.error);
        current = p.value;
      }
      const next = validate(schema, await fn(current), `store document '${key}'`);
      await this.#writeRaw(path, next, guard);
      return next;
    });
  }

  /** Deletes a document; `false` if it did not exist. */
  async delete(key: string): Promise<boolean> {
    this.#check();
    const path = this.path(key);
    return this.#locked(path, async () => {
      try {
        await unlink(path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw storeIoError(e, path, 'delete');
      }
      await fsyncDir(dirname(path));
      return true;
    });
  }

  /** Keys of the documents directly under `prefix` (e.g. `list('tasks')`), sorted. */
  async list(prefix = ''): Promise<string[]> {
    this.#check();
    const dir = prefix ? dirname(this.path(`${prefix}/x`)) : this.dir;
    const names = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return [] as string[];
      throw storeIoError(e, dir, 'list');
    });
    return names
      .filter((n) => n.endsWith('.json') && !n.startsWith('.'))
      .map((n) => (prefix ? `${prefix}/${n.slice(0, -5)}` : n.slice(0, -5)))
      .sort();
  }

  // ------------------------------------------------------------------ internals

  #check(): void {
    if (this.#closed) throw new StoreClosedError();
  }

  #parse<S extends z.ZodType>(
    raw: string,
    schema: S,
  ): { ok: true; value: z.output<S> } | { ok: false; kind: 'json' | 'schema'; error: unknown } {
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (error) {
      return { ok: false, kind: 'json', error };
    }
    const r = schema.safeParse(json);
    return r.success ? { ok: true, value: r.data } : { ok: false, kind: 'schema', error: r.error };
  }

  async #moveAside(path: string, kind: 'json' | 'schema', cause: unknown): Promise<StoreCorruptError> {
    let movedTo: string | undefined = `${path}.corrupt-${Date.now()}`;
    try {
      await rename(path, movedTo);
    } catch {
      movedTo = undefined;
    }
    // The move happened even if making it durable failed (the bad bytes are kept either way).
    if (movedTo) await fsyncDir(dirname(path)).catch(() => {});
    if (corruptCh.hasSubscribers) corruptCh.publish({ path, movedTo, kind });
    return new StoreCorruptError(path, movedTo, kind, { cause });
  }

  async #writeRaw(path: string, value: unknown, guard: () => void | Promise<void>): Promise<void> {
    const t0 = performance.now();
    const dir = dirname(path);
    if (!this.#dirs.has(dir)) {
      await mkdirDurable(dir);
      this.#dirs.add(dir);
    }
    const data = (this.#opts.pretty ? JSON.stringify(value, null, 2) : JSON.stringify(value)) + '\n';
    await writeFileDurable(path, data, { beforeRename: guard });
    if (writeCh.hasSubscribers) writeCh.publish({ path, bytes: Buffer.byteLength(data), durationMs: performance.now() - t0 });
  }

  /** Runs `fn` holding the in-process mutex of `path` and the store's inter-process lease. */
  #locked<T>(path: string, fn: (guard: () => void | Promise<void>) => Promise<T>): Promise<T> {
    const lockOpts = this.#opts.lock;
    return serialize(path, async () => {
      if (lockOpts === false) return fn(() => {});
      const lease = leaseOf(this.dir);
      const guard = await lease.enter(lockOpts);
      try {
        return await fn(guard);
      } finally {
        lease.leave();
      }
    });
  }

  async #sweep(dir: string, depth: number): Promise<void> {
    if (depth > 4) return;
    const ents = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const ent of ents) {
      const p = join(dir, ent.name);
      if (ent.isDirectory()) {
        if (!ent.name.endsWith('.lock')) await this.#sweep(p, depth + 1);
        continue;
      }
      const m = TEMP_FILE_RE.exec(ent.name);
      if (m && Number(m[1]) !== process.pid && !isAlive(Number(m[1]))) {
        // Extra care: never delete a temp file that is still being written within the last minute by a pid-reusing writer.
        const st = await stat(p).catch(() => undefined);
        if (st && Date.now() - st.mtimeMs > 1000) await unlink(p).catch(() => {});
      }
    }
  }
}
