import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ProcessExecutor } from 'smoothtask/process';
import { OUTCOME_STATES, TaskQueue, isOutcome, type TaskHandle, type TaskRecord } from 'smoothtask/task';
import { pgrep, pidsWithMarker } from '../process/helpers.js';

const countResources = () => {
  const c: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) c[r] = (c[r] ?? 0) + 1;
  return c;
};

describe('1,000 tasks through the queue (concurrency 8)', () => {
  it('random successes, failures, throws, timeouts, cancels and retries: one outcome each, no leaked timers or children', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'st-stress-'));
    const before = countResources();
    const q = new TaskQueue({ concurrency: 8, dataDir, killAfterMs: 200 });
    let concurrent = 0;
    let maxConcurrent = 0;
    q.registerExecutor('inproc', {
      specSchema: z.object({ ms: z.number(), mode: z.enum(['ok', 'fail', 'throw', 'flaky']) }),
      async run(ctx) {
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        try {
          ctx.log('stdout', `attempt ${ctx.attempt}\n`);
          const stopped = await sleep(ctx.spec.ms, false, { signal: ctx.signal }).catch(() => true);
          if (stopped) return { exitCode: null, signal: 'SIGTERM' };
          if (ctx.spec.mode === 'throw') throw new Error('executor threw');
          if (ctx.spec.mode === 'fail') return { exitCode: 2 };
          if (ctx.spec.mode === 'flaky' && ctx.attempt < 2) return { exitCode: 1 };
          return { exitCode: 0 };
        } finally {
          concurrent--;
        }
      },
    });
    q.registerExecutor('process', new ProcessExecutor());
    const outcomeEvents = new Map<string, number>();
    q.onTransition((e) => {
      if (isOutcome(e.to)) outcomeEvents.set(e.task.id, (outcomeEvents.get(e.task.id) ?? 0) + 1);
    });
    const m = `27.${String(randomBytes(4).readUInt32BE()).padStart(10, '0')}`;
    const rnd = Math.random;
    const handles: TaskHandle[] = [];
    const cancels: Promise<unknown>[] = [];
    for (let i = 0; i < 1000; i++) {
      const r = rnd();
      const timeout = rnd() < 0.1;
      if (i % 25 === 0) {
        // a sample of real children: sh -c with sleeps, exit codes, timeouts
        const code = rnd() < 0.3 ? 1 : 0;
        handles.push(
          q.submit({
            kind: 'process',
            spec: { command: `sleep ${timeout ? m : '0.0' + Math.floor(rnd() * 5)}; exit ${code}`, shell: true },
            ...(timeout ? { timeoutMs: 50 } : {}),
          }),
        );
      } else {
        const mode = r < 0.12 ? 'fail' : r < 0.17 ? 'throw' : r < 0.25 ? 'flaky' : 'ok';
        handles.push(
          q.submit({
            kind: 'inproc',
            spec: { ms: timeout ? 10_000 : Math.floor(rnd() * 4), mode },
            priority: Math.floor(rnd() * 3),
            ...(timeout ? { timeoutMs: 5 + Math.floor(rnd() * 20) } : {}),
            ...(mode === 'flaky' || rnd() < 0.05 ? { retry: { maxAttempts: 3, baseMs: 1, maxMs: 5 } } : {}),
          }),
        );
      }
      if (rnd() < 0.1) {
        const h = handles[i]!;
        cancels.push(sleep(Math.floor(rnd() * 200)).then(() => h.cancel('random cancel')));
      }
    }
    const recs: TaskRecord[] = await Promise.all(handles.map((h) => h.done));
    await Promise.all(cancels);
    const stats = q.stats();
    await q.close();

    const byState: Record<string, number> = {};
    for (const r of recs) {
      byState[r.state] = (byState[r.state] ?? 0) + 1;
      expect(OUTCOME_STATES as readonly string[]).toContain(r.state);
      // exactly one outcome in the history and in what listeners heard
      expect(r.history.filter((h) => isOutcome(h.to)).length).toBe(1);
      expect(outcomeEvents.get(r.id)).toBe(1);
      expect(r.history.at(-1)!.to).toBe(r.state);
      // every history step was a legal transition chain
      for (let i = 1; i < r.history.length; i++) expect(r.history[i]!.from).toBe(r.history[i - 1]!.to);
      expect(r.leases).toEqual([]);
    }
    console.log('1000-task outcomes:', JSON.stringify(byState), 'max concurrent in-process:', maxConcurrent);
    expect(byState.succeeded).toBeGreaterThan(300);
    expect(byState.failed).toBeGreaterThan(50);
    expect(byState.timed_out).toBeGreaterThan(20);
    expect(byState.cancelled).toBeGreaterThan(20);
    expect(recs.some((r) => r.attempt > 1 && r.state === 'succeeded')).toBe(true);
    expect(maxConcurrent).toBeLessThanOrEqual(8);
    expect(stats).toMatchObject({ active: 0, pending: 0, retrying: 0 });

    // No children left: the unique sleep marker is nowhere in the process table.
    expect(pidsWithMarker(m)).toEqual([]);
    expect(pgrep(m)).toEqual([]);
    // No timers or child handles left behind by the queue.
    await sleep(50);
    const after = countResources();
    expect(after.Timeout ?? 0).toBeLessThanOrEqual(before.Timeout ?? 0);
    expect(after.ProcessWrap ?? 0).toBe(0);
    expect(after.FSReqCallback ?? 0).toBe(0);
    await rm(dataDir, { recursive: true, force: true });
  }, 120_000);
});
