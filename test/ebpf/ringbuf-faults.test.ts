// Failure paths of the ring and perf buffer consumers (native/consumer.cc): a poll error on the
// consumer thread and a construction that fails after the consumer started registering itself.
// Faults come from the addon's test hook dp.consumerTestFault (compiled in, reachable only
// through that explicitly named internal function):
//   'poll'   : the next poll step of a consumer thread replaces the consumer's epoll fd with
//              /dev/null (dup3 on the consumer thread), so the real libbpf / epoll_wait call
//              fails with EINVAL, through the same path as any poll error.
//   'thread' : the next consumer construction fails where it starts its thread, as
//              std::thread does when pthread_create fails (std::system_error, EAGAIN).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { testRunProgram } from '../../lib/ebpf/attach.js';
import { BpfError } from '../../lib/ebpf/errors.js';
import { loadObject } from '../../lib/ebpf/load.js';
import { dp } from '../../lib/ebpf/map.js';
import type { BpfObject } from '../../lib/ebpf/object.js';
import { PerfBuffer } from '../../lib/ebpf/perfbuf.js';
import { RingBuffer } from '../../lib/ebpf/ringbuf.js';
import { bpfObjectDir } from '../../lib/native/addon.js';

interface Hooks {
  consumerTestFault(kind: 'thread' | 'poll'): void;
  consumerRegistrations(): number;
}
const hooks = (): Hooks => dp();
const EINVAL = 22;
const EAGAIN = 11;
const open: { close(): void }[] = [];
afterEach(() => {
  for (const o of open.splice(0).reverse()) o.close();
});

const kinds = ['ring', 'perf'] as const;
type Kind = (typeof kinds)[number];

async function consumer(kind: Kind, opts: { batchSize?: number } = {}): Promise<{ obj: BpfObject; c: RingBuffer; produce: (n: number) => Promise<void> }> {
  const obj = await loadObject(join(bpfObjectDir(), 'test', kind === 'perf' ? 'dp_perfbuf.bpf.o' : 'dp_ringbuf.bpf.o'), { cache: false });
  open.push(obj);
  const info = obj.mapInfo('events');
  const c = kind === 'perf' ? new PerfBuffer(info, { pageCount: 64, ...opts }) : new RingBuffer(info, opts);
  open.push(c);
  const prog = obj.program(kind === 'perf' ? 'dp_perf_produce' : 'dp_produce');
  const produce = async (n: number) => {
    const ctx = Buffer.alloc(16);
    ctx.writeBigUInt64LE(BigInt(n), 0);
    await testRunProgram(prog, { ctx, cpu: 0 });
  };
  return { obj, c, produce };
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** `p`'s outcome, or 'timeout' after `ms` (a consumer that never reports its error must fail, not hang). */
async function outcome<T>(p: Promise<T>, ms: number): Promise<{ value?: T; error?: unknown } | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  try {
    return await Promise.race([p.then((value) => ({ value }), (error: unknown) => ({ error })), t]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs test/fixtures/dp/consumer-fault-exit.ts in a child; it must not fail to start or time out. */
function child(kind: Kind, mode: 'thread' | 'poll' | 'worker', timeout: number): SpawnSyncReturns<string> {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '..', 'fixtures', 'dp', 'consumer-fault-exit.ts'), kind, mode], {
    encoding: 'utf8',
    timeout,
    env: process.env,
  });
  expect(r.error).toBeUndefined();
  return r;
}

function expectPollError(e: unknown): void {
  expect(e).toBeInstanceOf(BpfError);
  const err = e as BpfError;
  expect(err.errno).toBe(EINVAL);
  expect(err.code).toBe('ERR_BPF_SYSTEM');
  expect(err.message).toMatch(/errno 22/);
}

