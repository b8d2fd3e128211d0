/**
 * The queue interface: what the agent, the dashboard and user code need of a task queue,
 * whichever queue it is. The in-process {@link TaskQueue} implements it, and so does the
 * producer of the fleet (`FleetProducer` of `smoothtask/fleet`, a distributed queue on BullMQ).
 * @module
 */
import type { SubmitOptions } from './options.js';
import type { TaskState } from './states.js';
import type { LogEvent, TaskRecord, TransitionEvent } from './types.js';

/** What `submit()` returns: the task's id, a promise of its outcome, and a way to cancel it. */
export interface TaskHandle {
  /** The task id (the one given in the submit options, or a random UUID). */
  readonly id: string;
  /**
   * Settles when the task reached an outcome and its triggers ran: resolves with the final
   * record, whatever the outcome (read its `state`: `succeeded`, `failed`, `timed_out` or
   * `cancelled`), and **never rejects**. After the queue's `close()` it resolves with the
   * record as it was left (not necessarily an outcome).
   */
  readonly done: Promise<TaskRecord>;
  /** Same as `queue.cancel(id, reason)`. */
  cancel(reason?: string): Promise<boolean>;
}

/** Which tasks `list()` returns. */
export interface TaskListFilter {
  /** Only tasks in this state, or in any of these states. */
  state?: TaskState | TaskState[];
  /** Only tasks that carry every one of these labels with the same value. */
  labels?: Record<string, string>;
}

/**
 * What the agent, the dashboard and user code need of a task queue: the in-process TaskQueue
 * and the fleet's producer both implement it. Methods may answer at once or with a promise:
 * always `await` them.
 *
 * @example
 * ```ts
 * async function runOne(queue: TaskQueueLike): Promise<TaskRecord> {
 *   const h = await queue.submit({ kind: 'process', spec: { command: 'make' } });
 *   return h.done; // never rejects: read rec.state
 * }
 * ```
 */
export interface TaskQueueLike {
  /**
   * Submits a task and returns its handle; the task runs in the background. The options and
   * the spec are validated first: invalid ones throw (or reject with) a `ConfigError`, an
   * unknown kind {@link UnknownTaskKindError}, a closed queue {@link QueueClosedError}.
   * `TaskQueue` returns the handle at once; a queue that records the task elsewhere may
   * return a promise of it.
   */
  submit(options: SubmitOptions): TaskHandle | Promise<TaskHandle>;
  /** A frozen snapshot of the task, or `undefined` when the queue does not know the id. */
  get(id: string): Readonly<TaskRecord> | undefined | Promise<Readonly<TaskRecord> | undefined>;
  /**
   * Snapshots of the tasks the queue knows, optionally filtered by state or labels (every
   * condition given must hold). `TaskQueue` lists the tasks in memory (at most its
   * `keepFinished` finished ones).
   */
  list(filter?: TaskListFilter): Readonly<TaskRecord>[] | Promise<Readonly<TaskRecord>[]>;
  /**
   * Cancels a task. A waiting task is cancelled at once; a running one has its signal aborted
   * and is recorded `cancelled` once its executor has stopped. Resolves `true` when the
   * cancellation was taken, `false` if the task had already finished; rejects with
   * {@link TaskNotFoundError} for an unknown id.
   */
  cancel(id: string, reason?: string): Promise<boolean>;
  /**
   * Listens to the transitions of every task, each heard once it is recorded. Returns the
   * unsubscribe function. A listener that throws does not stop the queue.
   */
  onTransition(fn: (e: TransitionEvent) => void): () => void;
  /**
   * Listens to the log chunks of every task as they are written. Returns the unsubscribe
   * function. A listener that throws does not stop the queue.
   */
  onLog(fn: (e: LogEvent) => void): () => void;
  /**
   * Stops the queue: no new submissions; resolves once its running attempts have settled
   * (what becomes of them is the queue's policy: `TaskQueue` requeues or cancels them, see
   * its `onClose` option). Idempotent.
   */
  close(): Promise<void>;
}
