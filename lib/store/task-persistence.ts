/**
 * The queue's persistence on a {@link JsonStore}: a group-committed journal and a snapshot,
 * under one folder of the store.
 * @module
 */
import { channel } from 'node:diagnostics_channel';
import { open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { TaskRecordSchema, type TaskRecord } from '../task/types.js';
import type { TaskPersistence } from '../task/persistence.js';
import { fsyncDir, mkdirDurable, storeIoError } from './atomic.js';
import { StoreCorruptError, StoreLockError } from './errors.js';
import { checkLine, GroupCommitJournal, journalLine, parseJournal } from './journal.js';
import type { JsonStore } from './store.js';
import { processStartTicks } from '../util/proc-start.js';

/** Channel names of the task persistence (`node:diagnostics_channel`). */
export const TASK_PERSISTENCE_CHANNELS = {
  /** `{ path, records, droppedBytes }` for each journal read at start (`droppedBytes` > 0: a torn tail, cut by a crash, was ignored). */
  replay: 'smoothtask:store:journal-replay',
  /** `{ snapshot, tasks, bytes, durationMs }` after each checkpoint (a new snapshot replaced the old one and the journal). */
  checkpoint: 'smoothtask:store:checkpoint',
} as const;
const replayCh = channel(TASK_PERSISTENCE_CHANNELS.replay);
const checkpointCh = channel(TASK_PERSISTENCE_CHANNELS.checkpoint);

/** Options of {@link StoreTaskPersistence}. */
export interface StoreTaskPersistenceOptions {
  /** Folder of the task records in the store (default `tasks`). */
  prefix?: string;
  /** Hears of records found damaged at start (a legacy document moved aside, or a snapshot line that fails its checksum). */
  onCorrupt?: (err: StoreCorruptError) => void;
  /**
   * Journal bytes after which a checkpoint writes a new snapshot (default 4 MiB; a checkpoint
   * also waits until the journal is at least as large as the snapshot, so rewriting the
   * snapshot costs at most as many bytes as were journaled).
   */
  checkpointBytes?: number;
}

/**
 * A journal line. `id` comes first so that a checkpoint can tell which task a snapshot line
 * belongs to without parsing it; a snapshot holds the `put` lines of the live tasks verbatim.
 */
type JournalOp = { id: string; op: 'put'; rec: TaskRecord } | { id: string; op: 'del' };
const ID_PREFIX = Buffer.from('{"id":');

/** An open journal, its generation, the latest operation per task in it, and whether a checkpoint took it. */
interface OpenJournal {
  j: GroupCommitJournal;
  gen: number;
  /** The last line per task in this journal (`null`: deleted). */
  changes: Map<string, string | null>;
  retired: boolean;
}

/** `.snapshot-<generation>.log` and `.journal-<generation>.log`, generation as 12 digits. */
const FILE_RE = /^\.(snapshot|journal)-(\d{12})\.log$/;
const TMP_RE = /^\.snapshot-\d{12}\.log\.tmp$/;
const gen = (g: number) => String(g).padStart(12, '0');
const WRITER = '.writer';

/** The task id of a snapshot line (its JSON starts with `{"id":"…"`), without parsing the rest. */
function lineId(buf: Buffer, start: number, end: number): string | undefined {
  if (buf.compare(ID_PREFIX, 0, ID_PREFIX.length, start, start + ID_PREFIX.length) !== 0) return undefined;
  // The id is a store key (letters, digits, . _ -): no escapes, so the next quote ends it.
  const q1 = start + ID_PREFIX.length;
  if (buf[q1] !== 0x22) return undefined;
  const q2 = buf.indexOf(0x22, q1 + 1);
  if (q2 < 0 || q2 >= end) return undefined;
  return buf.toString('utf8', q1 + 1, q2);
}

/** What is on disk under a prefix. */
interface OnDisk {
  snapshots: number[];
  journals: number[];
  legacy: string[];
  temps: string[];
}

async function scan(dir: string): Promise<OnDisk> {
  const names = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [] as string[];
    throw storeIoError(e, dir, 'list');
  });
  const out: OnDisk = { snapshots: [], journals: [], legacy: [], temps: [] };
  for (const n of names) {
    const m = FILE_RE.exec(n);
    if (m) (m[1] === 'snapshot' ? out.snapshots : out.journals).push(Number(m[2]));
    else if (TMP_RE.test(n)) out.temps.push(n);
    else if (n.endsWith('.json') && !n.startsWith('.')) out.legacy.push(n.slice(0, -5));
  }
  out.snapshots.sort((a, b) => a - b);
  out.journals.sort((a, b) => a - b);
  out.legacy.sort();
  return out;
}

