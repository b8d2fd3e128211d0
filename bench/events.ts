/**
 * Events end to end: records per second from a ring buffer through a family reader's
 * `events()`, `monitor.events()` and an `AlertEngine` event-count rule, against a raw
 * RingBuffer 'batch' handler that counts the records of the same producer, in one run. The
 * raw handler and the family's ring reuse batch memory (`reuseBuffers`, as the built-in
 * families do); the default raw handler (fresh memory per batch) is measured beside them.
 *
 *   npm run bench -- events [records=2000000] [rounds=7]
 *
 * 2,000,000 records a round (about 0.1 s of the raw handler): at 500,000 a round lasted 25 ms
 * and the per-round ratios spread over 0.31–0.72 in one run.
 *
 * The alert path is fed with `engine.addEventBatchSource('monitor', (s) => monitor.eventBatches(
 * { signal: s }))` (one promise per batch through every layer); the per-event path
 * (`addEventSource` with `monitor.events()`) is measured once per round beside it.
 *
 * The producer is test/bpf/dp_ringbuf.bpf.c run with BPF_PROG_TEST_RUN on CPU 0 (100,000
 * records per run) while the consumer reads. The family ('benchring', registered here) is
 * built as the built-in families are: a reader over the object's ring buffer whose
 * `events()` maps records with the shared helper. Each phase ends when its consumer has
 * counted every record the producer wrote (the producer's drop counter is checked).
 * One untimed warm-up round of each path first. Target: the alert path >= 0.5x the raw
 * handler (median of the per-round ratios).
 */
import { join } from 'node:path';
import type { BenchResult } from './run.js';
import { testRunProgram } from '../lib/ebpf/attach.js';
import { field, struct, u32, u64 } from '../lib/ebpf/codec.js';
import { loadObject } from '../lib/ebpf/load.js';
import { RingBuffer } from '../lib/ebpf/ringbuf.js';
import { bpfObjectDir } from '../lib/native/addon.js';
import { createMonitor, registerFamily, type MetricReader } from '../lib/metrics/index.js';
import { mapEventBatches, mapEvents } from '../lib/metrics/readers-shared.js';
import { AlertEngine } from '../lib/notify/index.js';

const rec = struct({ seq: field(u64, 0), cpu: field(u32, 8), tag: field(u32, 12) }, 16);

const toEvent = (r: { seq: bigint; cpu: number }): { type: string; seq: bigint; cpu: number } => ({ type: 'record', seq: r.seq, cpu: r.cpu });

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};
const until = async (cond: () => boolean, ms = 60_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('bench events: consumer did not finish');
    await new Promise((r) => setTimeout(r, 2));
  }
};

