/**
 * The persistence seam of the queue. `smoothtask/store` provides the crash-safe JSON
 * implementation (`StoreTaskPersistence`); a distributed engine can provide another.
 * @module
 */
import type { TaskRecord } from './types.js';

/**
 * Where the queue records tasks. `save()` is awaited on every transition before any listener
 * hears of it, so what listeners see has been recorded.
 */
export interface TaskPersistence {
  /** Durably records the task (replacing the previous version). */
  save(task: TaskRecord): Promise<void>;
  /** Loads every recorded task (used once, when the queue starts). Unreadable records are reported, not fatal. */
  loadAll(): Promise<TaskRecord[]>;
  /** Forgets a task (used by `queue.forget(id)`). */
  remove?(id: string): Promise<void>;
}
