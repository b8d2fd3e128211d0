/**
 * Reading a task's log files while it runs (`TaskQueue.followLog`): each chosen stream's file
 * from its first byte, in chunks read from an offset, following appends until the task ends.
 * Internal to `TaskQueue`, which passes what it knows of the task explicitly.
 * @module
 */
import { open, type FileHandle } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { TaskLogError } from './errors.js';
import type { LogEvent, LogStream, TaskRecord } from './types.js';

/** What the follower needs to know of the task it follows. @internal */
export interface FollowedTask {
  /** The task id (named in the events and errors). */
  readonly id: string;
  /** The task's record as it is now (its `logs` paths are set when an attempt starts). */
  current(): Readonly<TaskRecord>;
  /** Settles once the task reached an outcome (or the queue closed). */
  readonly done: Promise<unknown>;
  /** Whether the task is finished or left by a closed queue (read before each pass). */
  finished(): boolean;
  /** Calls `poke` on each log chunk or transition of the task; returns the unsubscribe. */
  subscribe(poke: () => void): () => void;
}

/** Options of {@link followLogFiles} (those of `TaskQueue.followLog`). @internal */
export interface FollowLogOptions {
  /** Streams to read (default stdout and stderr). */
  streams?: LogStream[];
  /** Ends the iteration after the bytes already written. */
  signal?: AbortSignal;
  /** Most bytes per read (default 256 KiB, between 4 KiB and 16 MiB). */
  chunkBytes?: number;
}

/**
 * Yields each chosen stream's file from its first byte, then what is appended, until the task
 * has ended (or `signal` aborted) and a pass reads nothing. Chunks are whole UTF-8 characters;
 * nothing is buffered whole; the generator pulls. @internal
 */
export async function* followLogFiles(task: FollowedTask, options: FollowLogOptions = {}): AsyncGenerator<LogEvent> {
  const id = task.id;
  const streams = options.streams ?? ['stdout', 'stderr'];
  const size = Math.max(4096, Math.min(options.chunkBytes ?? 256 * 1024, 16 * 1024 * 1024));
  const cursors = streams.map((stream) => ({ stream, path: undefined as string | undefined, fh: undefined as FileHandle | undefined, offset: 0, dec: new StringDecoder('utf8') }));
  const buf = Buffer.allocUnsafe(size);
  let ended = false;
  let wake: (() => void) | undefined;
  const poke = () => wake?.();
  const unsubscribe = task.subscribe(poke);
  void task.done.then(() => {
    ended = true;
    poke();
  });
  options.signal?.addEventListener('abort', poke, { once: true });
  try {
    for (;;) {
      // Observed before reading: once the task has ended and a pass reads nothing, all was read.
      const final = ended || task.finished();
      let progressed = false;
      for (const c of cursors) {
        const path = task.current().logs?.[c.stream];
        if (!path) continue;
        if (c.path !== path) {
          await c.fh?.close().catch(() => {});
          c.fh = undefined;
          c.path = path;
          c.offset = 0;
        }
        let bytesRead: number;
        try {
          c.fh ??= await open(path, 'r');
          ({ bytesRead } = await c.fh.read(buf, 0, size, c.offset));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw new TaskLogError(`cannot read the log ${path} of task ${id}: ${(err as Error).message}`, err);
        }
        if (bytesRead === 0) continue;
        c.offset += bytesRead;
        progressed = true;
        const chunk = c.dec.write(buf.subarray(0, bytesRead));
        if (chunk) yield { taskId: id, stream: c.stream, chunk, at: Date.now() };
      }
      if (progressed) continue;
      if (final || options.signal?.aborted) {
        for (const c of cursors) {
          const rest = c.dec.end();
          if (rest) yield { taskId: id, stream: c.stream, chunk: rest, at: Date.now() };
        }
        return;
      }
      // Woken by a log chunk or transition of the task, or by a poll (writes land asynchronously).
      await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
      wake = undefined;
    }
  } finally {
    unsubscribe();
    options.signal?.removeEventListener('abort', poke);
    for (const c of cursors) await c.fh?.close().catch(() => {});
  }
}
