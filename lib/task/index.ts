/**
 * smoothtask/task: the task state machine, the executor seam, the queue interface
 * (`TaskQueueLike`) and the in-process queue (bounded concurrency, priorities, timeouts that
 * stop the work, cancellation, retries with backoff, triggers, listeners). No native addon
 * needed.
 * @module
 */
export {
  TASK_STATES,
  TASK_EVENTS,
  OUTCOME_STATES,
  ACTIVE_STATES,
  WAITING_STATES,
  TRANSITIONS,
  IllegalTransitionError,
  nextState,
  tryNextState,
  isOutcome,
  isFinished,
} from './states.js';
export type { TaskState, TaskEvent, OutcomeState } from './states.js';
export { JsonValueSchema } from '../util/json.js';
export type { JsonValue } from '../util/json.js';
export {
  TransitionRecordSchema,
  RetryPolicySchema,
  TriggerRecordSchema,
  LeaseRecordSchema,
  TaskRecordSchema,
} from './types.js';
export type {
  TransitionRecord,
  RetryPolicy,
  TriggerRecord,
  LeaseRecord,
  TaskRecord,
  TaskTimings,
  RecordedError,
  TaskResult,
  LogStream,
  LeaseRequest,
  Lease,
  LeaseProvider,
  TaskLeases,
  TaskContext,
  TaskExecutor,
  TaskTrigger,
  TransitionEvent,
  LogEvent,
} from './types.js';
export {
  TaskTimeoutError,
  TaskCancelledError,
  QueueClosedError,
  UnknownTaskKindError,
  TaskNotFoundError,
  TaskNotHeldError,
  TriggerTimeoutError,
  TaskLogError,
} from './errors.js';
export { backoffDelay } from '../util/backoff.js';
export type { BackoffOptions } from '../util/backoff.js';
export type { TaskPersistence } from './persistence.js';
export { TASK_CHANNELS } from './diagnostics.js';
export { TaskQueue } from './queue.js';
export { TaskQueueOptionsSchema, SubmitOptionsSchema } from './options.js';
export type { TaskQueueOptions, SubmitOptions, QueueStats } from './options.js';
export type { TaskQueueLike, TaskHandle, TaskListFilter } from './queue-like.js';
