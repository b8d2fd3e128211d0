/**
 * What the queue does at start with the tasks its persistence recorded (`TaskQueue.ready`):
 * for each record, one {@link RecoveryStep}. Pure: `TaskQueue` loads the records, adopts each
 * one and applies its step. Nothing stays `starting` or `running`: those attempts died with the
 * previous process, and the `recovery` policy requeues or fails them.
 * @module
 */
import type { TaskEvent } from './states.js';
import type { TaskRecord } from './types.js';

/** A transition to record for a recovered task. @internal */
export interface RecoveryTransition {
  /** The event. */
  event: TaskEvent;
  /** Its reason (in the history). */
  reason: string;
  /** Fields recorded with it. */
  patch?: Partial<TaskRecord>;
}

/**
 * What to do with one recorded task: `enqueue` (after recording `transition`, if any),
 * `finish` (record the outcome `transition`, then run the triggers), `hold` (wait for
 * `release`), or `settle` (nothing to run; `forgettable` when it counts towards `keepFinished`).
 * @internal
 */
export type RecoveryStep =
  | { action: 'enqueue'; transition?: RecoveryTransition }
  | { action: 'finish'; transition: RecoveryTransition }
  | { action: 'hold' }
  | { action: 'settle'; forgettable: boolean };

/** The records in the order they are recovered (oldest first, so queue order is kept); sorts in place. @internal */
export function recoveryOrder(records: TaskRecord[]): TaskRecord[] {
  return records.sort((a, b) => a.timings.createdAt - b.timings.createdAt);
}

/**
 * The step for a recorded task: an interrupted attempt (`starting`/`running`) is requeued or
 * failed (`ERR_TASK_INTERRUPTED`) by `policy`; `created` (unless held) and `retrying` are
 * enqueued; `queued` waits again; `cleaning` and outcomes are settled. @internal
 */
export function recoveryStep(rec: Readonly<TaskRecord>, policy: 'requeue' | 'fail'): RecoveryStep {
  switch (rec.state) {
    case 'starting':
    case 'running':
      if (policy === 'requeue') return { action: 'enqueue', transition: { event: 'requeue', reason: `recovered after restart: was ${rec.state}` } };
      return {
        action: 'finish',
        transition: {
          event: 'abandon',
          reason: `recovered after restart: was ${rec.state}, policy fail`,
          patch: { error: { code: 'ERR_TASK_INTERRUPTED', message: `interrupted while ${rec.state}` } },
        },
      };
    case 'created':
      if (rec.held) return { action: 'hold' };
      return { action: 'enqueue', transition: { event: 'enqueue', reason: 'recovered after restart' } };
    case 'retrying':
      return { action: 'enqueue', transition: { event: 'enqueue', reason: 'recovered after restart' } };
    case 'queued':
      return { action: 'enqueue' };
    case 'cleaning':
      return { action: 'settle', forgettable: false };
    default:
      return { action: 'settle', forgettable: true };
  }
}
