import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { testRunProgram } from '../../lib/ebpf/attach.js';
import { field, struct, u32, u64 } from '../../lib/ebpf/codec.js';
import { ClosedError, UnsupportedError } from '../../lib/ebpf/errors.js';
import { loadObject } from '../../lib/ebpf/load.js';
import { BpfMap, numPossibleCpus } from '../../lib/ebpf/map.js';
import type { BpfObject } from '../../lib/ebpf/object.js';
import { PerfBuffer } from '../../lib/ebpf/perfbuf.js';
import { RingBuffer } from '../../lib/ebpf/ringbuf.js';
import { bpfObjectDir } from '../../lib/native/addon.js';

const objPath = join(bpfObjectDir(), 'test', 'dp_perfbuf.bpf.o');
// struct dp_perf_rec { u64 seq; u32 tgid; u32 cpu; }: 16 bytes, delivered padded to 20.
const rec = struct({ seq: field(u64, 0), tgid: field(u32, 8), cpu: field(u32, 12) }, 16);
const open: { close(): void }[] = [];
let dir = '';
let helper = '';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'smoothtask-perfbuf-'));
  helper = join(dir, 'getppid-loop');
  execFileSync('cc', ['-O2', '-o', helper, join(import.meta.dirname, '..', 'fixtures', 'dp', 'getppid-loop.c')]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  for (const o of open.splice(0).reverse()) o.close();
});

