/**
 * Errors of the task module (also used as `AbortSignal` reasons, so an executor can tell why
 * it was stopped).
 * @module
 */
import { SmoothtaskError } from '../errors/index.js';

/** Abort reason when a task ran past its `timeoutMs`. */
export class TaskTimeoutError extends SmoothtaskError {
  /** The task. */
  readonly taskId: string;
  /** The limit that was exceeded. */
  readonly timeoutMs: number;
  /** Creates the error. */
  constructor(taskId: string, timeoutMs: number) {
    super('ERR_TASK_TIMEOUT', `Task ${taskId} timed out after ${timeoutMs} ms`);
    this.taskId = taskId;
    this.timeoutMs = timeoutMs;
  }
}

/** Abort reason when a task was cancelled (`queue.cancel(id)` or the submit `signal`). */
export class TaskCancelledError extends SmoothtaskError {
  /** The task. */
  readonly taskId: string;
  /** Creates the error. */
  constructor(taskId: string, reason?: string) {
    super('ERR_TASK_CANCELLED', `Task ${taskId} cancelled${reason ? `: ${reason}` : ''}`);
    this.taskId = taskId;
  }
}

/** Abort reason for running tasks when the queue closes; also thrown by `submit()` after close. */
export class QueueClosedError extends SmoothtaskError {
  /** Creates the error. */
  constructor(message = 'The task queue is closed') {
    super('ERR_TASK_QUEUE_CLOSED', message);
  }
}

/** Thrown by `submit()` for a kind with no registered executor; recorded on recovered tasks of such a kind. */
export class UnknownTaskKindError extends SmoothtaskError {
  /** The kind. */
  readonly kind: string;
  /** Creates the error. */
  constructor(kind: string) {
    super('ERR_TASK_UNKNOWN_KIND', `No executor registered for task kind '${kind}'`);
    this.kind = kind;
  }
}

/** Thrown for an unknown task id. */
export class TaskNotFoundError extends SmoothtaskError {
  /** The id. */
  readonly taskId: string;
  /** Creates the error. */
  constructor(taskId: string) {
    super('ERR_TASK_NOT_FOUND', `No task with id '${taskId}'`);
    this.taskId = taskId;
  }
}

/** Thrown by `queue.release(id)` for a task that is not held (never was, already released, cancelled, or the queue closed). */
export class TaskNotHeldError extends SmoothtaskError {
  /** The id. */
  readonly taskId: string;
  /** The task's state. */
  readonly state: string;
  /** Creates the error. */
  constructor(taskId: string, state: string) {
    super('ERR_TASK_NOT_HELD', `Task '${taskId}' is not held (state ${state}): only a task submitted with hold can be released, once`);
    this.taskId = taskId;
    this.state = state;
  }
}

/** Recorded when a trigger ran past its time limit. */
export class TriggerTimeoutError extends SmoothtaskError {
  /** Creates the error. */
  constructor(name: string, ms: number) {
    super('ERR_TASK_TRIGGER_TIMEOUT', `Trigger '${name}' did not settle within ${ms} ms`);
  }
}

/** A task's log file could not be read (other than "not written yet"). */
export class TaskLogError extends SmoothtaskError {
  /** Creates the error. */
  constructor(message: string, cause: unknown) {
    super('ERR_TASK_LOG', message, { cause });
  }
}
