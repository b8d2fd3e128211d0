/**
 * The durable local record of one `TaskQueue`. `smoothtask/store` provides the crash-safe
 * JSON implementation (`StoreTaskPersistence`). It is not the seam of a distributed queue: it
 * has no claim operation, and a queue that starts requeues (or fails) every task recorded
 * `starting`/`running`, taking it for its own interrupted attempt. A distributed queue
 * implements `TaskQueueLike` instead.
 * @module
 */
import type { TaskRecord } from './types.js';

/**
 * Where one queue records its tasks, to find them again when it starts. `save()` is awaited on
 * every transition before any listener hears of it, so what listeners see has been recorded.
 * One queue per record: it is not shared between queues (see {@link TaskQueueLike} for a queue
 * over several nodes).
 */
export interface TaskPersistence {
  /** Durably records the task (replacing the previous version). */
  save(task: TaskRecord): Promise<void>;
  /** Loads every recorded task (used once, when the queue starts). Unreadable records are reported, not fatal. */
  loadAll(): Promise<TaskRecord[]>;
  /** Forgets a task (used by `queue.forget(id)`). */
  remove?(id: string): Promise<void>;
  /** Called by `queue.close()` once its last transition is recorded (e.g. to flush and close files). */
  close?(): Promise<void>;
}
