/**
 * The options of the queue and of a submitted task (zod schemas, validated at the call), and
 * the counts of `stats()`. Public through `smoothtask/task`.
 * @module
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import type { TaskPersistence } from './persistence.js';
import { RetryPolicySchema, TaskIdSchema, type LeaseProvider, type TaskTrigger } from './types.js';

/** Options of {@link TaskQueue}. */
export const TaskQueueOptionsSchema = z.strictObject({
  /** Attempts running at once. */
  concurrency: z.number().int().min(1).max(10_000).default(4),
  /**
   * Root of per-task workspaces (`<dataDir>/<taskId>/`). Default: a new temp directory. A
   * relative path is resolved against the working directory when the queue is created
   * (workspaces are handed to other processes and to the Docker engine as absolute paths).
   */
  dataDir: z
    .string()
    .min(1)
    .transform((p) => resolve(p))
    .optional(),
  /** Timeout applied to tasks that set none. */
  defaultTimeoutMs: z.number().positive().optional(),
  /** Default grace between SIGTERM and SIGKILL (executors receive it as `ctx.killAfterMs`). */
  killAfterMs: z.number().min(0).default(5000),
  /** What to do with tasks found `starting`/`running` in the store at start: run them again or fail them. */
  recovery: z.literal(['requeue', 'fail']).default('requeue'),
  /** What `close()` does with running tasks: `requeue` (needs persistence) or `cancel`. Default: requeue with persistence, else cancel. */
  onClose: z.literal(['requeue', 'cancel']).optional(),
  /** Run `clean` + `archive` (executor cleanup) right after the triggers of every finished task. */
  archiveOnFinish: z.boolean().default(false),
  /** Finished tasks kept in memory (oldest forgotten first; the store keeps them all). */
  keepFinished: z.number().int().min(0).default(10_000),
  /** Durable task records; see `StoreTaskPersistence` in `smoothtask/store`. */
  persistence: z.custom<TaskPersistence>((v) => v != null && typeof (v as TaskPersistence).save === 'function').optional(),
  /** Lease provider for `resources` and `ctx.leases` (e.g. `ResourceLeaseManager` from `smoothtask/process`). */
  leases: z.custom<LeaseProvider>((v) => v != null && typeof (v as LeaseProvider).tryAcquire === 'function').optional(),
  /** Triggers applied to every task. */
  triggers: z.array(z.custom<TaskTrigger>((v) => v != null && typeof (v as TaskTrigger).run === 'function')).default([]),
  /**
   * Most bytes of stdout+stderr kept per task (default 64 MiB). Past it output is dropped: one
   * marker line goes to the logs and `task.logDroppedBytes` counts what was lost.
   */
  maxLogBytes: z.number().int().min(0).default(64 * 1024 * 1024),
});
/** Options of {@link TaskQueue}. */
export type TaskQueueOptions = z.input<typeof TaskQueueOptionsSchema>;

/** Options of {@link TaskQueue.submit}. */
export const SubmitOptionsSchema = z.strictObject({
  /** Executor kind (registered with `registerExecutor`). */
  kind: z.string().min(1),
  /** Executor-specific spec (JSON); validated by the executor's `specSchema`. */
  spec: z.unknown().optional(),
  /** Task id; default a random UUID. */
  id: TaskIdSchema.optional(),
  /** Higher runs first; FIFO within a priority. */
  priority: z.number().default(0),
  /** Free-form labels (persisted, sent with webhooks). */
  labels: z.record(z.string(), z.string()).default({}),
  /** Per-attempt time limit. */
  timeoutMs: z.number().positive().optional(),
  /** Grace between SIGTERM and SIGKILL for this task. */
  killAfterMs: z.number().min(0).optional(),
  /** Opt into retries: `true` for defaults, or a policy. */
  retry: z.union([z.literal(true), RetryPolicySchema]).optional(),
  /** Resources leased before the task starts; it waits in the queue until they are free. */
  resources: z
    .array(
      z.object({
        /** Resource name. */
        resource: z.string().min(1),
        /** Ids wanted (discrete resources). */
        count: z.number().int().positive().optional(),
        /** Amount wanted (quantity resources). */
        amount: z.number().positive().optional(),
      }),
    )
    .default([]),
  /** Triggers for this task only (not persisted: a recovered task runs only the queue's triggers). */
  triggers: z.array(z.custom<TaskTrigger>((v) => v != null && typeof (v as TaskTrigger).run === 'function')).default([]),
  /** Cancels the task when aborted. */
  signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal).optional(),
  /**
   * Keep the task `created` (recorded, not queued) until {@link TaskQueue.release}: for work
   * that waits for something first, e.g. its input files. Survives restarts; cancellable.
   */
  hold: z.boolean().default(false),
  /**
   * What the queue's persistence records of this task: `'transitions'` (default) every
   * transition, so a restart recovers it (requeued or failed by the `recovery` policy); or
   * `'outcome'` only its end (from its outcome on), for a task that something else reruns
   * after a crash, such as a fleet job that BullMQ hands to another node: a restart of this
   * process must not run it a second time. Not with `hold`.
   */
  persist: z.literal(['transitions', 'outcome']).default('transitions'),
});
/** Options of {@link TaskQueue.submit}. */
export type SubmitOptions = z.input<typeof SubmitOptionsSchema>;

/** Counts returned by {@link TaskQueue.stats}. */
export interface QueueStats {
  /** Attempts running. */
  active: number;
  /** Tasks waiting for a slot. */
  pending: number;
  /** Tasks waiting to retry. */
  retrying: number;
  /** Tasks in memory. */
  total: number;
}