async function load(): Promise<BpfObject> {
  const obj = await loadObject(objPath, { cache: false });
  open.push(obj);
  return obj;
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Runs the helper: it waits until `target(pid)` has pointed the filter at it, then calls getppid() n times. */
async function getppidChild(n: number, target: (pid: number) => void): Promise<number> {
  const child = spawn(helper, [String(n)], { stdio: ['pipe', 'ignore', 'inherit'] });
  const pid = child.pid;
  if (pid === undefined) throw new Error('helper did not start');
  target(pid);
  const done = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.stdin.end('go');
  expect(await done).toBe(0);
  return pid;
}

function setTarget(obj: BpfObject, pid: number): void {
  const cfg = new BpfMap(obj.mapInfo('cfg'));
  try {
    const k = Buffer.alloc(4);
    const v = Buffer.alloc(4);
    v.writeUInt32LE(pid, 0);
    cfg.set(k, v);
  } finally {
    cfg.close();
  }
}

describe('PerfBuffer', () => {
  for (const reuseBuffers of [false, true])
  it(`20,000 getppid() calls of a child arrive complete, with correct fields, in order per CPU${reuseBuffers ? ' (reuseBuffers)' : ''}`, async () => {
    const obj = await load();
    // 1 MiB per CPU holds all 20,000 samples (32 bytes each with the perf header): nothing may be lost.
    const rb = obj.ringBuffer('events', { codec: rec, pageCount: 256, reuseBuffers });
    open.push(rb);
    expect(rb).toBeInstanceOf(PerfBuffer);
    const pb = rb as PerfBuffer<ReturnType<typeof rec.decode>>;
    const link = obj.program('dp_getppid').attach();
    open.push(link);
    const n = 20_000;
    const cpus = numPossibleCpus();
    const last = new Map<number, bigint>();
    const seqs = new Set<bigint>();
    const tgids = new Set<number>();
    let received = 0;
    let outOfOrder = 0;
    let badCpu = 0;
    let batches = 0;
    const sizes = new Set<number>();
    let firstBatch: { data: Buffer } | undefined;
    pb.on('batch', (b) => {
      batches++;
      firstBatch ??= b;
      for (let i = 0; i < b.length; i++) {
        const r = b.get(i);
        sizes.add(b.sizeOf(i));
        if (r.cpu >= cpus) badCpu++;
        const prev = last.get(r.cpu);
        if (prev !== undefined && r.seq <= prev) outOfOrder++;
        last.set(r.cpu, r.seq);
        seqs.add(r.seq);
        tgids.add(r.tgid);
        received++;
      }
    });
    const pid = await getppidChild(n, (p) => setTarget(obj, p));
    await until(() => received >= n, 30_000);
    await new Promise((r) => setTimeout(r, 50)); // nothing beyond n may follow
    expect(received).toBe(n);
    expect([...tgids]).toEqual([pid]);
    expect(badCpu).toBe(0);
    expect(outOfOrder).toBe(0);
    expect(seqs.size).toBe(n);
    const sorted = [...seqs].map(Number).sort((a, b) => a - b);
    expect(sorted[0]).toBe(0);
    expect(sorted[n - 1]).toBe(n - 1);
    expect([...sizes].every((s) => s >= 16)).toBe(true);
    // a consumed batch of reused memory is detached; otherwise it stays as it was
    if (reuseBuffers) expect(firstBatch!.data.length).toBe(0);
    else expect(firstBatch!.data.length).toBeGreaterThan(0);
    const s = pb.stats();
    expect(s.delivered).toBe(n);
    expect(s.lost).toBe(0);
    expect(s.batches).toBe(batches);
    expect(s.bytes).toBeGreaterThanOrEqual(n * 16);
    pb.close();
    expect(pb.closed).toBe(true);
    expect(pb.stats().delivered).toBe(n);
    expect(pb.stats().lost).toBe(0);
  });

  it('async iterator yields decoded records and ends on close(); close() is idempotent', async () => {
    const obj = await load();
    const pb = new PerfBuffer(obj.mapInfo('events'), { codec: rec, batchSize: 64 });
    open.push(pb);
    await testRunProgram(obj.program('dp_perf_produce'), { cpu: 0, ctx: Buffer.from([200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) });
    const got: number[] = [];
    for await (const r of pb) {
      expect(r.cpu).toBe(0);
      expect(r.tgid).toBe(0);
      got.push(Number(r.seq));
      if (got.length === 200) pb.close();
    }
    expect(got).toEqual(Array.from({ length: 200 }, (_, i) => i));
    pb.close();
    expect(pb.closed).toBe(true);
    expect(pb.stats().delivered).toBe(200);
    expect(() => pb.assertOpen()).toThrow(ClosedError);
  });

  it('stalled JS: the consumer pauses at the high-water mark and the kernel counts lost samples', async () => {
    const obj = await load();
    const hwm = 100;
    const pb = new PerfBuffer(obj.mapInfo('events'), { codec: rec, batchSize: 50, highWaterMark: hwm, pageCount: 2 });
    open.push(pb);
    const produced = 50_000;
    const c = Buffer.alloc(16);
    c.writeBigUInt64LE(BigInt(produced), 0);
    await testRunProgram(obj.program('dp_perf_produce'), { cpu: 0, ctx: c });
    await until(() => pb.stats().pauses > 0, 10_000);
    const s = pb.stats();
    expect(s.delivered).toBeLessThanOrEqual(hwm);
    expect(pb.queuedRecords).toBeLessThanOrEqual(hwm);
    // Resume: consuming drains what was held and what the buffer kept, in order.
    let got = 0;
    let outOfOrder = 0;
    let prev = -1n;
    const consumer = (async () => {
      for await (const r of pb) {
        if (r.seq <= prev) outOfOrder++;
        prev = r.seq;
        got++;
      }
    })();
    await until(() => got > s.delivered, 5_000); // the thread reads again
    // The kernel writes its lost-samples record at the next sample that finds room: send single
    // samples until every produced sample is accounted for, delivered or lost.
    c.writeBigUInt64LE(1n, 0);
    let sent = 0;
    const end = Date.now() + 10_000;
    while (sent === 0 || pb.stats().delivered + pb.stats().lost !== produced + sent) {
      if (Date.now() > end) throw new Error(`not accounted for: ${JSON.stringify(pb.stats())}, sent ${sent}`);
      await testRunProgram(obj.program('dp_perf_produce'), { cpu: 0, ctx: c });
      sent++;
      await new Promise((r) => setTimeout(r, 50));
    }
    pb.close();
    await consumer;
    expect(outOfOrder).toBe(0);
    expect(got).toBe(pb.stats().delivered);
    const e = pb.stats();
    // Two 4 KiB pages hold at most 256 samples of 32 bytes: the rest was lost, and counted.
    expect(e.lost).toBeGreaterThanOrEqual(produced - hwm - 256);
    expect(e.lost).toBeLessThan(produced);
    expect(e.pauses).toBeGreaterThan(0);
  });

  it('rejects maps that are not perf event arrays; RingBuffer still rejects perf event arrays', async () => {
    const obj = await load();
    expect(() => new PerfBuffer(obj.mapInfo('cfg'))).toThrow(UnsupportedError);
    expect(() => new RingBuffer(obj.mapInfo('events'))).toThrow(UnsupportedError);
  });

  for (const mode of ['exit', 'stall', 'unref'] as const) {
    it(`the process exits cleanly with a busy perf buffer (${mode})`, () => {
      const r = spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '..', 'fixtures', 'dp', 'perfbuf-exit.ts'), mode], {
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
