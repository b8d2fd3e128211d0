/**
 * The task state machine: a typed table of `(state, event) -> state`.
 *
 * Nothing in smoothtask assigns `task.state` directly; every change goes through
 * {@link nextState}, so an illegal transition is an {@link IllegalTransitionError}, never a
 * silent overwrite.
 * @module
 */
import { SmoothtaskError } from '../errors/index.js';

/** Every state a task can be in. */
export const TASK_STATES = [
  'created',
  'queued',
  'starting',
  'running',
  'retrying',
  'succeeded',
  'failed',
  'timed_out',
  'cancelled',
  'cleaning',
  'archived',
] as const;

/** A task state. */
export type TaskState = (typeof TASK_STATES)[number];

/** Every event that can move a task. */
export const TASK_EVENTS = [
  'enqueue',
  'start',
  'run',
  'succeed',
  'fail',
  'time_out',
  'cancel',
  'retry',
  'requeue',
  'abandon',
  'clean',
  'archive',
] as const;

/** An event applied to a task. */
export type TaskEvent = (typeof TASK_EVENTS)[number];

/** The outcome states: a task that reaches one of them has finished its work, exactly once. */
export const OUTCOME_STATES = ['succeeded', 'failed', 'timed_out', 'cancelled'] as const;

/** An outcome state. */
export type OutcomeState = (typeof OUTCOME_STATES)[number];

/** States in which the task's work may be executing (a recovered task found here was interrupted). */
export const ACTIVE_STATES = ['starting', 'running'] as const;

/** States in which the task waits for a slot (in memory or in the store). */
export const WAITING_STATES = ['created', 'queued', 'retrying'] as const;

const settle = {
  succeed: 'succeeded',
  fail: 'failed',
  time_out: 'timed_out',
  cancel: 'cancelled',
  retry: 'retrying',
  requeue: 'queued',
  abandon: 'failed',
} as const;

/**
 * The transition table. A missing `(state, event)` pair is illegal.
 *
 * - `created --enqueue--> queued`, `queued --start--> starting --run--> running`.
 * - From `starting`/`running`, the queue applies the outcome only after the executor's `run()`
 *   settled: `succeed`, `fail`, `time_out`, `cancel`, or `retry` (the attempt failed and the
 *   task opted into retries; it waits in `retrying`, then `enqueue`s again).
 * - `requeue` and `abandon` are used by crash recovery (and `requeue` by a queue closing with
 *   policy `requeue`) for tasks that were interrupted in `starting`/`running`.
 * - Outcome states are final for the work; `clean` then `archive` run the executor's cleanup.
 */
export const TRANSITIONS: { readonly [S in TaskState]: { readonly [E in TaskEvent]?: TaskState } } = {
  created: { enqueue: 'queued', cancel: 'cancelled' },
  queued: { start: 'starting', cancel: 'cancelled' },
  starting: { run: 'running', ...settle },
  running: { ...settle },
  retrying: { enqueue: 'queued', cancel: 'cancelled' },
  succeeded: { clean: 'cleaning' },
  failed: { clean: 'cleaning' },
  timed_out: { clean: 'cleaning' },
  cancelled: { clean: 'cleaning' },
  cleaning: { archive: 'archived' },
  archived: {},
};

/** Thrown when an event is applied to a task in a state that does not accept it. */
export class IllegalTransitionError extends SmoothtaskError {
  /** The state the task was in. */
  readonly from: TaskState;
  /** The event that was refused. */
  readonly event: TaskEvent;
  /** The task id, when known. */
  readonly taskId: string | undefined;
  /** Creates the error. */
  constructor(from: TaskState, event: TaskEvent, taskId?: string) {
    super(
      'ERR_TASK_ILLEGAL_TRANSITION',
      `Illegal task transition${taskId ? ` for ${taskId}` : ''}: event '${event}' in state '${from}' (allowed: ${
        Object.keys(TRANSITIONS[from]).join(', ') || 'none'
      })`,
    );
    this.from = from;
    this.event = event;
    this.taskId = taskId;
  }
}

/** The state `event` leads to from `from`, or `undefined` if the pair is illegal. */
export function tryNextState(from: TaskState, event: TaskEvent): TaskState | undefined {
  return TRANSITIONS[from]?.[event];
}

/** The state `event` leads to from `from`; throws {@link IllegalTransitionError} if illegal. */
export function nextState(from: TaskState, event: TaskEvent, taskId?: string): TaskState {
  const to = tryNextState(from, event);
  if (to === undefined) throw new IllegalTransitionError(from, event, taskId);
  return to;
}

/** Whether `state` is an outcome state (the work is over). */
export function isOutcome(state: TaskState): state is OutcomeState {
  return (OUTCOME_STATES as readonly string[]).includes(state);
}

/** Whether no event can ever move a task out of `state` except cleanup (`clean`/`archive`). */
export function isFinished(state: TaskState): boolean {
  return isOutcome(state) || state === 'cleaning' || state === 'archived';
}
