/**
 * Ring buffer delivery to JS against a C consumer reading the same ring, in one run.
 *   npm run bench -- ringbuf [records=1000000] [rounds=7]
 * Drain: each round fills the 32 MiB ring with `records` records (BPF_PROG_TEST_RUN of
 * test/bpf/dp_ringbuf.bpf.c, no consumer attached), then times one consumer draining them:
 * the RingBuffer ('batch' events, each record's size read, no view made, as the C callback
 * gets it) with `reuseBuffers` and without, the RingBuffer with decoded records, and the C
 * program (libbpf ring_buffer__poll, counting in its callback).
 * Live: the producer runs (on CPU 0, 100,000 records per test run) while one consumer reads;
 * records/s from the start of production to the consumer's last record, and drops.
 * Two untimed rounds of each JS consumer first (V8 compiles the paths), then `rounds` timed
 * rounds in alternating order; figures are the median and the min of the rounds, ratios the
 * medians'. Targets: JS (reuseBuffers) >= 0.5x C in both modes.
 */
import { spawn } from 'node:child_process';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { testRunProgram } from '../lib/ebpf/attach.js';
import { field, struct, u32, u64 } from '../lib/ebpf/codec.js';
import { loadObject } from '../lib/ebpf/load.js';
import { RingBuffer, type RecordBatch } from '../lib/ebpf/ringbuf.js';
import { bpfObjectDir } from '../lib/native/addon.js';
import type { BenchResult } from './run.js';
import { buildC, runC } from './_dp-common.js';

const rec = struct({ seq: field(u64, 0), cpu: field(u32, 8), tag: field(u32, 12) }, 16);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? NaN;

