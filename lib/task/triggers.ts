/**
 * What runs after a task's outcome: the triggers (the queue's and the task's own, filtered by
 * outcome, one at a time, each under its time limit) and the executor's cleanup. Each run is
 * returned as a {@link TriggerRecord} (for `task.triggers`); an error or timeout is recorded
 * and reported, never thrown, and never changes the outcome. Internal to `TaskQueue`.
 * @module
 */
import { TriggerTimeoutError } from './errors.js';
import { errInfo } from './outcome.js';
import type { OutcomeState } from './states.js';
import type { TaskExecutor, TaskRecord, TaskTrigger, TriggerRecord } from './types.js';

/** Reports an error that has no caller (the queue's `onError`). @internal */
export type ReportError = (error: unknown, where: string) => void;

/** The trigger key of each outcome (`TaskTrigger.on`). */
const TRIGGER_KEY = { succeeded: 'success', failed: 'failure', timed_out: 'timeout', cancelled: 'cancel' } as const;

/**
 * Runs, in order, the triggers of `triggers` that fire on `outcome` (default time limit 30 s;
 * a trigger past it has its signal aborted with {@link TriggerTimeoutError} and is not waited
 * for). `task` is read as each trigger starts. @internal
 */
export async function runTriggers(
  triggers: readonly TaskTrigger[],
  task: () => Readonly<TaskRecord>,
  outcome: OutcomeState,
  report: ReportError,
): Promise<TriggerRecord[]> {
  const key = TRIGGER_KEY[outcome];
  const out: TriggerRecord[] = [];
  for (const t of triggers.filter((t) => t.on.includes(key))) {
    const at = Date.now();
    const ms = t.timeoutMs ?? 30_000;
    const ac = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(() => t.run(task(), { outcome, signal: ac.signal })),
        new Promise((_, rej) => {
          timer = setTimeout(() => {
            const err = new TriggerTimeoutError(t.name, ms);
            ac.abort(err);
            rej(err);
          }, ms);
          timer.unref();
        }),
      ]);
      out.push({ name: t.name, on: outcome, at, ok: true, durationMs: Date.now() - at });
    } catch (err) {
      out.push({ name: t.name, on: outcome, at, ok: false, durationMs: Date.now() - at, error: errInfo(err) });
      report(err, `trigger ${t.name}`);
    } finally {
      clearTimeout(timer);
    }
  }
  return out;
}

/**
 * Runs the executor's cleanup of a task, if it has one, and returns its record (named
 * `cleanup`); `undefined` when there is no cleanup. @internal
 */
export async function runCleanup(
  executor: Pick<TaskExecutor<never>, 'cleanup'> | undefined,
  task: Readonly<TaskRecord>,
  report: ReportError,
): Promise<TriggerRecord | undefined> {
  if (!executor?.cleanup) return undefined;
  const at = Date.now();
  try {
    await executor.cleanup(task);
    return { name: 'cleanup', on: task.outcome ?? 'failed', at, ok: true, durationMs: Date.now() - at };
  } catch (err) {
    const rec: TriggerRecord = { name: 'cleanup', on: task.outcome ?? 'failed', at, ok: false, durationMs: Date.now() - at, error: errInfo(err) };
    report(err, 'cleanup');
    return rec;
  }
}
