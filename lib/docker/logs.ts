import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { OutputStream } from './demux.js';

/** One chunk of task output, as delivered to live listeners. */
export interface LogChunk {
  /** `stdout` or `stderr`. */
  stream: OutputStream;
  /** Where it came from: `main` for a container task, the service name for compose, `compose` for the CLI. */
  source: string;
  /** The raw bytes. */
  data: Buffer;
}

/** Listener for live task output. */
export type LogListener = (chunk: LogChunk) => void;

/**
 * Persists a task's output to files while it runs and fans it out to live listeners.
 *
 * Files: `<dir>/<source>.<stream>.log` (e.g. `main.stdout.log`, `web.stderr.log`). They stay
 * after the container is gone. Writes return a promise when the file stream's buffer is full,
 * which the demuxer ({@link createDemuxer}) turns into backpressure on the engine's socket.
 */
export class TaskLogWriter {
  /** Directory holding the log files. */
  readonly dir: string;
  /** Most bytes kept over all files of this writer; the rest is dropped (one marker line). */
  readonly maxBytes: number;
  #files = new Map<string, WriteStream>();
  #listeners = new Set<LogListener>();
  #closed = false;
  #used = 0;
  #dropped = 0;

  /**
   * Creates a writer; call {@link TaskLogWriter.init} before writing.
   * @param dir directory of the log files
   * @param options `maxBytes`: cap over all files of the task (default 64 MiB, as the task
   *   queue's `maxLogBytes`); past it output is dropped, counted in {@link TaskLogWriter.droppedBytes}
   */
  constructor(dir: string, options: { maxBytes?: number } = {}) {
    this.dir = dir;
    this.maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  }

  /** Bytes dropped because the cap was reached. */
  get droppedBytes(): number {
    return this.#dropped;
  }

  /** Path of the log file for a source and stream (it exists once something was written). */
  path(source: string, stream: OutputStream): string {
    return join(this.dir, `${source}.${stream}.log`);
  }

  /** Adds a live listener; returns a function that removes it. Listener errors are swallowed. */
  subscribe(listener: LogListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Writes a chunk; resolves once the file accepted it (backpressure). Past `maxBytes` the
   * chunk is dropped (the first time, a marker line is written in its place).
   */
  write(source: string, stream: OutputStream, data: Buffer): void | Promise<void> {
    if (this.#closed) return;
    const room = Math.max(0, this.maxBytes - this.#used);
    let marker: Buffer | undefined;
    if (data.length > room) {
      if (this.#dropped === 0) marker = Buffer.from(`\n[smoothtask: log cap of ${this.maxBytes} bytes reached; further output is dropped]\n`);
      this.#dropped += data.length - room;
      data = data.subarray(0, room);
      if (!data.length && !marker) return;
    }
    this.#used += data.length;
    if (marker) data = Buffer.concat([data, marker]);
    for (const l of this.#listeners) {
      try {
        l({ stream, source, data });
      } catch {
        // A listener's failure must not break log persistence.
      }
    }
    const key = `${source}.${stream}`;
    let f = this.#files.get(key);
    if (!f) {
      f = createWriteStream(this.path(source, stream), { flags: 'a' });
      f.on('error', () => undefined);
      this.#files.set(key, f);
    }
    if (!f.write(data)) return once(f, 'drain').then(() => undefined);
  }

  /** Creates the log directory. */
  async init(): Promise<this> {
    await mkdir(this.dir, { recursive: true });
    return this;
  }

  /** Flushes and closes every file. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(
      [...this.#files.values()].map((f) => new Promise<void>((r) => f.end(() => r()))),
    );
    this.#files.clear();
    this.#listeners.clear();
  }
}

/** Reads a persisted log file of a task; empty string when the source never wrote to that stream. */
export async function readTaskLog(dir: string, source: string, stream: OutputStream): Promise<string> {
  try {
    return await readFile(join(dir, `${source}.${stream}.log`), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw e;
  }
}

/** Reads the last `maxBytes` of a file (for error messages). @internal */
export async function tailFile(path: string, maxBytes = 4096): Promise<string> {
  try {
    const fh = await open(path, 'r');
    try {
      const { size } = await fh.stat();
      const start = Math.max(0, size - maxBytes);
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      return buf.toString('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    return '';
  }
}