describe('consumer failure paths', () => {
  for (const kind of kinds) {
    it(`${kind}: a poll error rejects a waiting iterator with a typed error carrying the errno; ref/unref/close stay safe`, async () => {
      const { c, produce } = await consumer(kind, { batchSize: 16 });
      await produce(100);
      const it = c[Symbol.asyncIterator]();
      for (let i = 0; i < 100; i++) {
        const r = await outcome(it.next(), 20_000);
        expect(r).not.toBe('timeout');
      }
      expect(c.stats().delivered).toBe(100);
      hooks().consumerTestFault('poll');
      const r = await outcome(it.next(), 20_000); // the iterator is waiting when the thread dies
      expect(r).not.toBe('timeout');
      expectPollError((r as { error?: unknown }).error);
      expect(c.closed).toBe(true);
      expectPollError(c.error);
      c.unref();
      c.ref();
      c.unref();
      c.close();
      c.close();
      expect(c.stats().delivered).toBe(100);
      // A new iterator after the error rejects at once with the same error.
      const again = await outcome(c[Symbol.asyncIterator]().next(), 5_000);
      expect((again as { error?: unknown }).error).toBe(c.error);
    });

    it(`${kind}: records received before a poll error reach the iterator before the rejection; 'error' then 'close' are emitted`, async () => {
      const { c, produce } = await consumer(kind, { batchSize: 16 });
      const events: string[] = [];
      let emitted: unknown;
      c.on('error', (e) => {
        events.push('error');
        emitted = e;
      });
      c.on('close', () => events.push('close'));
      await produce(100);
      await until(() => c.queuedRecords === 100, 20_000);
      hooks().consumerTestFault('poll');
      await until(() => events.length === 2, 20_000);
      expect(events).toEqual(['error', 'close']);
      expectPollError(emitted);
      let got = 0;
      let caught: unknown;
      try {
        for await (const r of c) {
          expect(Buffer.isBuffer(r)).toBe(true);
          got++;
        }
      } catch (e) {
        caught = e;
      }
      expect(got).toBe(100);
      expect(caught).toBe(emitted);
    });

    it(`${kind}: ref()/unref() while the thread has stopped on an error and JS does not know yet are safe`, async () => {
      const { c } = await consumer(kind);
      let emitted: unknown;
      c.on('error', (e) => (emitted = e));
      hooks().consumerTestFault('poll');
      // Block the main thread past the thread's poll timeout (500 ms): the thread hits the fault
      // and ends while the error is still queued for JS.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500);
      for (let i = 0; i < 100; i++) {
        c.unref();
        c.ref();
      }
      c.stats();
      await until(() => emitted !== undefined, 20_000);
      expectPollError(emitted);
      c.unref();
      c.ref();
      c.close();
    });

    it(`${kind}: a construction that fails after registering leaves nothing registered; the error is typed`, () => {
      const r = child(kind, 'thread', 60_000);
      expect(r.stderr).toBe('');
      expect(r.signal).toBeNull();
      expect(r.status).toBe(0);
      const out = JSON.parse(r.stdout.trim()) as { name: string; code: string; errno: number; before: number; after: number; during: number; end: number };
      expect(out.name).toBe('BpfError');
      expect(out.code).toBe('ERR_BPF_SYSTEM');
      expect(out.errno).toBe(EAGAIN);
      expect(out.after).toBe(out.before);
      expect(out.during).toBe(out.before + 1);
      expect(out.end).toBe(out.before);
    });

    it(`${kind}: a consumer stopped by a poll error with no 'error' listener warns, closes itself and lets the process exit`, () => {
      const r = child(kind, 'poll', 60_000);
      expect(r.signal).toBeNull();
      expect(r.status).toBe(0);
      expect(r.stderr).toMatch(/BpfError: .*errno 22/);
      const out = JSON.parse(r.stdout.trim()) as { seen: number; closed: boolean; before: number; end: number };
      expect(out.seen).toBe(10);
      expect(out.closed).toBe(true);
      expect(out.end).toBe(out.before);
    });

    it(`${kind}: consumers in worker threads that are terminated, exit, or fail construction leave nothing registered`, () => {
      const r = child(kind, 'worker', 120_000);
      expect(r.stderr).toBe('');
      expect(r.signal).toBeNull();
      expect(r.status).toBe(0);
      const out = JSON.parse(r.stdout.trim()) as { outcomes: Record<string, number>; before: number; end: number };
      expect(out.outcomes).toEqual({ 'terminate:up': 8, 'exit:up': 8, 'fail:failed': 8 });
      expect(out.end).toBe(out.before);
    });
  }

  it('the hook arms one fault at a time and a healthy consumer still works afterwards', async () => {
    const { c, produce } = await consumer('ring');
    await produce(10);
    await until(() => c.queuedRecords === 10, 20_000);
    expect(c.error).toBeUndefined();
    expect(hooks().consumerRegistrations()).toBeGreaterThanOrEqual(1);
  });
});
