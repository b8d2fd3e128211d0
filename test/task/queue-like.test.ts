import { afterAll, describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import {
  TaskQueue,
  type TaskExecutor,
  type TaskHandle,
  type TaskListFilter,
  type TaskQueueLike,
  type TaskRecord,
  type TransitionEvent,
} from 'smoothtask/task';

/** A trivial executor: logs its word and returns it as the result. */
const echo: TaskExecutor<{ word: string }> = {
  specSchema: z.object({ word: z.string() }),
  async run(ctx) {
    ctx.log('stdout', `${ctx.spec.word}\n`);
    return { exitCode: 0, result: ctx.spec.word };
  },
};

/** Waits for a signal to abort (so that the test can cancel it while running). */
const wait: TaskExecutor = {
  run: (ctx) =>
    new Promise((resolve) => {
      const stop = () => resolve({ exitCode: null, signal: 'SIGTERM' });
      if (ctx.signal.aborted) stop();
      else ctx.signal.addEventListener('abort', stop, { once: true });
    }),
};

/** Written against the interface only: every answer is awaited, as the interface asks. */
async function drive(queue: TaskQueueLike): Promise<{ done: TaskRecord; cancelled: TaskRecord; seen: TransitionEvent[]; listed: string[] }> {
  const seen: TransitionEvent[] = [];
  const off = queue.onTransition((e) => seen.push(e));
  const h = await queue.submit({ kind: 'echo', spec: { word: 'hello' }, labels: { suite: 'queue-like' } });
  const done = await h.done;
  expect((await queue.get(h.id))?.state).toBe('succeeded');
  const listed = (await queue.list({ state: 'succeeded', labels: { suite: 'queue-like' } })).map((r) => r.id);
  const w = await queue.submit({ kind: 'wait', labels: { suite: 'queue-like' } });
  // Cancel once it runs, so the running path (abort, then record) is the one taken.
  while ((await queue.get(w.id))?.state !== 'running') await new Promise((r) => setTimeout(r, 5));
  expect(await queue.cancel(w.id, 'enough')).toBe(true);
  const cancelled = await w.done;
  expect(await queue.cancel(w.id)).toBe(false);
  off();
  return { done, cancelled, seen, listed };
}

const queues: TaskQueue[] = [];
afterAll(async () => {
  for (const q of queues) await q.close();
});

describe('TaskQueueLike', () => {
  it('TaskQueue is assignable to it; list() takes a TaskListFilter; submit() gives a TaskHandle', () => {
    expectTypeOf<TaskQueue>().toExtend<TaskQueueLike>();
    expectTypeOf<TaskQueue['list']>().parameter(0).toEqualTypeOf<TaskListFilter | undefined>();
    expectTypeOf<ReturnType<TaskQueue['submit']>>().toEqualTypeOf<TaskHandle>();
    // The interface's answers may be promises: code written against it awaits them.
    expectTypeOf<ReturnType<TaskQueueLike['get']>>().toExtend<Promise<unknown> | Readonly<TaskRecord> | undefined>();
  });

  it('a function written against the interface drives an in-process TaskQueue end to end', async () => {
    const q = new TaskQueue({ concurrency: 2 });
    queues.push(q);
    q.registerExecutor('echo', echo).registerExecutor('wait', wait);
    const like: TaskQueueLike = q;
    const { done, cancelled, seen, listed } = await drive(like);
    expect(done.state).toBe('succeeded');
    expect(done.result).toBe('hello');
    expect(done.history.map((h) => h.to)).toEqual(['queued', 'starting', 'running', 'succeeded']);
    expect(listed).toEqual([done.id]);
    expect(cancelled.state).toBe('cancelled');
    expect(cancelled.history.at(-1)?.reason).toContain('enough');
    expect(seen.filter((e) => e.task.id === done.id).map((e) => e.to)).toEqual(['queued', 'starting', 'running', 'succeeded']);
    expect(seen.filter((e) => e.task.id === cancelled.id).map((e) => e.to)).toEqual(['queued', 'starting', 'running', 'cancelled']);
    await like.close();
    expect(q.closed).toBe(true);
  });
});