export default async function bench(args: string[]): Promise<BenchResult> {
  const records = Number(args[0] ?? 1_000_000);
  const rounds = Math.max(1, Number(args[1] ?? 7));
  const bin = buildC('ringbuf-consumer');
  using obj = await loadObject(join(bpfObjectDir(), 'test', 'dp_ringbuf.bpf.o'), { cache: false });
  const info = obj.mapInfo('events');
  const prog = obj.program('dp_produce');
  const fill = async () => {
    const ctx = Buffer.alloc(16);
    ctx.writeBigUInt64LE(BigInt(records), 0);
    await testRunProgram(prog, { ctx, cpu: 0 });
  };
  // A JS consumer reading `want` records; resolves with when the last one arrived.
  const consume = (mode: 'raw' | 'reuse' | 'decoded', want: number, count?: () => number) => {
    let n = 0;
    let sink = 0n;
    let last = 0n;
    const rb = mode === 'decoded' ? new RingBuffer(info, { codec: rec, reuseBuffers: true }) : new RingBuffer(info, { reuseBuffers: mode === 'reuse' });
    const done = new Promise<bigint>((resolve) => {
      rb.on('batch', (b: RecordBatch<unknown>) => {
        if (mode === 'decoded') {
          for (let i = 0; i < b.length; i++) sink += (b.get(i) as { seq: bigint }).seq;
          n += b.length;
        } else for (let i = 0; i < b.length; i++) n += b.sizeOf(i) > 0 ? 1 : 0;
        last = process.hrtime.bigint();
        if (n >= want - (count?.() ?? 0)) resolve(last);
      });
    });
    return { rb, done, got: () => n, sinkOf: () => sink };
  };
  const drainJs = async (mode: 'raw' | 'reuse' | 'decoded'): Promise<number> => {
    await fill();
    const t0 = process.hrtime.bigint();
    const c = consume(mode, records);
    const last = await c.done;
    c.rb.close();
    return (c.got() / Number(last - t0)) * 1e9;
  };
  const drainC = async (): Promise<number> => {
    await fill();
    const r = runC(bin, [String(info.id), String(records)]);
    if (r.count < records) throw new Error(`C consumer got ${r.count} of ${records}`);
    return (r.count / r.ns) * 1e9;
  };
  // Live: produce `records` in chunks while the consumer runs.
  const dropped = obj.map('dropped', { key: u32, value: u64 });
  const produce = async () => {
    const ctx = Buffer.alloc(16);
    ctx.writeBigUInt64LE(100_000n, 0);
    for (let done = 0; done < records; done += 100_000) await testRunProgram(prog, { ctx, cpu: 0 });
  };
  const drops = () => Number(dropped.get(0) ?? 0n);
  const liveJs = async () => {
    dropped.set(0, 0n);
    const c = consume('reuse', records, drops);
    const t0 = process.hrtime.bigint();
    await produce();
    const last = await c.done;
    c.rb.close();
    return { rate: (c.got() / Number(last - t0)) * 1e9, dropped: drops() };
  };
  const liveC = async () => {
    dropped.set(0, 0n);
    const child = spawn(bin, [String(info.id), String(records)]);
    let out = '';
    child.stdout.on('data', (x: Buffer) => (out += x.toString()));
    await new Promise((r) => setTimeout(r, 100)); // let it open the ring
    const t0 = process.hrtime.bigint(); // CLOCK_MONOTONIC, as the C program's clock
    await produce();
    await new Promise((r) => child.on('exit', r));
    const [count = 0, , last = 0] = out.trim().split(/\s+/).map(Number);
    return { rate: (count / Number(BigInt(last) - t0)) * 1e9, dropped: drops() };
  };

  for (let w = 0; w < 2; w++) for (const m of ['raw', 'reuse', 'decoded'] as const) await drainJs(m);
  await liveJs();
  const f = { c: [] as number[], raw: [] as number[], reuse: [] as number[], decoded: [] as number[], liveJs: [] as number[], liveC: [] as number[] };
  let liveDropsJs = 0;
  let liveDropsC = 0;
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 === 0 ? (['c', 'raw', 'reuse', 'decoded'] as const) : (['decoded', 'reuse', 'raw', 'c'] as const);
    for (const m of order) f[m].push(m === 'c' ? await drainC() : await drainJs(m));
    const lj = i % 2 === 0 ? await liveJs() : undefined;
    const lc = await liveC();
    const lj2 = lj ?? (await liveJs());
    f.liveJs.push(lj2.rate);
    f.liveC.push(lc.rate);
    liveDropsJs += lj2.dropped;
    liveDropsC += lc.dropped;
  }
  dropped.close();
  const m = Object.fromEntries(Object.entries(f).map(([k, v]) => [k, median(v)])) as Record<keyof typeof f, number>;
  const lo = Object.fromEntries(Object.entries(f).map(([k, v]) => [k, Math.min(...v)])) as Record<keyof typeof f, number>;
  return {
    figures: {
      cores: cpus().length,
      kernel: release(),
      records,
      rounds,
      cRecordsPerSec: Math.round(m.c),
      cRecordsPerSecMin: Math.round(lo.c),
      jsReuseRecordsPerSec: Math.round(m.reuse),
      jsReuseRecordsPerSecMin: Math.round(lo.reuse),
      jsRecordsPerSec: Math.round(m.raw),
      jsRecordsPerSecMin: Math.round(lo.raw),
      jsDecodedRecordsPerSec: Math.round(m.decoded),
      liveCRecordsPerSec: Math.round(m.liveC),
      liveCRecordsPerSecMin: Math.round(lo.liveC),
      liveJsRecordsPerSec: Math.round(m.liveJs),
      liveJsRecordsPerSecMin: Math.round(lo.liveJs),
      liveJsDropped: liveDropsJs,
      liveCDropped: liveDropsC,
    },
    ratios: {
      jsReuseOverC: m.reuse / m.c,
      jsReuseOverCMin: lo.reuse / lo.c,
      jsOverC: m.raw / m.c,
      jsDecodedOverC: m.decoded / m.c,
      liveJsOverC: m.liveJs / m.liveC,
      liveJsOverCMin: lo.liveJs / lo.liveC,
    },
    targets: {
      'drain js (reuseBuffers) >= 0.5x C': m.reuse >= 0.5 * m.c,
      'live js (reuseBuffers) >= 0.5x C': m.liveJs >= 0.5 * m.liveC,
      'js >= 2M rec/s': m.raw >= 2e6 && m.liveJs >= 2e6,
    },
  };
}
