/**
 * The log sink of one task attempt: writes what the executor logs to the task's log files
 * (`stdout.log`, `stderr.log`, `system.log` and the combined `output.log`), under the per-task
 * cap `maxLogBytes`, with backpressure, and hands each chunk to the queue's listeners.
 * Internal to `TaskQueue`.
 * @module
 */
import { createWriteStream, statSync, type WriteStream } from 'node:fs';
import type { LogStream } from './types.js';

/** Marker written once to a task's logs when it reaches `maxLogBytes`. @internal */
export const logCapMarker = (maxBytes: number): string =>
  `\n[smoothtask: log cap of ${maxBytes} bytes reached; further stdout/stderr is dropped]\n`;

/**
 * Per-task log files, opened lazily; also feeds listeners. Keeps at most `maxBytes` of
 * stdout+stderr per task (counted once, across attempts: the combined file's size at start
 * counts) and as much of the system log, drops the rest with one marker line and counts the
 * dropped bytes. `write()` returns a promise while a file's write buffer is full, so producers
 * can pause (backpressure). @internal
 */
export class LogSink {
  readonly #paths: Record<LogStream, string>;
  readonly #combined: string;
  readonly #emit: (stream: LogStream, chunk: string) => void;
  readonly #ensureDir: () => string;
  readonly #streams = new Map<string, WriteStream>();
  readonly #maxBytes: number;
  readonly #output: { path: string; used: number | undefined; dropped: number };
  readonly #system: { path: string; used: number | undefined; dropped: number };
  #drain: Promise<void> | undefined;
  #closed = false;
  constructor(
    paths: Record<LogStream, string>,
    combined: string,
    ensureDir: () => string,
    emit: (stream: LogStream, chunk: string) => void,
    maxBytes: number,
  ) {
    this.#paths = paths;
    this.#combined = combined;
    this.#ensureDir = ensureDir;
    this.#emit = emit;
    this.#maxBytes = maxBytes;
    this.#output = { path: combined, used: undefined, dropped: 0 };
    this.#system = { path: paths.system, used: undefined, dropped: 0 };
  }
  /** Bytes dropped at the cap by this sink (stdout, stderr and system). */
  get droppedBytes(): number {
    return this.#output.dropped + this.#system.dropped;
  }
  #open(path: string): WriteStream {
    let s = this.#streams.get(path);
    if (!s) {
      this.#ensureDir();
      s = createWriteStream(path, { flags: 'a' });
      s.on('error', () => {});
      this.#streams.set(path, s);
    }
    return s;
  }
  /** Writes a chunk (dropped past the cap, or after `close()`); a promise while a buffer is full. */
  write(stream: LogStream, chunk: string | Uint8Array): void | Promise<void> {
    if (this.#closed) return;
    let buf = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    // Two budgets of maxBytes: stdout+stderr (the combined file), and the system log (build and
    // compose output go there).
    const b = stream === 'system' ? this.#system : this.#output;
    if (b.used === undefined) {
      try {
        b.used = statSync(b.path).size;
      } catch {
        b.used = 0;
      }
    }
    const room = Math.max(0, this.#maxBytes - b.used);
    if (buf.length > room) {
      const first = b.dropped === 0;
      b.dropped += buf.length - room;
      buf = buf.subarray(0, room);
      b.used += buf.length;
      if (buf.length) this.#put(stream, buf);
      if (first) {
        const marker = Buffer.from(logCapMarker(this.#maxBytes));
        this.#open(this.#paths[stream]).write(marker);
        if (stream !== 'system') this.#open(this.#combined).write(marker);
        this.#emit(stream, marker.toString('utf8'));
      }
      return this.#pressure();
    }
    b.used += buf.length;
    this.#put(stream, buf);
    return this.#pressure();
  }
  #put(stream: LogStream, buf: Buffer): void {
    this.#open(this.#paths[stream]).write(buf);
    if (stream !== 'system') this.#open(this.#combined).write(buf);
    this.#emit(stream, buf.toString('utf8'));
  }
  /** A promise while any file's buffer is over its high-water mark; settles on drain (or close/error). */
  #pressure(): Promise<void> | undefined {
    if (this.#drain) return this.#drain;
    const full = [...this.#streams.values()].filter((s) => s.writableNeedDrain && !s.destroyed);
    if (!full.length) return undefined;
    this.#drain = Promise.all(
      full.map(
        (s) =>
          new Promise<void>((resolve) => {
            const done = () => {
              s.off('drain', done);
              s.off('close', done);
              s.off('error', done);
              resolve();
            };
            s.on('drain', done);
            s.on('close', done);
            s.on('error', done);
          }),
      ),
    ).then(() => {
      this.#drain = undefined;
    });
    return this.#drain;
  }
  /**
   * Ends every file and resolves once each one's descriptor is closed (the stream's 'close',
   * not 'finish': after 'finish' the fd is still being closed on the thread pool, which a
   * loaded host showed as an fs request outliving `queue.close()`); later writes are dropped.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(
      [...this.#streams.values()].map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.closed) return resolve();
            s.once('close', () => resolve());
            s.once('error', () => resolve());
            if (!s.destroyed) s.end();
          }),
      ),
    );
  }
}
