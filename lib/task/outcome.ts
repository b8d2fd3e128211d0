/**
 * How the end of an attempt maps to the task's next event: `succeed`, `fail`, `time_out`,
 * `cancel`, `requeue` (the queue closed) or `retry`, with the reason and the fields recorded
 * with it. Pure: `TaskQueue` gathers what the attempt left and applies the verdict.
 * @module
 */
import { backoffDelay } from '../util/backoff.js';
import { QueueClosedError, TaskTimeoutError } from './errors.js';
import type { TaskEvent } from './states.js';
import type { RetryPolicy, TaskRecord, TaskResult } from './types.js';

/** An error as recorded on a task: its message, and its code when it has a string one. @internal */
export const errInfo = (e: unknown): { code?: string; message: string } => {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' ? { code, message: e.message } : { message: e.message };
  }
  return { message: String(e) };
};

/** What an attempt left behind, as {@link decideOutcome} needs it. @internal */
export interface AttemptEnd {
  /** The attempt's signal (aborted by a cancel, the timeout or the queue's close). */
  signal: AbortSignal;
  /** What the executor returned, if it returned. */
  result: TaskResult | undefined;
  /** What was thrown while starting or by the executor (`undefined`: nothing was). */
  failure: unknown;
  /** Whether the executor's `run` was called (else the attempt could not start). */
  ran: boolean;
  /** This attempt's number (1 for the first). */
  attempt: number;
  /** The task's retry policy, if it opted in. */
  retry: Required<RetryPolicy> | undefined;
  /** The queue is closed: nothing is retried. */
  closed: boolean;
  /** What a close does with a running attempt. */
  onClose: 'requeue' | 'cancel';
}

/** The event an attempt's end leads to, its reason, and the fields recorded with it. @internal */
export interface AttemptVerdict {
  /** The event to apply. */
  event: TaskEvent;
  /** Its reason (in the history). */
  reason: string | undefined;
  /** Fields of the record set by the attempt's end (exit code, signal, outputs, result, error). */
  patch: Partial<TaskRecord>;
}

/**
 * Decides the ending. An abort that happened before the work settled wins: the work was
 * stopped. Then a throw, then a failing result (an error, a non-zero exit code, a signal
 * without an exit code); otherwise success. A `failed` or `timed_out` ending that the retry
 * policy covers becomes `retry`, unless the attempts are spent or the queue is closed.
 * @internal
 */
export function decideOutcome(end: AttemptEnd): AttemptVerdict {
  const { signal, result, failure } = end;
  let event: TaskEvent;
  let reason: string | undefined;
  const patch: Partial<TaskRecord> = {};
  if (result) {
    patch.exitCode = result.exitCode ?? (result.signal ? null : 0);
    patch.signal = result.signal ?? null;
    if (result.outputs) patch.outputs = result.outputs;
    if (result.artifacts) patch.artifacts = result.artifacts;
    if (result.result !== undefined) patch.result = result.result;
  }
  if (signal.aborted) {
    const r: unknown = signal.reason;
    if (r instanceof TaskTimeoutError) {
      event = 'time_out';
      reason = r.message;
    } else if (r instanceof QueueClosedError) {
      event = end.onClose === 'requeue' ? 'requeue' : 'cancel';
      reason = r.message;
    } else {
      event = 'cancel';
      reason = r instanceof Error ? r.message : 'cancelled';
    }
    patch.error = errInfo(r);
  } else if (failure !== undefined) {
    event = 'fail';
    const error = errInfo(failure);
    patch.error = error;
    reason = error.message;
    if (!end.ran) reason = `could not start: ${reason}`;
  } else if (result && (result.error !== undefined || (result.exitCode ?? 0) !== 0 || (result.signal && result.exitCode == null))) {
    event = 'fail';
    reason = result.error ?? (result.signal ? `killed by ${result.signal}` : `exit code ${result.exitCode}`);
    patch.error = { message: reason };
  } else {
    event = 'succeed';
  }
  const retry = end.retry;
  const outcomeOf = event === 'time_out' ? 'timed_out' : event === 'fail' ? 'failed' : undefined;
  const willRetry = retry && outcomeOf && retry.on.includes(outcomeOf) && end.attempt < retry.maxAttempts && !end.closed;
  if (willRetry) {
    reason = `attempt ${end.attempt}/${retry.maxAttempts} ${outcomeOf}${reason ? `: ${reason}` : ''}`;
    event = 'retry';
  }
  return { event, reason, patch };
}

/** Delay before the next attempt after attempt number `attempt` ended in `retry`. @internal */
export function retryDelay(retry: Required<RetryPolicy>, attempt: number): number {
  return backoffDelay(attempt - 1, { baseMs: retry.baseMs, maxMs: retry.maxMs, factor: retry.factor });
}
