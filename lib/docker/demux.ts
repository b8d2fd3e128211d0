import { Writable } from 'node:stream';

/** Which output stream a chunk came from. */
export type OutputStream = 'stdout' | 'stderr';

/**
 * Receives demultiplexed chunks. Return a promise to apply backpressure: the demuxer stops
 * consuming the engine's stream until it settles.
 */
export type ChunkSink = (stream: OutputStream, chunk: Buffer) => void | Promise<void>;

const HEADER = 8;

/**
 * A Writable that splits Docker's multiplexed attach/logs stream (8-byte frame headers:
 * stream type, 3 zero bytes, big-endian payload length) into stdout and stderr chunks.
 *
 * Unlike dockerode's `demuxStream`, it honours backpressure: the write callback is held until
 * the sink has accepted the payload, so a slow log file slows the read from the engine instead
 * of buffering without bound. Piping `stream.pipe(new DockerDemuxer(sink))` is enough.
 * @internal Public API: {@link createDemuxer}.
 */
export class DockerDemuxer extends Writable {
  #sink: ChunkSink;
  #pending: Buffer = Buffer.alloc(0);
  #stdin = 0;

  constructor(sink: ChunkSink) {
    super({ highWaterMark: 64 * 1024 });
    this.#sink = sink;
  }

  /** Bytes of frames that claimed stream 0 (stdin echo) and were dropped. */
  get droppedBytes(): number {
    return this.#stdin;
  }

  /** @internal */
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#pending = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : chunk;
    this.#drain().then(() => cb(), cb);
  }

  /** @internal */
  override _final(cb: (err?: Error | null) => void): void {
    // A truncated trailing frame (engine closed mid-frame) is delivered as-is rather than lost.
    if (this.#pending.length > HEADER) {
      const type = this.#pending[0];
      const rest = this.#pending.subarray(HEADER);
      this.#pending = Buffer.alloc(0);
      Promise.resolve(this.#sink(type === 2 ? 'stderr' : 'stdout', rest)).then(() => cb(), cb);
      return;
    }
    cb();
  }

  async #drain(): Promise<void> {
    while (this.#pending.length >= HEADER) {
      const type = this.#pending[0];
      const len = this.#pending.readUInt32BE(4);
      if (this.#pending.length < HEADER + len) return;
      const payload = this.#pending.subarray(HEADER, HEADER + len);
      this.#pending = this.#pending.subarray(HEADER + len);
      if (type === 0) {
        this.#stdin += len;
        continue;
      }
      if (len === 0) continue;
      const r = this.#sink(type === 2 ? 'stderr' : 'stdout', payload);
      if (r instanceof Promise) await r;
    }
  }
}

/**
 * Creates a Writable that demultiplexes Docker's attach/logs stream into `sink`, with
 * backpressure (see the module docs): `engineStream.pipe(createDemuxer(sink))`.
 */
export function createDemuxer(sink: ChunkSink): Writable {
  return new DockerDemuxer(sink);
}