export default async function bench(args: string[]): Promise<BenchResult> {
  const records = Number(args[0] ?? 2_000_000);
  const rounds = Math.max(1, Number(args[1] ?? 7));
  using obj = await loadObject(join(bpfObjectDir(), 'test', 'dp_ringbuf.bpf.o'), { cache: false });
  const info = obj.mapInfo('events');
  const prog = obj.program('dp_produce');
  using dropped = obj.map('dropped', { key: u32, value: u64 });
  const produce = async (): Promise<number> => {
    dropped.set(0, 0n);
    const ctx = Buffer.alloc(16);
    ctx.writeBigUInt64LE(100_000n, 0);
    for (let done = 0; done < records; done += 100_000) await testRunProgram(prog, { ctx, cpu: 0 });
    return Number(dropped.get(0) ?? 0n);
  };

  registerFamily('benchring', (ctx) => {
    const rb = new RingBuffer(info, { codec: rec, reuseBuffers: true }); // as the built-in families
    let closed = false;
    const reader: MetricReader = {
      family: 'benchring',
      backend: 'ebpf',
      get closed() {
        return closed;
      },
      read: async () => ({ family: 'benchring', backend: 'ebpf', timestamp: Date.now() }),
      events: (o = {}) => mapEvents(rb, toEvent, o.signal),
      eventBatches: (o = {}) => mapEventBatches(rb, toEvent, o.signal),
      memoryBytes: () => 0,
      close: () => {
        closed = true;
        rb.close();
      },
      [Symbol.dispose]() {
        this.close();
      },
    };
    void ctx;
    return reader;
  });

  // The baseline is the fastest raw handler (reused batch memory); `raw(false)` is the default one.
  const raw = async (reuseBuffers = true): Promise<{ ms: number; n: number; dropped: number }> => {
    let n = 0;
    const rb = new RingBuffer(info, { reuseBuffers });
    rb.on('batch', (b) => {
      n += b.length;
    });
    try {
      const t0 = performance.now();
      const d = await produce();
      await until(() => n + d >= records);
      return { ms: performance.now() - t0, n, dropped: d };
    } finally {
      rb.close();
    }
  };
  const alerts = async (batched = true): Promise<{ ms: number; n: number; dropped: number; fired: boolean }> => {
    const m = await createMonitor({ families: ['benchring'], events: true, backend: 'ebpf', required: true });
    const engine = new AlertEngine({
      rules: [{ name: 'RecordStorm', expr: { event: { source: 'monitor', match: { family: 'benchring' } }, count: { value: 1000, window: '1m' } } }],
    });
    try {
      if (batched) engine.addEventBatchSource('monitor', (signal) => m.eventBatches({ signal }));
      else engine.addEventSource('monitor', (signal) => m.events({ signal }));
      await new Promise((r) => setTimeout(r, 50)); // the reader's consumer thread is up
      const base = engine.stats.events;
      const t0 = performance.now();
      const d = await produce();
      await until(() => engine.stats.events - base + d >= records);
      const ms = performance.now() - t0;
      await engine.evaluate();
      return { ms, n: engine.stats.events - base, dropped: d, fired: engine.alerts().some((a) => a.rule === 'RecordStorm' && a.state === 'firing') };
    } finally {
      await engine.close();
      m.close();
    }
  };

  const rawRate: number[] = [];
  const alertRate: number[] = [];
  const ratio: number[] = [];
  const perEventRate: number[] = [];
  const perEventRatio: number[] = [];
  const defaultRawRate: number[] = [];
  let fired = true;
  let droppedTotal = 0;
  // Untimed warm-up of every path (V8 compiles the per-event code in the first rounds).
  await raw();
  await raw(false);
  await alerts();
  await alerts(false);
  for (let r = 0; r < rounds; r++) {
    const first = r % 2 === 0 ? raw : alerts;
    const second = r % 2 === 0 ? alerts : raw;
    const a = await first();
    const b = await second();
    const [rr, ar] = r % 2 === 0 ? [a, b as Awaited<ReturnType<typeof alerts>>] : [b, a as Awaited<ReturnType<typeof alerts>>];
    rawRate.push((rr.n / rr.ms) * 1000);
    alertRate.push((ar.n / ar.ms) * 1000);
    ratio.push(ar.n / ar.ms / (rr.n / rr.ms));
    fired &&= ar.fired;
    droppedTotal += rr.dropped + ar.dropped;
    const dr = await raw(false);
    defaultRawRate.push((dr.n / dr.ms) * 1000);
    const pe = await alerts(false);
    perEventRate.push((pe.n / pe.ms) * 1000);
    perEventRatio.push(pe.n / pe.ms / (rr.n / rr.ms));
  }
  return {
    figures: {
      records,
      rounds,
      rawRecordsPerSecMedian: Math.round(median(rawRate)),
      rawDefaultHandlerRecordsPerSecMedian: Math.round(median(defaultRawRate)),
      alertRecordsPerSecMedian: Math.round(median(alertRate)),
      perEventPathRecordsPerSecMedian: Math.round(median(perEventRate)),
      perRoundRatios: ratio.map((x) => x.toFixed(2)).join(' '),
      droppedByProducer: droppedTotal,
      ruleFired: String(fired),
    },
    ratios: {
      alertPathOverRawHandler: median(ratio),
      alertPathOverRawHandlerMin: Math.min(...ratio),
      alertPathOverDefaultRawHandler: median(alertRate) / median(defaultRawRate),
      perEventPathOverRawHandler: median(perEventRatio),
    },
    targets: { alertPathAtLeast0_5xRaw: median(ratio) >= 0.5 },
  };
}
