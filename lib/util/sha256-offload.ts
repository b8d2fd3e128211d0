/**
 * SHA-256 of a byte stream computed on a worker thread, so that hashing a large upload does
 * not take the event loop's core (on the agent it was the largest single cost of an upload:
 * about 0.7 s of main-thread CPU per GiB).
 *
 * One worker is shared by every hash of the process; it starts on first use, holds the
 * process open only while a hash is live, and a new one starts on the next use after it
 * exited. Bytes travel in a pool of `SharedArrayBuffer`s that the worker is given once: a
 * caller fills a pool buffer ({@link OffloadedSha256.buffer}), hands it over with `update`,
 * and the buffer returns to the pool once hashed. Nothing is copied or allocated per batch
 * (transferring fresh buffers instead kept V8 collecting garbage for the external memory,
 * which cost more than the hash).
 * @internal
 * @module
 */
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { SmoothtaskError } from '../errors/index.js';

/** Size of the buffers a hash hands out. */
export const OFFLOAD_BUFFER_BYTES = 4 * 1024 * 1024;
/** Buffers one hash may have out at once (filling, being written, being hashed). */
const BUFFERS_PER_HASH = 4;

// CommonJS evaluated as the worker's script: the same code for the sources, the ESM and the
// CommonJS builds (no separate file to locate).
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
const bufs = [];
parentPort.on('message', (m) => {
  if (m.op === 'buf') {
    bufs[m.idx] = m.sab;
    return;
  }
  try {
    if (m.op === 'update') {
      try {
        let h = hashes.get(m.id);
        if (!h) hashes.set(m.id, (h = createHash('sha256')));
        h.update(new Uint8Array(bufs[m.idx], 0, m.n));
      } finally {
        parentPort.postMessage({ op: 'ack', idx: m.idx });
      }
    } else if (m.op === 'digest') {
      const h = hashes.get(m.id) || createHash('sha256');
      hashes.delete(m.id);
      parentPort.postMessage({ id: m.id, op: 'digest', hex: h.digest('hex') });
    } else if (m.op === 'drop') {
      hashes.delete(m.id);
    }
  } catch (e) {
    hashes.delete(m.id);
    parentPort.postMessage({ id: m.id, op: 'error', message: String((e && e.message) || e) });
  }
});
`;

interface Live {
  returned(): void;
  digested(hex: string): void;
  failed(e: Error): void;
}

/** The pool: one Buffer view per shared buffer, its index, the free ones. */
const pool: Buffer[] = [];
const indexOf = new Map<Buffer, number>();
const freeIdx: number[] = [];
/** Which hash has each pool buffer out (to tell it when the buffer is back). */
const holder = new Map<number, number>();
/** Pool buffers given to the worker and not yet acknowledged. */
const inWorker = new Set<number>();

let worker: Worker | undefined;
/** Pool buffers the current worker was given. */
let registered = 0;
let nextId = 1;
const live = new Map<number, Live>();

function getWorker(): Worker {
  if (worker) return worker;
  // No inherited flags: `--input-type=module` would make the script ESM (no `require`), and
  // loaders given with `--import` have nothing to do here.
  const w = new Worker(WORKER_SOURCE, { eval: true, name: 'smoothtask-sha256', execArgv: [] });
  registered = 0;
  w.on('message', (m: { id?: number; op: string; idx?: number; hex?: string; message?: string }) => {
    if (m.op === 'ack') {
      release(m.idx!);
      return;
    }
    const p = live.get(m.id!);
    if (!p) return;
    if (m.op === 'digest') p.digested(m.hex!);
    else p.failed(new SmoothtaskError('ERR_HASH_WORKER', `SHA-256 worker: ${m.message}`));
  });
  const gone = (e: Error) => {
    if (!(e instanceof SmoothtaskError)) e = new SmoothtaskError('ERR_HASH_WORKER', `The SHA-256 worker failed: ${e.message}`, { cause: e });
    if (worker !== w) return;
    worker = undefined;
    // Buffers the dead worker held are free again (every hash using them fails below); those
    // a caller is still filling stay its own until it aborts.
    for (const idx of [...inWorker]) release(idx);
    for (const p of [...live.values()]) p.failed(e);
    live.clear();
  };
  w.on('error', gone);
  w.on('exit', (code) => gone(new SmoothtaskError('ERR_HASH_WORKER', `The SHA-256 worker exited (code ${code})`)));
  // Unref'd after the listeners (adding a 'message' listener refs the port again); held only
  // while a hash is live (track/untrack), so an idle worker never keeps the process alive.
  w.unref();
  worker = w;
  return w;
}

function release(idx: number): void {
  const id = holder.get(idx);
  if (id === undefined) return;
  holder.delete(idx);
  inWorker.delete(idx);
  freeIdx.push(idx);
  live.get(id)?.returned();
}

function track(id: number, p: Live): void {
  live.set(id, p);
  if (live.size === 1) worker?.ref();
}

function untrack(id: number): void {
  if (live.delete(id) && live.size === 0) worker?.unref();
}

/** An incremental SHA-256 fed with buffers it hands out. */
export interface OffloadedSha256 {
  /** A buffer of {@link OFFLOAD_BUFFER_BYTES} to fill (waits while all of this hash's buffers are out). */
  buffer(): Promise<Buffer>;
  /**
   * Hashes the first `n` bytes of `buf` (a buffer from {@link buffer}) next; `buf` belongs to
   * the hash afterwards: do not touch it again.
   */
  update(buf: Buffer, n: number): void;
  /** The hex digest of everything updated; the hash cannot be used afterwards. */
  digest(): Promise<string>;
  /** Drops the hash (an abandoned upload); its buffers return to the pool once the worker is done with them. */
  abort(): void;
}

/** Starts an incremental SHA-256 on the shared worker (started on first use). */
export function offloadedSha256(): OffloadedSha256 {
  const w = getWorker();
  const id = nextId++;
  /** Pool buffers this hash has out (handed to the caller or being hashed). */
  let out = 0;
  let failure: Error | undefined;
  let waiting: (() => void) | undefined;
  let digested: { resolve(hex: string): void; reject(e: Error): void } | undefined;
  const wake = () => {
    const d = waiting;
    waiting = undefined;
    d?.();
  };
  const releaseUnposted = () => {
    for (const [idx, h] of [...holder]) if (h === id && !inWorker.has(idx)) release(idx);
  };
  const fail = (e: Error) => {
    failure ??= e;
    untrack(id);
    wake();
    digested?.reject(failure);
  };
  track(id, {
    returned() {
      out--;
      wake();
    },
    digested(hex) {
      releaseUnposted();
      untrack(id);
      digested?.resolve(hex);
    },
    failed: fail,
  });
  return {
    async buffer() {
      for (;;) {
        if (failure) throw failure;
        if (out < BUFFERS_PER_HASH) {
          let idx = freeIdx.pop();
          if (idx === undefined) {
            idx = pool.length;
            const b = Buffer.from(new SharedArrayBuffer(OFFLOAD_BUFFER_BYTES));
            pool.push(b);
            indexOf.set(b, idx);
          }
          holder.set(idx, id);
          out++;
          return pool[idx]!;
        }
        await new Promise<void>((r) => (waiting = r));
      }
    },
    update(buf, n) {
      if (failure) throw failure;
      const idx = indexOf.get(buf);
      if (idx === undefined || holder.get(idx) !== id) throw new SmoothtaskError('ERR_HASH_BUFFER', "update() takes a buffer from this hash's buffer()");
      while (registered < pool.length) {
        w.postMessage({ op: 'buf', idx: registered, sab: pool[registered]!.buffer });
        registered++;
      }
      inWorker.add(idx);
      w.postMessage({ id, op: 'update', idx, n });
    },
    digest() {
      if (failure) return Promise.reject(failure);
      return new Promise<string>((resolve, reject) => {
        digested = { resolve, reject };
        w.postMessage({ id, op: 'digest' });
      });
    },
    abort() {
      // Buffers handed out but never given to the worker come back at once; those being
      // hashed come back with the worker's ack.
      releaseUnposted();
      if (!live.has(id)) return;
      fail(new SmoothtaskError('ERR_HASH_ABORTED', 'The hash was aborted'));
      w.postMessage({ id, op: 'drop' });
    },
  };
}

/** The same interface, hashing on the calling thread (small inputs, where a worker round trip is not worth it). */
export function inlineSha256(): OffloadedSha256 {
  const h = createHash('sha256');
  let spare: Buffer | undefined;
  return {
    buffer: async () => {
      const b = spare ?? Buffer.allocUnsafeSlow(OFFLOAD_BUFFER_BYTES);
      spare = undefined;
      return b;
    },
    update: (buf, n) => {
      h.update(buf.subarray(0, n));
      spare = buf;
    },
    digest: async () => h.digest('hex'),
    abort: () => undefined,
  };
}

/** Stops the shared worker (live hashes fail; the next hash starts a new one). For tests. @internal */
export async function stopSha256Worker(): Promise<void> {
  await worker?.terminate();
}
