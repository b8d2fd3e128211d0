/**
 * Ring buffer delivery to JS against a C consumer reading the same ring, in one run.
 *   npm run bench -- ringbuf [records=1000000] [rounds=3]
 * Each round fills the 32 MiB ring with `records` records (BPF_PROG_TEST_RUN of
 * test/bpf/dp_ringbuf.bpf.c, no consumer attached), then times one consumer draining them:
 * the RingBuffer ('batch' events, records as views, no decode), the RingBuffer with decoded
 * records, and the C program (libbpf ring_buffer__poll). Best round of each.
 * A second, "live" phase runs the producer (on CPU 0) while each consumer reads, and reports
 * records/s delivered and drops: with a real producer both consumers are bounded by it.
 */
import { spawn } from 'node:child_process';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { testRunProgram } from '../lib/ebpf/attach.js';
import { field, struct, u32, u64 } from '../lib/ebpf/codec.js';
import { loadObject } from '../lib/ebpf/load.js';
import { RingBuffer } from '../lib/ebpf/ringbuf.js';
import { bpfObjectDir } from '../lib/native/addon.js';
import type { BenchResult } from './run.js';
import { buildC, runC } from './_dp-common.js';

const rec = struct({ seq: field(u64, 0), cpu: field(u32, 8), tag: field(u32, 12) }, 16);

export default async function bench(args: string[]): Promise<BenchResult> {
  const records = Number(args[0] ?? 1_000_000);
  const rounds = Number(args[1] ?? 3);
  const bin = buildC('ringbuf-consumer');
  using obj = await loadObject(join(bpfObjectDir(), 'test', 'dp_ringbuf.bpf.o'), { cache: false });
  const info = obj.mapInfo('events');
  const prog = obj.program('dp_produce');
  const fill = async () => {
    const ctx = Buffer.alloc(16);
    ctx.writeBigUInt64LE(BigInt(records), 0);
    await testRunProgram(prog, { ctx, cpu: 0 });
  };
  const js = async (decode: boolean): Promise<number> => {
    await fill();
    const t0 = process.hrtime.bigint();
    let n = 0;
    let sink = 0n;
    const rb = decode ? new RingBuffer(info, { codec: rec }) : undefined;
    const raw = decode ? undefined : new RingBuffer(info);
    await new Promise<void>((resolve) => {
      rb?.on('batch', (b) => {
        for (let i = 0; i < b.length; i++) sink += b.get(i).seq;
        n += b.length;
        if (n >= records) resolve();
      });
      raw?.on('batch', (b) => {
        // Each record's size read, as the C consumer's callback gets it (no view made per record).
        for (let i = 0; i < b.length; i++) n += b.sizeOf(i) > 0 ? 1 : 0;
        if (n >= records) resolve();
      });
    });
    const dt = Number(process.hrtime.bigint() - t0);
    rb?.close();
    raw?.close();
    void sink;
    return (n / dt) * 1e9;
  };
  const c = async (): Promise<number> => {
    await fill();
    const r = runC(bin, [String(info.id), String(records)]);
    if (r.count < records) throw new Error(`C consumer got ${r.count} of ${records}`);
    return (r.count / r.ns) * 1e9;
  };
  // Live: produce `records` in chunks while the consumer runs; rate over the whole production.
  const dropped = obj.map('dropped', { key: u32, value: u64 });
  const produce = async () => {
    const ctx = Buffer.alloc(16);
    ctx.writeBigUInt64LE(100_000n, 0);
    for (let done = 0; done < records; done += 100_000) await testRunProgram(prog, { ctx, cpu: 0 });
  };
  const liveJs = async () => {
    dropped.set(0, 0n);
    let n = 0;
    let last = process.hrtime.bigint();
    const rb = new RingBuffer(info);
    rb.on('batch', (b) => {
      n += b.length;
      last = process.hrtime.bigint();
    });
    const t0 = process.hrtime.bigint();
    await produce();
    const d = Number(dropped.get(0) ?? 0n);
    while (n + d < records) await new Promise((r) => setTimeout(r, 5));
    rb.close();
    return { rate: (n / Number(last - t0)) * 1e9, dropped: d };
  };
  const liveC = async () => {
    dropped.set(0, 0n);
    const child = spawn(bin, [String(info.id), String(records)]);
    let out = '';
    child.stdout.on('data', (x: Buffer) => (out += x.toString()));
    await new Promise((r) => setTimeout(r, 100)); // let it open the ring
    await produce();
    await new Promise((r) => child.on('exit', r));
    const [count = 0, ns = 1] = out.trim().split(/\s+/).map(Number);
    return { rate: (count / (ns - 100e6 > 0 ? ns - 100e6 : ns)) * 1e9, dropped: Number(dropped.get(0) ?? 0n) };
  };
  const lj = await liveJs();
  const lc = await liveC();
  dropped.close();

  let bestJs = 0;
  let bestJsDecoded = 0;
  let bestC = 0;
  for (let i = 0; i < rounds; i++) {
    bestC = Math.max(bestC, await c());
    bestJs = Math.max(bestJs, await js(false));
    bestJsDecoded = Math.max(bestJsDecoded, await js(true));
  }
  return {
    figures: {
      cores: cpus().length,
      kernel: release(),
      records,
      jsRecordsPerSec: Math.round(bestJs),
      jsDecodedRecordsPerSec: Math.round(bestJsDecoded),
      cRecordsPerSec: Math.round(bestC),
      liveJsRecordsPerSec: Math.round(lj.rate),
      liveJsDropped: lj.dropped,
      liveCRecordsPerSec: Math.round(lc.rate),
      liveCDropped: lc.dropped,
    },
    ratios: { jsOverC: bestJs / bestC, jsDecodedOverC: bestJsDecoded / bestC, liveJsOverC: lj.rate / lc.rate },
    targets: {
      'live js >= 0.5x C': lj.rate >= 0.5 * lc.rate,
      'drain js >= 0.5x C': bestJs >= 0.5 * bestC,
      'js >= 2M rec/s': bestJs >= 2e6 && lj.rate >= 2e6,
    },
  };
}
