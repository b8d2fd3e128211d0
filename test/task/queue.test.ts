import { setTimeout as sleep } from 'node:timers/promises';
import { readFile, rm } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  TaskQueue,
  TaskTimeoutError,
  TaskCancelledError,
  UnknownTaskKindError,
  TaskNotHeldError,
  type TaskExecutor,
  type TaskRecord,
  type TransitionEvent,
} from 'smoothtask/task';
import { ConfigError } from '../../lib/errors/index.js';

/** An executor that honours abort the way the seam asks: stop, then settle. */
const sleepExec: TaskExecutor<{ ms: number; exit?: number; throws?: boolean }> = {
  specSchema: z.object({ ms: z.number(), exit: z.number().optional(), throws: z.boolean().optional() }),
  async run(ctx) {
    ctx.log('stdout', `start ${ctx.spec.ms}\n`);
    try {
      await sleep(ctx.spec.ms, undefined, { signal: ctx.signal });
    } catch {
      ctx.log('system', 'aborted\n');
      return { exitCode: null, signal: 'SIGTERM' };
    }
    if (ctx.spec.throws) throw new Error('boom');
    return { exitCode: ctx.spec.exit ?? 0 };
  },
};

const queues: TaskQueue[] = [];
function makeQueue(opts: ConstructorParameters<typeof TaskQueue>[0] = {}): TaskQueue {
  const q = new TaskQueue(opts);
  q.registerExecutor('sleep', sleepExec);
  queues.push(q);
  return q;
}
afterAll(async () => {
  for (const q of queues) await q.close();
});

const states = (r: TaskRecord) => r.history.map((h) => h.to);

