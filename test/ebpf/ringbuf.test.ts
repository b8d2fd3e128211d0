import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { testRunProgram } from '../../lib/ebpf/attach.js';
import { field, struct, u32, u64 } from '../../lib/ebpf/codec.js';
import { ClosedError, UnsupportedError } from '../../lib/ebpf/errors.js';
import { loadObject, type LoadOptions } from '../../lib/ebpf/load.js';
import { numPossibleCpus } from '../../lib/ebpf/map.js';
import type { BpfObject } from '../../lib/ebpf/object.js';
import { dp } from '../../lib/ebpf/map.js';
import { RecordBatch, RingBuffer } from '../../lib/ebpf/ringbuf.js';
import { bpfObjectDir } from '../../lib/native/addon.js';

const objPath = join(bpfObjectDir(), 'test', 'dp_ringbuf.bpf.o');
const rec = struct({ seq: field(u64, 0), cpu: field(u32, 8), tag: field(u32, 12) }, 16);
const open: { close(): void }[] = [];
afterEach(() => {
  for (const o of open.splice(0).reverse()) o.close();
});

async function load(opts: LoadOptions = {}): Promise<BpfObject> {
  const obj = await loadObject(objPath, { cache: false, ...opts });
  open.push(obj);
  return obj;
}

function ctx(records: number, tag = 0): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(records), 0);
  b.writeBigUInt64LE(BigInt(tag), 8);
  return b;
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('RingBuffer', () => {
  it('1,000,000 records from every CPU arrive complete and in order per CPU', async () => {
    const obj = await load();
    const rb = new RingBuffer(obj.mapInfo('events'), { codec: rec, dropCounter: obj.mapInfo('dropped') });
    open.push(rb);
    const cpus = Math.min(numPossibleCpus(), 2);
    const total = 1_000_000;
    const per = total / cpus;
    const next = new Array<bigint>(cpus).fill(0n);
    let received = 0;
    let outOfOrder = 0;
    let batches = 0;
    rb.on('batch', (b) => {
      batches++;
      for (let i = 0; i < b.length; i++) {
        const r = b.get(i);
        if (r.seq !== next[r.cpu]) outOfOrder++;
        next[r.cpu] = r.seq + 1n;
        received++;
      }
    });
    // BPF_PROG_TEST_RUN on each CPU at once (raw_tp runs with preemption off on that CPU).
    await Promise.all(Array.from({ length: cpus }, (_, cpu) => testRunProgram(obj.program('dp_produce'), { cpu, ctx: ctx(per, cpu) })));
    await until(() => received >= total, 60_000);
    expect(outOfOrder).toBe(0);
    expect(received).toBe(total);
    expect(next).toEqual(new Array(cpus).fill(BigInt(per)));
    const s = rb.stats();
    expect(s.delivered).toBe(total);
    expect(s.bytes).toBe(total * 16);
    expect(s.dropped).toBe(0);
    expect(s.batches).toBe(batches);
    expect(batches).toBeLessThan(total / 10); // batched, not one call per record
  });

  it('async iterator yields decoded records and ends on close()', async () => {
    const obj = await load();
    const rb = new RingBuffer(obj.mapInfo('events'), { codec: rec, batchSize: 64 });
    open.push(rb);
    await testRunProgram(obj.program('dp_produce'), { ctx: ctx(1000, 7) });
    const got: number[] = [];
    for await (const r of rb) {
      expect(r.tag).toBe(7);
      got.push(Number(r.seq));
      if (got.length === 1000) rb.close();
    }
    expect(got).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(rb.closed).toBe(true);
    expect(rb.stats().delivered).toBe(1000);
    expect(() => rb.assertOpen()).toThrow(ClosedError);
  });

  it('raw Buffers by default; batches() iterates whole batches', async () => {
    const obj = await load();
    const rb = new RingBuffer(obj.mapInfo('events'));
    open.push(rb);
    await testRunProgram(obj.program('dp_produce'), { ctx: ctx(300, 1) });
    let n = 0;
    for await (const b of rb.batches()) {
      for (const r of b) {
        expect(Buffer.isBuffer(r)).toBe(true);
        expect(r.length).toBe(16);
        expect(r.readBigUInt64LE(0)).toBe(BigInt(n));
        n++;
      }
      if (n >= 300) break;
    }
    expect(n).toBe(300);
  });

  it('stalled JS: the consumer pauses at the high-water mark, memory stays bounded, drops are counted', async () => {
    const obj = await load({ mapSizes: { events: 1 << 16 } }); // 64 KiB ring: ~2,700 records
    const hwm = 1000;
    const rb = new RingBuffer(obj.mapInfo('events'), { codec: rec, batchSize: 256, highWaterMark: hwm, dropCounter: obj.mapInfo('dropped') });
    open.push(rb);
    const produced = 400_000;
    const rss0 = process.memoryUsage().rss;
    for (let i = 0; i < 4; i++) await testRunProgram(obj.program('dp_produce'), { ctx: ctx(produced / 4) });
    await until(() => rb.stats().pauses > 0, 10_000);
    const s = rb.stats();
    const rss1 = process.memoryUsage().rss;
    expect(s.delivered).toBeLessThanOrEqual(hwm);
    expect(rb.queuedRecords).toBeLessThanOrEqual(hwm);
    expect(s.pending).toBeLessThanOrEqual(hwm);
    const ringCapacity = Math.floor((1 << 16) / 24);
    expect(s.dropped).toBeGreaterThanOrEqual(produced - hwm - ringCapacity);
    expect(s.dropped).toBeLessThan(produced);
    // 400,000 records of 16 bytes would be 6.4 MB buffered: we hold at most the mark.
    expect(rss1 - rss0).toBeLessThan(32 * 1024 * 1024);
    // Resume: consuming drains what was held and what the ring kept, in per-CPU order.
    let got = 0;
    let last = -1n;
    for await (const r of rb) {
      expect(r.seq).toBeGreaterThan(last);
      last = r.seq;
      got++;
      if (got === s.delivered) break;
    }
    await until(() => rb.stats().delivered > s.delivered, 5_000); // the thread reads again
    expect(rb.stats().delivered + rb.stats().dropped).toBeLessThanOrEqual(produced);
  });

  describe('reuseBuffers', () => {
    it('every record arrives as without it; a consumed batch is detached and its memory reused, not grown', async () => {
      const obj = await load();
      const rb = new RingBuffer(obj.mapInfo('events'), { reuseBuffers: true, batchSize: 1024 });
      open.push(rb);
      const total = 200_000;
      let next = -1n; // the producer's per-CPU sequence (all runs on CPU 0)
      let bad = 0;
      let received = 0;
      const kept: { batch: RecordBatch; view: Buffer }[] = [];
      rb.on('batch', (b) => {
        for (let i = 0; i < b.length; i++) {
          const r = b.get(i);
          if (next < 0n) next = r.readBigUInt64LE(0);
          if (r.length !== 16 || r.readBigUInt64LE(0) !== next || r.readUInt32LE(8) !== 0) bad++;
          next++;
        }
        received += b.length;
        if (kept.length < 3) kept.push({ batch: b, view: b.get(0) }); // kept past the handler: must not see later data
      });
      const pool0 = dp().batchPoolBytes();
      const rss0 = process.memoryUsage().rss;
      for (let i = 0; i < 4; i++) await testRunProgram(obj.program('dp_produce'), { ctx: ctx(total / 4), cpu: 0 });
      await until(() => received >= total, 30_000);
      expect(bad).toBe(0);
      expect(received).toBe(total);
      for (const k of kept) {
        // detached once consumed: empty, never the bytes of a later batch
        expect(k.batch.data.length).toBe(0);
        expect(k.batch.offsets.length).toBe(0);
        expect(k.view.length).toBe(0);
      }
      // ~200 batches went through a pool of a few warm blocks (no fresh memory per batch)
      expect(dp().batchPoolBytes()).toBeGreaterThan(pool0);
      expect(dp().batchPoolBytes()).toBeLessThan(64 << 20);
      expect(process.memoryUsage().rss - rss0).toBeLessThan(48 << 20);
    });

    it('an iterator keeps a batch readable until it moves past it; decoded records stay valid', async () => {
      const obj = await load();
      const raw = new RingBuffer(obj.mapInfo('events'), { reuseBuffers: true, batchSize: 100 });
      open.push(raw);
      await testRunProgram(obj.program('dp_produce'), { ctx: ctx(300, 1) });
      const views: Buffer[] = [];
      for await (const r of raw) {
        // the previous record of the same batch is still readable while the iterator is in it
        if (views.length % 100 !== 0) expect(views[views.length - 1]!.readBigUInt64LE(0)).toBe(BigInt(views.length - 1));
        views.push(r);
        if (views.length >= 300) break;
      }
      expect(views[0]!.length).toBe(0); // the first batch is consumed: detached
      raw.close();
      const decoded = new RingBuffer(obj.mapInfo('events'), { codec: rec, reuseBuffers: true, batchSize: 100 });
      open.push(decoded);
      await testRunProgram(obj.program('dp_produce'), { ctx: ctx(300, 2) });
      const recs: { seq: bigint }[] = [];
      for await (const r of decoded) {
        recs.push(r);
        if (recs.length >= 300) break;
      }
      const s0 = recs[0]!.seq; // records decoded from batches long since reused: still each its own
      expect(recs.map((r) => r.seq)).toEqual(Array.from({ length: 300 }, (_, i) => s0 + BigInt(i)));
    });

    it('releaseBatch refuses buffers that are not the batch\'s and ignores a second release or an unknown lease', async () => {
      expect(() => dp().releaseBatch(1, new ArrayBuffer(8), new ArrayBuffer(8))).not.toThrow(); // unknown lease (or released): no-op
      expect(() => dp().releaseBatch(Number.NaN, new ArrayBuffer(8), new ArrayBuffer(8))).not.toThrow();
      expect(() => (dp().releaseBatch as (...a: unknown[]) => void)('x', 1, 2)).toThrow(TypeError);
      const obj = await load();
      let lease = 0;
      let first: ArrayBuffer | undefined;
      let offs: ArrayBuffer | undefined;
      const ctor = dp().RingBufferConsumer;
      const native = new ctor(obj.mapInfo('events').fd, { batchSize: 64, highWaterMark: 1024, batchBytes: 1 << 20, reuse: true }, (data, offsets, _count, _err, l) => {
        if (lease || l === undefined) return;
        lease = l;
        first = data as ArrayBuffer;
        offs = offsets!.buffer as ArrayBuffer;
      });
      try {
        await testRunProgram(obj.program('dp_produce'), { ctx: ctx(10) });
        await until(() => lease > 0, 5_000);
        expect(() => dp().releaseBatch(lease, new ArrayBuffer(16), offs!)).toThrow(/not the batch's/);
        expect(first!.byteLength).toBe(160); // nothing released by the refused call
        dp().releaseBatch(lease, first!, offs!);
        expect(first!.byteLength).toBe(0);
        expect(() => dp().releaseBatch(lease, first!, offs!)).not.toThrow();
      } finally {
        native.close();
      }
    });
  });

  it('rejects maps that are not ring buffers', async () => {
    const obj = await load();
    expect(() => new RingBuffer(obj.mapInfo('dropped'))).toThrow(UnsupportedError);
  });

  for (const mode of ['exit', 'stall', 'unref'] as const) {
    it(`the process exits cleanly with a busy ring buffer (${mode})`, () => {
      const r = spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '..', 'fixtures', 'dp', 'ringbuf-exit.ts'), mode], {
        encoding: 'utf8',
        timeout: 30_000,
        env: process.env,
      });
      expect(r.error).toBeUndefined();
      expect(r.stderr).toBe('');
      expect(r.signal).toBeNull();
      expect(r.status).toBe(0);
      const m = /seen (\d+) delivered (\d+)/.exec(r.stdout);
      expect(m).not.toBeNull();
      expect(Number(m?.[2])).toBeGreaterThan(0);
    });
  }
});