/**
 * Task records of one queue in a {@link JsonStore}, under `<dir>/<prefix>/`. Pass it to
 * `new TaskQueue({ persistence })`.
 *
 * Every `save()` adds the record to a journal and resolves once its line is on disk (an
 * `O_DSYNC` write into preallocated space); saves that arrive while a commit runs share the
 * next one (group commit), so eight running tasks cost one disk write per round of
 * transitions, not eight. A checkpoint
 * (every `checkpointBytes` of journal, and at `close()`) streams the previous snapshot and the
 * journal's changes into a new snapshot (temp file, fsync, rename), then removes the old
 * files. At start, `loadAll()` reads the newest snapshot and the journals after it, ignores a
 * torn last line (a crash mid-write; every line carries its length and CRC-32) and compacts
 * them into one snapshot. Task documents of earlier versions (`<prefix>/<id>.json`) are read
 * once and folded in.
 *
 * One writer per prefix: the first `loadAll()` or `save()` claims `<prefix>/.writer` (pid and
 * process start time); a live other owner gets {@link StoreLockError}, a dead one is taken over.
 * {@link StoreTaskPersistence.inspect} reads the records without claiming.
 */
export class StoreTaskPersistence implements TaskPersistence {
  readonly #store: JsonStore;
  readonly #prefix: string;
  readonly #onCorrupt: (err: StoreCorruptError) => void;
  readonly #checkpointBytes: number;
  readonly #dir: string;
  #opened: Promise<void> | undefined;
  #snapshotGen = 0;
  #snapshotBytes = 0;
  /** The journal saves go to now. */
  #journal: Promise<OpenJournal> | undefined;
  /** The next journal, created (and preallocated) while the current one fills. */
  #spare: Promise<OpenJournal> | undefined;
  readonly #prealloc: number;
  #nextGen = 1;
  #retired: Promise<void> = Promise.resolve();
  #retirePending = false;
  #token = '';

  /**
   * Task records under `<prefix>/` in `store`.
   * @param store the store
   * @param options see {@link StoreTaskPersistenceOptions}
   */
  constructor(store: JsonStore, options: StoreTaskPersistenceOptions = {}) {
    this.#store = store;
    this.#prefix = options.prefix ?? 'tasks';
    this.#onCorrupt = options.onCorrupt ?? (() => {});
    this.#checkpointBytes = options.checkpointBytes ?? 4 * 1024 * 1024;
    const MiB = 1 << 20;
    this.#prealloc = Math.min(64 * MiB, Math.ceil((this.#checkpointBytes + MiB) / MiB) * MiB);
    this.#dir = dirname(store.path(`${this.#prefix}/x`));
  }