describe('TaskQueue', () => {
  it('submit returns at once; success path records history, timings and logs', async () => {
    const q = makeQueue();
    const seen: TransitionEvent[] = [];
    q.onTransition((e) => seen.push(e));
    const logs: string[] = [];
    q.onLog((e) => logs.push(e.chunk));
    // "At once": synchronously, before the task is even queued (no timing: a loaded host
    // made a 50 ms bound fail while nothing was wrong).
    const h = q.submit({ kind: 'sleep', spec: { ms: 30 } });
    expect(h).not.toBeInstanceOf(Promise);
    expect(q.get(h.id)?.state).toBe('created');
    const r = await h.done;
    expect(r.state).toBe('succeeded');
    expect(states(r)).toEqual(['queued', 'starting', 'running', 'succeeded']);
    expect(r.exitCode).toBe(0);
    expect(r.attempt).toBe(1);
    expect(r.timings.endedAt! >= r.timings.runningAt!).toBe(true);
    expect(seen.map((e) => e.to)).toEqual(states(r));
    expect(logs).toEqual(['start 30\n']);
    expect(await readFile(r.logs!.stdout, 'utf8')).toBe('start 30\n');
    expect(await readFile(r.logPath!, 'utf8')).toBe('start 30\n');
    expect(Object.isFrozen(r)).toBe(true);
    await rm(r.workspace!, { recursive: true, force: true });
  });

  it('setInfo is visible through get() and list() while the attempt runs, and persisted with its ending', async () => {
    const q = makeQueue();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    q.registerExecutor('info', {
      async run(ctx) {
        ctx.setInfo({ pid: 4242 });
        await gate;
        ctx.setInfo({ phase: 'late' });
        return { exitCode: 0 };
      },
    });
    const h = q.submit({ kind: 'info', spec: {} });
    for (let i = 0; i < 200 && q.get(h.id)?.info.pid === undefined; i++) await sleep(5);
    expect(q.get(h.id)?.state).toBe('running');
    expect(q.get(h.id)?.info).toEqual({ pid: 4242 });
    expect(q.list({ state: 'running' }).find((r) => r.id === h.id)?.info.pid).toBe(4242);
    expect(Object.isFrozen(q.get(h.id)!.info)).toBe(true);
    release();
    const r = await h.done;
    expect(r.info).toEqual({ pid: 4242, phase: 'late' });
  });

  it('validates at submit: unknown kind, bad spec', () => {
    const q = makeQueue();
    expect(() => q.submit({ kind: 'nope' })).toThrow(UnknownTaskKindError);
    expect(() => q.submit({ kind: 'sleep', spec: { ms: 'x' } })).toThrow(ConfigError);
    expect(() => q.submit({ kind: 'sleep', spec: { ms: 1 }, priority: 'high' as never })).toThrow(/priority/);
  });

  it('non-zero exit and thrown errors fail; error recorded', async () => {
    const q = makeQueue();
    const a = await q.submit({ kind: 'sleep', spec: { ms: 1, exit: 3 } }).done;
    expect(a.state).toBe('failed');
    expect(a.exitCode).toBe(3);
    expect(a.error?.message).toBe('exit code 3');
    const b = await q.submit({ kind: 'sleep', spec: { ms: 1, throws: true } }).done;
    expect(b.state).toBe('failed');
    expect(b.error?.message).toBe('boom');
  });

  it('timeout aborts with TaskTimeoutError and records timed_out only after run settled', async () => {
    const q = makeQueue({ concurrency: 1 });
    let reason: unknown;
    let settledAt = 0;
    q.registerExecutor('slowstop', {
      async run(ctx) {
        await new Promise<void>((r) => ctx.signal.addEventListener('abort', () => r(), { once: true }));
        reason = ctx.signal.reason;
        await sleep(80); // the work takes a while to go away
        settledAt = Date.now();
        return { exitCode: null, signal: 'SIGTERM' };
      },
    });
    const h = q.submit({ kind: 'slowstop', timeoutMs: 40 });
    const next = q.submit({ kind: 'sleep', spec: { ms: 1 } });
    const r = await h.done;
    expect(reason).toBeInstanceOf(TaskTimeoutError);
    expect(r.state).toBe('timed_out');
    expect(r.timings.endedAt!).toBeGreaterThanOrEqual(settledAt);
    // concurrency 1: the next task may only start after the timed-out work is gone
    const n = await next.done;
    expect(n.timings.startedAt!).toBeGreaterThanOrEqual(settledAt);
  });

  it('cancel: waiting task at once, running task through its signal, submit signal', async () => {
    const q = makeQueue({ concurrency: 1 });
    const running = q.submit({ kind: 'sleep', spec: { ms: 5000 } });
    const waiting = q.submit({ kind: 'sleep', spec: { ms: 5000 } });
    const ac = new AbortController();
    const viaSignal = q.submit({ kind: 'sleep', spec: { ms: 5000 }, signal: ac.signal });
    while (q.get(running.id)?.state !== 'running') await sleep(2);
    expect(await waiting.cancel('not needed')).toBe(true);
    const w = await waiting.done;
    expect(w.state).toBe('cancelled');
    expect(states(w)).toEqual(['queued', 'cancelled']);
    ac.abort();
    expect((await viaSignal.done).state).toBe('cancelled');
    await q.cancel(running.id);
    const r = await running.done;
    expect(r.state).toBe('cancelled');
    expect(r.error?.code).toBe(new TaskCancelledError('x').code);
    expect(await q.cancel(running.id)).toBe(false);
  });

  it('priorities: higher first, FIFO within a priority', async () => {
    const q = makeQueue({ concurrency: 1 });
    const order: string[] = [];
    q.registerExecutor('rec', {
      async run(ctx) {
        order.push(ctx.task.id);
        return {};
      },
    });
    const block = q.submit({ kind: 'sleep', spec: { ms: 50 } });
    while (q.get(block.id)?.state !== 'running') await sleep(2);
    const hs = [
      q.submit({ kind: 'rec', id: 'low1', priority: -1 }),
      q.submit({ kind: 'rec', id: 'mid1' }),
      q.submit({ kind: 'rec', id: 'high', priority: 5 }),
      q.submit({ kind: 'rec', id: 'mid2' }),
      q.submit({ kind: 'rec', id: 'low2', priority: -1 }),
    ];
    await Promise.all(hs.map((h) => h.done));
    expect(order).toEqual(['high', 'mid1', 'mid2', 'low1', 'low2']);
  });

  it('retries with backoff until success, history keeps each failure', async () => {
    const q = makeQueue();
    let n = 0;
    q.registerExecutor('flaky', {
      async run() {
        n++;
        return { exitCode: n < 3 ? 1 : 0 };
      },
    });
    const r = await q.submit({ kind: 'flaky', retry: { maxAttempts: 5, baseMs: 5, maxMs: 20 } }).done;
    expect(r.state).toBe('succeeded');
    expect(r.attempt).toBe(3);
    expect(r.error).toBeUndefined(); // earlier attempts' errors stay in the history only
    expect(r.history.filter((h) => h.event === 'retry').map((h) => h.reason)).toEqual([
      'attempt 1/5 failed: exit code 1',
      'attempt 2/5 failed: exit code 1',
    ]);
    expect(states(r).filter((s) => s === 'retrying')).toHaveLength(2);
    const exhausted = await q.submit({ kind: 'sleep', spec: { ms: 1, exit: 2 }, retry: { maxAttempts: 2, baseMs: 1 } }).done;
    expect(exhausted.state).toBe('failed');
    expect(exhausted.attempt).toBe(2);
  });

  it('triggers run per outcome; their errors are recorded, not lost', async () => {
    const q = makeQueue({
      triggers: [
        { name: 'always-bad', on: ['success', 'failure', 'timeout', 'cancel'], run: () => { throw new Error('trigger broke'); } },
      ],
    });
    const hits: string[] = [];
    const r = await q.submit({
      kind: 'sleep',
      spec: { ms: 1, exit: 1 },
      triggers: [
        { name: 'on-fail', on: ['failure'], run: (t) => void hits.push(`fail:${t.exitCode}`) },
        { name: 'on-ok', on: ['success'], run: () => void hits.push('ok') },
        { name: 'slow', on: ['failure'], timeoutMs: 20, run: () => sleep(1000) },
      ],
    }).done;
    expect(hits).toEqual(['fail:1']);
    expect(r.triggers.map((t) => [t.name, t.ok])).toEqual([
      ['always-bad', false],
      ['on-fail', true],
      ['slow', false],
    ]);
    expect(r.triggers[0]!.error?.message).toBe('trigger broke');
    expect(r.triggers[2]!.error?.code).toBe('ERR_TASK_TRIGGER_TIMEOUT');
  });

  it('forget() right after the outcome waits for the triggers, so their save cannot write the record back', async () => {
    const saved = new Map<string, TaskRecord>();
    const persistence = {
      save: async (t: TaskRecord) => void saved.set(t.id, t),
      loadAll: async () => [],
      remove: async (id: string) => void saved.delete(id),
    };
    const q = makeQueue({ persistence, triggers: [{ name: 'slow', on: ['success'], run: () => sleep(150) }] });
    await q.ready;
    const h = q.submit({ kind: 'sleep', spec: { ms: 1 } });
    // Forget as soon as the outcome is recorded, while the trigger still runs.
    const forgotten = new Promise<boolean>((resolve, reject) => {
      q.onTransition((e) => {
        if (e.task.id === h.id && e.to === 'succeeded') q.forget(h.id).then(resolve, reject);
      });
    });
    expect(await forgotten).toBe(true);
    expect((await h.done).triggers.map((t) => t.name)).toEqual(['slow']);
    await sleep(50);
    expect(saved.has(h.id)).toBe(false);
    expect(q.get(h.id)).toBeUndefined();
  });

  it('hold: the task stays created until released, then runs; release twice or after cancel is refused', async () => {
    const q = makeQueue();
    const h = q.submit({ kind: 'sleep', spec: { ms: 1 }, hold: true });
    await sleep(50);
    expect(q.get(h.id)?.state).toBe('created');
    expect(q.get(h.id)?.held).toBe(true);
    const released = await q.release(h.id);
    expect(['queued', 'starting', 'running', 'succeeded']).toContain(released.state);
    const r = await h.done;
    expect(r.state).toBe('succeeded');
    expect(r.held).toBe(false);
    expect(r.history[0]).toMatchObject({ from: 'created', to: 'queued', event: 'enqueue', reason: 'released' });
    await expect(q.release(h.id)).rejects.toBeInstanceOf(TaskNotHeldError);
    // Cancelled while held: final at once, never ran, cannot be released.
    const c = q.submit({ kind: 'sleep', spec: { ms: 1 }, hold: true });
    expect(await q.cancel(c.id, 'no inputs')).toBe(true);
    const cr = await c.done;
    expect(cr.state).toBe('cancelled');
    expect(states(cr)).toEqual(['cancelled']);
    await expect(q.release(c.id)).rejects.toBeInstanceOf(TaskNotHeldError);
    // A plain task is not held.
    const p = q.submit({ kind: 'sleep', spec: { ms: 1 } });
    await expect(q.release(p.id)).rejects.toBeInstanceOf(TaskNotHeldError);
    await p.done;
  });

  it('hold survives a restart: the recovered task is still created and held, and runs once released', async () => {
    const saved = new Map<string, TaskRecord>();
    const persistence = {
      save: async (t: TaskRecord) => void saved.set(t.id, structuredClone(t)),
      loadAll: async () => [...saved.values()],
      remove: async (id: string) => void saved.delete(id),
    };
    const q1 = makeQueue({ persistence });
    await q1.ready;
    const h = q1.submit({ kind: 'sleep', spec: { ms: 1 }, hold: true });
    await sleep(20);
    await q1.close();
    expect(saved.get(h.id)?.state).toBe('created');
    const q2 = makeQueue({ persistence });
    await q2.ready;
    await sleep(50);
    expect(q2.get(h.id)?.state).toBe('created');
    await q2.release(h.id);
    expect((await q2.wait(h.id)).state).toBe('succeeded');
  });

  it('an attempt whose start is not on disk yet has not run and is not heard: a crash then leaves it queued, and a restart runs it once', async () => {
    const saved = new Map<string, TaskRecord>();
    let block = true;
    const persistence = {
      // The write that carries the attempt's start (state running) never completes: a crash now.
      save: (t: TaskRecord) => (block && t.state === 'running' ? new Promise<void>(() => {}) : Promise.resolve(void saved.set(t.id, structuredClone(t)))),
      loadAll: async () => [...saved.values()],
      remove: async (id: string) => void saved.delete(id),
    };
    let runs = 0;
    const q1 = new TaskQueue({ persistence });
    q1.registerExecutor('count', { run: async () => (runs++, {}) });
    const heard: string[] = [];
    q1.onTransition((e) => heard.push(e.to));
    q1.submit({ id: 'start-then-crash', kind: 'count' });
    // Applied in memory, its write in flight (and never done).
    while (q1.get('start-then-crash')?.state !== 'starting') await sleep(5);
    await sleep(50);
    expect(runs).toBe(0);
    expect(heard).toEqual(['queued']);
    expect(saved.get('start-then-crash')!.state).toBe('queued');
    block = false;
    const atCrash = [...saved.values()].map((r) => structuredClone(r));
    const q2 = new TaskQueue({ persistence: { ...persistence, loadAll: async () => atCrash } });
    q2.registerExecutor('count', { run: async () => (runs++, {}) });
    queues.push(q2);
    expect((await q2.wait('start-then-crash')).state).toBe('succeeded');
    expect(runs).toBe(1);
  });

  it("persist: 'outcome' records nothing before the end, so a crash mid-run leaves nothing for a restart to run again", async () => {
    const saved = new Map<string, TaskRecord>();
    const states: Record<string, string[]> = {};
    const persistence = {
      save: async (t: TaskRecord) => {
        (states[t.id] ??= []).push(t.state);
        saved.set(t.id, structuredClone(t));
      },
      loadAll: async () => [...saved.values()],
      remove: async (id: string) => void saved.delete(id),
    };
    const q1 = makeQueue({ persistence, concurrency: 2 });
    await q1.ready;
    const once = q1.submit({ id: 'outcome-only', kind: 'sleep', spec: { ms: 400 }, persist: 'outcome' });
    const every = q1.submit({ id: 'every-transition', kind: 'sleep', spec: { ms: 400 } });
    while (q1.get(once.id)?.state !== 'running' || q1.get(every.id)?.state !== 'running') await sleep(5);
    // What a SIGKILL now would leave on disk: the first task is not there at all.
    const atCrash = new Map([...saved].map(([k, v]) => [k, structuredClone(v)]));
    expect([...atCrash.keys()]).toEqual(['every-transition']);
    expect(atCrash.get('every-transition')!.state).toBe('running');
    // Its end is recorded as usual, with the whole history.
    expect((await once.done).state).toBe('succeeded');
    await every.done;
    expect(states['outcome-only']).toEqual(['succeeded']);
    expect(saved.get('outcome-only')!.history.map((h) => h.to)).toEqual(['queued', 'starting', 'running', 'succeeded']);
    // One write per recorded step: created goes with queued, an attempt's start with its run.
    expect(states['every-transition']).toEqual(['queued', 'running', 'succeeded']);
    expect(saved.get('every-transition')!.history.map((h) => h.to)).toEqual(['queued', 'starting', 'running', 'succeeded']);
    // A restart from the crash's records runs the recorded task again, and only that one.
    const q2 = makeQueue({ persistence: { ...persistence, loadAll: async () => [...atCrash.values()] } });
    await q2.ready;
    expect(q2.get('outcome-only')).toBeUndefined();
    const again = await q2.wait('every-transition');
    expect(again.state).toBe('succeeded');
    expect(again.history.some((h) => h.reason === 'recovered after restart: was running')).toBe(true);
    // Not with hold: a held task must survive a restart.
    expect(() => q1.submit({ kind: 'sleep', spec: { ms: 1 }, hold: true, persist: 'outcome' })).toThrow(ConfigError);
  });

  it('archive runs executor cleanup through cleaning -> archived', async () => {
    const q = makeQueue();
    const cleaned: string[] = [];
    q.registerExecutor('c', { run: async () => ({}), cleanup: async (t) => void cleaned.push(t.id) });
    const h = q.submit({ kind: 'c' });
    const r = await q.archive(h.id);
    expect(r.state).toBe('archived');
    expect(r.outcome).toBe('succeeded');
    expect(cleaned).toEqual([h.id]);
    expect(states(r).slice(-2)).toEqual(['cleaning', 'archived']);
  });

  it('close aborts running attempts and waits for them', async () => {
    const q = makeQueue();
    const h = q.submit({ kind: 'sleep', spec: { ms: 10_000 } });
    while (q.get(h.id)?.state !== 'running') await sleep(2);
    await q.close();
    expect(q.get(h.id)?.state).toBe('cancelled');
    expect(() => q.submit({ kind: 'sleep', spec: { ms: 1 } })).toThrow(/closed/);
  });
});

describe('dataDir', () => {
  it('a relative dataDir is resolved when the queue is created: workspaces are absolute paths (the Docker engine refuses relative binds)', async () => {
    const { mkdtemp } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { isAbsolute, join, relative } = await import('node:path');
    const abs = await mkdtemp(join(tmpdir(), 'smoothtask-reldir-'));
    try {
      const rel = relative(process.cwd(), join(abs, 'tasks'));
      expect(isAbsolute(rel)).toBe(false);
      const q = new TaskQueue({ dataDir: rel });
      queues.push(q);
      let seen = '';
      q.registerExecutor('where', { async run(ctx) { seen = ctx.workspace; return {}; } });
      const rec = await q.submit({ kind: 'where', spec: {} }).done;
      expect(rec.state).toBe('succeeded');
      expect(isAbsolute(seen)).toBe(true);
      expect(seen.startsWith(join(abs, 'tasks') + '/')).toBe(true);
    } finally {
      await rm(abs, { recursive: true, force: true });
    }
  });
});
