// The SHA-256 worker that takes upload hashing off the event loop: digests equal to
// node:crypto's for every batch shape, hashes running side by side, buffers that come back
// to the pool after an abort or a dead worker, and an idle worker that never holds the
// process open.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { inlineSha256, OFFLOAD_BUFFER_BYTES, offloadedSha256, type OffloadedSha256, stopSha256Worker } from '../../lib/util/sha256-offload.js';

/** Feeds `data` through `h` in pieces of `piece` bytes copied into its buffers, like an upload. */
async function feed(h: OffloadedSha256, data: Buffer, piece: number): Promise<string> {
  let buf: Buffer | undefined;
  let fill = 0;
  for (let off = 0; off < data.length; off += piece) {
    const chunk = data.subarray(off, Math.min(data.length, off + piece));
    for (let o = 0; o < chunk.length; ) {
      buf ??= await h.buffer();
      const n = Math.min(chunk.length - o, OFFLOAD_BUFFER_BYTES - fill);
      buf.set(chunk.subarray(o, o + n), fill);
      fill += n;
      o += n;
      if (fill === OFFLOAD_BUFFER_BYTES) {
        h.update(buf, fill);
        buf = undefined;
        fill = 0;
      }
    }
  }
  if (buf && fill) h.update(buf, fill);
  return h.digest();
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('SHA-256 off the event loop', () => {
  it('gives the digest node:crypto gives, for every size around the buffer boundary', async () => {
    const big = randomBytes(3 * OFFLOAD_BUFFER_BYTES + 12345);
    for (const size of [0, 1, 65536, OFFLOAD_BUFFER_BYTES - 1, OFFLOAD_BUFFER_BYTES, OFFLOAD_BUFFER_BYTES + 1, big.length]) {
      const data = big.subarray(0, size);
      expect(await feed(offloadedSha256(), data, 65536), `size ${size}`).toBe(sha(data));
      expect(await feed(inlineSha256(), data, 65536), `inline, size ${size}`).toBe(sha(data));
    }
  });

  it('runs many hashes side by side, each with its own digest (more than the pool holds at once)', async () => {
    const inputs = Array.from({ length: 12 }, (_, i) => randomBytes(2 * OFFLOAD_BUFFER_BYTES + i * 7919));
    const got = await Promise.all(inputs.map((d, i) => feed(offloadedSha256(), d, 16384 + i * 1000)));
    expect(got).toEqual(inputs.map(sha));
  });

  it('an aborted hash rejects its digest and gives its buffers back (later hashes do not starve)', async () => {
    for (let i = 0; i < 20; i++) {
      const h = offloadedSha256();
      const a = await h.buffer();
      h.update(a, OFFLOAD_BUFFER_BYTES);
      await h.buffer(); // handed out, never updated
      h.abort();
      await expect(h.digest()).rejects.toThrow(/aborted/);
      await expect(h.buffer()).rejects.toThrow(/aborted/);
    }
    const data = randomBytes(5 * OFFLOAD_BUFFER_BYTES);
    expect(await feed(offloadedSha256(), data, 1 << 20)).toBe(sha(data));
  });

  it('refuses a buffer that is not its own', async () => {
    const h = offloadedSha256();
    expect(() => h.update(Buffer.alloc(OFFLOAD_BUFFER_BYTES), 1)).toThrow(/buffer from this hash/);
    const other = offloadedSha256();
    const b = await other.buffer();
    expect(() => h.update(b, 1)).toThrow(/buffer from this hash/);
    other.abort();
    h.abort();
  });

  it('a worker that dies fails the live hashes with a clear error; the next hash starts a new worker', async () => {
    const h = offloadedSha256();
    const b = await h.buffer();
    h.update(b, OFFLOAD_BUFFER_BYTES);
    const filling = await h.buffer();
    await stopSha256Worker();
    await expect(h.digest()).rejects.toThrow(/SHA-256 worker exited/);
    h.abort(); // gives back the buffer it was still filling
    expect(filling.length).toBe(OFFLOAD_BUFFER_BYTES);
    const data = randomBytes(OFFLOAD_BUFFER_BYTES * 2 + 5);
    expect(await feed(offloadedSha256(), data, 65536)).toBe(sha(data));
  });

  it('an idle worker does not keep the process alive', async () => {
    const mod = fileURLToPath(new URL('../../lib/util/sha256-offload.ts', import.meta.url));
    const script = `
      import { offloadedSha256 } from ${JSON.stringify(mod)};
      const h = offloadedSha256();
      const b = await h.buffer();
      b.fill(7);
      h.update(b, 10);
      console.log(await h.digest());
    `;
    const t0 = Date.now();
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeout: 30_000 }, (e, o) => (e ? reject(e) : resolve(o))),
    );
    expect(out.trim()).toBe(sha(Buffer.alloc(10, 7)));
    // It ended by itself (a held worker would have run into the 30 s timeout above).
    expect(Date.now() - t0).toBeLessThan(30_000);
  });
});
