/**
 * A group-committed append-only journal: records appended while a commit is in flight are
 * written together by the next one (one `O_DSYNC` write). Each line carries its length and
 * CRC-32, so a torn tail (a crash in the middle of a write) is recognised and ignored.
 *
 * Line format: `<crc32 hex, 8> <byte length of json> <json>\n`.
 * @module
 * @internal
 */
import { constants as fsc } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { storeIoError } from './atomic.js';
import { StoreClosedError } from './errors.js';

/** One encoded journal line for `value` (a string: lines are joined and encoded once per commit). */
export function journalLine(value: unknown): string {
  const json = JSON.stringify(value);
  return `${crc32(json).toString(16).padStart(8, '0')} ${Buffer.byteLength(json)} ${json}\n`;
}

/** What {@link parseJournal} found. */
export interface JournalContents {
  /** The intact records, in order. */
  records: unknown[];
  /** Bytes after the last intact line when parsing stopped there (a write cut by a crash, or damage). */
  droppedBytes: number;
  /** Damaged lines skipped (only with `skipBad`). */
  bad: number;
}

/**
 * Checks the line at `pos` (length and CRC) without parsing its JSON: the JSON's bounds and the
 * next position, or undefined if the line is not intact.
 */
export function checkLine(buf: Buffer, pos: number): { start: number; end: number; next: number } | undefined {
  const sp1 = buf.indexOf(0x20, pos);
  const sp2 = sp1 < 0 ? -1 : buf.indexOf(0x20, sp1 + 1);
  if (sp1 !== pos + 8 || sp2 < 0 || sp2 - sp1 > 11) return undefined;
  const crc = Number.parseInt(buf.toString('latin1', pos, sp1), 16);
  const len = Number(buf.toString('latin1', sp1 + 1, sp2));
  if (!Number.isSafeInteger(len) || len < 0) return undefined;
  const start = sp2 + 1;
  const end = start + len;
  if (end >= buf.length || buf[end] !== 0x0a) return undefined;
  if (crc32(buf.subarray(start, end)) !== crc) return undefined;
  return { start, end, next: end + 1 };
}

function parseLine(buf: Buffer, pos: number): { value: unknown; next: number } | undefined {
  const l = checkLine(buf, pos);
  if (!l) return undefined;
  try {
    return { value: JSON.parse(buf.toString('utf8', l.start, l.end)), next: l.next };
  } catch {
    return undefined;
  }
}

/**
 * Parses journal bytes. A journal stops at the first line that is incomplete or fails its CRC
 * (a torn tail); with `skipBad` (a snapshot, written whole and fsynced before use) a damaged
 * line is skipped to the next newline and counted, and the rest is kept.
 */
export function parseJournal(buf: Buffer, skipBad = false): JournalContents {
  const records: unknown[] = [];
  let bad = 0;
  let pos = 0;
  while (pos < buf.length) {
    const line = parseLine(buf, pos);
    if (line) {
      records.push(line.value);
      pos = line.next;
      continue;
    }
    if (!skipBad) break;
    bad++;
    const nl = buf.indexOf(0x0a, pos);
    pos = nl < 0 ? buf.length : nl + 1;
  }
  // A journal is preallocated with zeros: a zero tail is unused space, not damage.
  let end = buf.length;
  while (end > pos && buf[end - 1] === 0) end--;
  return { records, droppedBytes: end - pos, bad };
}

/**
 * An open journal file. `append()` resolves once the record is on disk (written with
 * `O_DSYNC`); appends that arrive while a commit runs are written together by the next one
 * (group commit). Not shared between processes.
 */
export class GroupCommitJournal {
  readonly path: string;
  #fh: FileHandle | undefined;
  #pending: Array<{ line: string; resolve: () => void; reject: (e: unknown) => void }> = [];
  #committing: Promise<void> | undefined;
  #bytes = 0;
  /** Where the next line goes (the zeros after it are unused space). */
  #pos = 0;
  #failed: unknown;
  /** Commits made (each one `O_DSYNC` write), for tests and benchmarks. */
  commits = 0;

  private constructor(path: string, fh: FileHandle) {
    this.path = path;
    this.#fh = fh;
  }

  /**
   * Creates a journal, `preallocate` bytes of zeros written and synced first, then opened with
   * `O_DSYNC`: each commit is one positional write that returns once its data is on disk (one
   * thread-pool round trip, no `fdatasync`), and since it overwrites blocks that already exist
   * the file system has no size or extent change to journal (measured here for a 1.5 KB line:
   * 0.25 ms appending + fdatasync, 0.20 ms appending with O_DSYNC, 0.15 ms over preallocated
   * zeros). Lines past the preallocated size extend the file. The caller fsyncs the directory.
   */
  static async open(path: string, preallocate = 0): Promise<GroupCommitJournal> {
    let fh: FileHandle | undefined;
    try {
      fh = await open(path, 'wx', 0o600);
      const zeros = Buffer.alloc(Math.min(preallocate, 1 << 20));
      for (let off = 0; off < preallocate; off += zeros.length) await fh.write(zeros, 0, Math.min(zeros.length, preallocate - off), off);
      await fh.sync();
      await fh.close();
      fh = undefined;
      return new GroupCommitJournal(path, await open(path, fsc.O_WRONLY | fsc.O_DSYNC));
    } catch (e) {
      await fh?.close().catch(() => {});
      throw storeIoError(e, path, 'write');
    }
  }

  /** Bytes appended through this handle. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Appends `value`; resolves once it is durable. */
  append(value: unknown): Promise<void> {
    return this.appendLine(journalLine(value));
  }

  /** Appends a line made by {@link journalLine}; resolves once it is durable. */
  appendLine(line: string): Promise<void> {
    this.#bytes += line.length; // UTF-16 units: close enough to bytes for a checkpoint threshold
    return new Promise<void>((resolve, reject) => {
      if (this.#failed !== undefined || !this.#fh) {
        reject(this.#failed ?? new StoreClosedError());
        return;
      }
      this.#pending.push({ line, resolve, reject });
      this.#committing ??= this.#commitLoop();
    });
  }

  /** Waits for pending appends, then closes the file; later appends are refused. */
  async close(): Promise<void> {
    while (this.#committing) await this.#committing;
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close().catch(() => {});
  }

  async #commitLoop(): Promise<void> {
    // Let the appends of the current turn of the event loop join the first commit.
    await new Promise<void>((r) => setImmediate(r));
    while (this.#pending.length > 0) {
      const batch = this.#pending;
      this.#pending = [];
      try {
        if (this.#failed !== undefined) throw this.#failed;
        const data = Buffer.from(batch.length === 1 ? batch[0]!.line : batch.map((b) => b.line).join(''), 'utf8');
        const fh = this.#fh!;
        let off = 0;
        // O_DSYNC: each write is durable when it returns.
        while (off < data.length) {
          const n = (await fh.write(data, off, data.length - off, this.#pos)).bytesWritten;
          off += n;
          this.#pos += n;
        }
        this.commits++;
        for (const b of batch) b.resolve();
      } catch (e) {
        // After a failed durable write the file's state is unknown (and Linux may have
        // dropped the dirty pages): refuse every later append rather than acknowledge one
        // that follows a hole.
        this.#failed = storeIoError(e, this.path, 'write');
        for (const b of batch) b.reject(this.#failed);
      }
    }
    this.#committing = undefined;
  }
}