  /**
   * Reads the task records recorded under `prefix` (snapshot, journals after it, documents of
   * earlier versions) without claiming the prefix or changing any file: what a queue starting
   * now would find. For tools and tests beside a running queue.
   */
  static async inspect(store: JsonStore, options: Pick<StoreTaskPersistenceOptions, 'prefix'> = {}): Promise<TaskRecord[]> {
    const p = new StoreTaskPersistence(store, options);
    // A checkpoint of the writer may remove a file between the listing and its read: read again.
    for (let i = 0; ; i++) {
      const disk = await scan(p.#dir);
      const state = await p.#readState(disk, false);
      const again = await scan(p.#dir);
      if (i >= 4 || JSON.stringify(again) === JSON.stringify(disk)) return [...state.values()];
    }
  }

  /** Records the task: resolves once its journal line is on disk. */
  async save(task: TaskRecord): Promise<void> {
    await this.#append({ id: task.id, op: 'put', rec: task });
  }

  /** Forgets a task's record (a journal line; the next snapshot leaves it out). */
  async remove(id: string): Promise<void> {
    await this.#append({ id, op: 'del' });
  }

  /**
   * Claims the prefix (first call), then reads every task record: the newest snapshot and the
   * journals after it, compacted into one snapshot on the first call. Damaged records are
   * reported to `onCorrupt` and left out.
   */
  async loadAll(): Promise<TaskRecord[]> {
    await this.#open();
    return [...(await this.#readState(await scan(this.#dir), false)).values()];
  }

  /** Writes a snapshot of everything journaled, closes the journal and gives up the prefix. Later saves claim it again. */
  async close(): Promise<void> {
    if (!this.#opened) return;
    await this.#opened.catch(() => {});
    const done = this.#retired.then(() => this.#checkpoint());
    this.#retired = done.catch(() => {});
    await done;
    const spare = await this.#spare?.catch(() => undefined);
    this.#spare = undefined;
    if (spare) {
      await spare.j.close();
      await unlink(spare.j.path).catch(() => {});
      await fsyncDir(this.#dir).catch(() => {});
    }
    this.#opened = undefined;
    // Give the prefix up only if it is still ours.
    const owner = await readFile(join(this.#dir, WRITER), 'utf8').catch(() => undefined);
    if (owner === this.#token) await unlink(join(this.#dir, WRITER)).catch(() => {});
  }

  // ---------------------------------------------------------------- internals

  async #append(op: JournalOp): Promise<void> {
    this.#store.assertOpen();
    const id = op.id;
    this.#store.path(`${this.#prefix}/${id}`); // the id must be a key this store accepts
    const line = journalLine(op);
    await this.#open();
    for (;;) {
      const cur = await this.#current();
      // From here to the append nothing awaits: a checkpoint that took this journal waits for it.
      if (cur.retired) continue;
      cur.changes.set(id, op.op === 'put' ? line : null);
      try {
        await cur.j.appendLine(line);
      } catch (e) {
        // A journal refuses appends after a failed write: a checkpoint retires it (the next save opens a new one).
        if (!cur.retired) this.#retireSoon();
        throw e;
      }
      const threshold = Math.max(this.#checkpointBytes, this.#snapshotBytes);
      if (!cur.retired && !this.#spare && cur.j.bytes >= threshold / 2) {
        const sp = this.#openJournal();
        this.#spare = sp;
        sp.catch(() => {
          if (this.#spare === sp) this.#spare = undefined;
        });
      }
      if (!cur.retired && cur.j.bytes >= threshold) this.#retireSoon();
      return;
    }
  }

  #current(): Promise<OpenJournal> {
    if (!this.#journal && this.#spare) {
      this.#journal = this.#spare;
      this.#spare = undefined;
    }
    if (!this.#journal) {
      const p = this.#openJournal();
      this.#journal = p;
      p.catch(() => {
        if (this.#journal === p) this.#journal = undefined;
      });
    }
    return this.#journal;
  }

  #open(): Promise<void> {
    if (!this.#opened) {
      const p = this.#claimAndCompact();
      this.#opened = p;
      p.catch(() => {
        if (this.#opened === p) this.#opened = undefined;
      });
    }
    return this.#opened;
  }

  async #claimAndCompact(): Promise<void> {
    await mkdirDurable(this.#dir);
    await this.#claim();
    const disk = await scan(this.#dir);
    for (const t of disk.temps) await unlink(join(this.#dir, t)).catch(() => {});
    const top = Math.max(0, ...disk.snapshots, ...disk.journals);
    this.#snapshotGen = disk.snapshots.at(-1) ?? 0;
    this.#nextGen = top + 1;
    const extra = disk.snapshots.length > 1 || disk.journals.length > 0 || disk.legacy.length > 0;
    if (!extra) {
      if (this.#snapshotGen) this.#snapshotBytes = (await stat(join(this.#dir, `.snapshot-${gen(this.#snapshotGen)}.log`)).catch(() => undefined))?.size ?? 0;
      return;
    }
    // Fold everything into one snapshot, so the files after a crash are replayed once.
    const state = await this.#readState(disk, true);
    const g = this.#nextGen++;
    await this.#writeSnapshot(
      g,
      [...state.values()].map((rec) => Buffer.from(journalLine({ id: rec.id, op: 'put', rec } satisfies JournalOp), 'utf8')),
    );
    await this.#removeFiles(disk, g);
  }

  /** Claims `<prefix>/.writer`: created exclusively; a dead owner's file is taken over. */
  async #claim(): Promise<void> {
    const path = join(this.#dir, WRITER);
    this.#token ||= `${process.pid} ${processStartTicks(process.pid) ?? '0'} ${Math.random().toString(36).slice(2)}`;
    for (let i = 0; i < 5; i++) {
      try {
        const fh = await open(path, 'wx', 0o644);
        try {
          await fh.writeFile(this.#token);
        } finally {
          await fh.close();
        }
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw storeIoError(e, path, 'lock');
      }
      const owner = await readFile(path, 'utf8').catch(() => '');
      if (owner === this.#token) return; // ours (an earlier start-up of this object failed after claiming)
      const [pid, start] = owner.split(' ');
      if (pid && start && Number(pid) > 0 && processStartTicks(Number(pid)) === start) {
        throw new StoreLockError(path, `task records under '${this.#prefix}' are written by another queue (pid ${pid})`);
      }
      // The owner is gone (or the file is empty, cut by a crash): move it aside and try again;
      // a concurrent taker that moved it first makes our rename fail with ENOENT.
      await rename(path, `${path}.stale-${process.pid}`).then(
        () => unlink(`${path}.stale-${process.pid}`).catch(() => {}),
        () => {},
      );
    }
    throw new StoreLockError(path, 'could not claim the task records (contended)');
  }

  /** Records from legacy documents, then the newest snapshot, then the journals after it. */
  async #readState(disk: OnDisk, report: boolean): Promise<Map<string, TaskRecord>> {
    const state = new Map<string, TaskRecord>();
    for (const id of disk.legacy) {
      if (!report) {
        // Read-only (inspect): a damaged document is left where it is.
        const raw = await readFile(join(this.#dir, `${id}.json`), 'utf8').catch(() => undefined);
        let parsed: unknown;
        try {
          parsed = raw === undefined ? undefined : JSON.parse(raw);
        } catch {
          parsed = undefined;
        }
        const p = TaskRecordSchema.safeParse(parsed);
        if (p.success) state.set(p.data.id, p.data);
        continue;
      }
      try {
        const r = await this.#store.read(`${this.#prefix}/${id}`, TaskRecordSchema);
        if (r) state.set(r.id, r);
      } catch (e) {
        if (e instanceof StoreCorruptError) {
          if (report) this.#onCorrupt(e);
        } else throw e;
      }
    }
    const snap = disk.snapshots.at(-1);
    if (snap !== undefined) {
      const path = join(this.#dir, `.snapshot-${gen(snap)}.log`);
      const { records, bad } = parseJournal(await this.#read(path), true);
      for (const r of records) {
        const p = TaskRecordSchema.safeParse((r as { rec?: unknown } | null)?.rec);
        if (p.success) state.set(p.data.id, p.data);
        else if (report) this.#onCorrupt(new StoreCorruptError(path, undefined, 'schema', { cause: p.error }));
      }
      if (report) for (let i = 0; i < bad; i++) this.#onCorrupt(new StoreCorruptError(path, undefined, 'json'));
    }
    for (const g of disk.journals) {
      if (snap !== undefined && g <= snap) continue;
      const path = join(this.#dir, `.journal-${gen(g)}.log`);
      const { records, droppedBytes } = parseJournal(await this.#read(path), false);
      for (const r of records) {
        const op = (r ?? {}) as JournalOp;
        if (op.op === 'del' && typeof op.id === 'string') state.delete(op.id);
        else if (op.op === 'put') {
          const p = TaskRecordSchema.safeParse(op.rec);
          if (p.success) state.set(p.data.id, p.data);
          else if (report) this.#onCorrupt(new StoreCorruptError(path, undefined, 'schema', { cause: p.error }));
        }
      }
      if (report && replayCh.hasSubscribers) replayCh.publish({ path, records: records.length, droppedBytes });
    }
    return state;
  }

  async #read(path: string): Promise<Buffer> {
    try {
      return await readFile(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0); // retired meanwhile
      throw storeIoError(e, path, 'read');
    }
  }

  async #openJournal(): Promise<OpenJournal> {
    const g = this.#nextGen++;
    const j = await GroupCommitJournal.open(join(this.#dir, `.journal-${gen(g)}.log`), this.#prealloc);
    try {
      await fsyncDir(this.#dir);
    } catch (e) {
      await j.close();
      throw e;
    }
    return { j, gen: g, changes: new Map(), retired: false };
  }

  #retireSoon(): void {
    if (this.#retirePending) return;
    this.#retirePending = true;
    this.#retired = this.#retired
      .then(() => {
        this.#retirePending = false;
        return this.#checkpoint();
      })
      .catch(() => {
        /* the journal stays and is read at the next start; a failing disk shows in later saves */
      });
  }

  /**
   * Retires the current journal: later saves go to a new one; the previous snapshot with this
   * journal's changes becomes a new snapshot (generation of the journal), then both old files go.
   */
  async #checkpoint(): Promise<void> {
    const curP = this.#journal;
    if (!curP) return;
    this.#journal = undefined;
    const cur = await curP.catch(() => undefined);
    if (!cur) return;
    cur.retired = true;
    const t0 = performance.now();
    await cur.j.close();
    const prev = this.#snapshotGen;
    // The previous snapshot's lines are copied as they are (checked, not parsed) unless this
    // journal changed their task; then the journal's last line of each task that still exists.
    const lines: Buffer[] = [];
    if (prev) {
      const buf = await this.#read(join(this.#dir, `.snapshot-${gen(prev)}.log`));
      for (let pos = 0; pos < buf.length; ) {
        const l = checkLine(buf, pos);
        if (!l) {
          const nl = buf.indexOf(0x0a, pos);
          pos = nl < 0 ? buf.length : nl + 1;
          continue; // damaged: reported at the next start, dropped here as it would be there
        }
        const id = lineId(buf, l.start, l.end);
        if (id !== undefined && !cur.changes.has(id)) lines.push(buf.subarray(pos, l.next));
        pos = l.next;
      }
    }
    let tasks = lines.length;
    for (const line of cur.changes.values()) {
      if (line) {
        lines.push(Buffer.from(line, 'utf8'));
        tasks++;
      }
    }
    const bytes = await this.#writeSnapshot(cur.gen, lines);
    const files: OnDisk = { snapshots: prev ? [prev] : [], journals: [cur.gen], legacy: [], temps: [] };
    await this.#removeFiles(files, cur.gen);
    if (checkpointCh.hasSubscribers) {
      checkpointCh.publish({ snapshot: join(this.#dir, `.snapshot-${gen(cur.gen)}.log`), tasks, bytes, durationMs: performance.now() - t0 });
    }
  }

  /** Writes `.snapshot-<g>.log` durably (temp file, fsync, rename, directory fsync); returns its size. */
  async #writeSnapshot(g: number, lines: Iterable<Buffer>): Promise<number> {
    const path = join(this.#dir, `.snapshot-${gen(g)}.log`);
    const tmp = `${path}.tmp`;
    let bytes = 0;
    try {
      const fh = await open(tmp, 'w', 0o644);
      try {
        let chunk: Buffer[] = [];
        let size = 0;
        for (const line of lines) {
          chunk.push(line);
          size += line.length;
          if (size >= 1 << 20) {
            await fh.write(Buffer.concat(chunk));
            bytes += size;
            chunk = [];
            size = 0;
          }
        }
        if (size) await fh.write(Buffer.concat(chunk));
        bytes += size;
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
    } catch (e) {
      await unlink(tmp).catch(() => {});
      throw storeIoError(e, path, 'write');
    }
    await fsyncDir(this.#dir);
    this.#snapshotGen = g;
    this.#snapshotBytes = bytes;
    return bytes;
  }

  /** Removes the files a snapshot of generation `upTo` covers (older snapshots, journals ≤ upTo, legacy documents). */
  async #removeFiles(disk: OnDisk, upTo: number): Promise<void> {
    const names = [
      ...disk.snapshots.filter((g) => g < upTo).map((g) => `.snapshot-${gen(g)}.log`),
      ...disk.journals.filter((g) => g <= upTo).map((g) => `.journal-${gen(g)}.log`),
      ...disk.legacy.flatMap((id) => [`${id}.json`, `.${id}.json.lock-owner`]),
    ];
    for (const n of names) {
      await unlink(join(this.#dir, n)).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw storeIoError(e, join(this.#dir, n), 'delete');
      });
    }
    await fsyncDir(this.#dir);
  }
}
