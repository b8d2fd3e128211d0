/**
 * The task record and the executor seam.
 * @module
 */
import { z } from 'zod';
import { TASK_EVENTS, TASK_STATES, OUTCOME_STATES } from './states.js';
import type { OutcomeState, TaskState, TaskEvent } from './states.js';
import { isSafeComponent } from '../workspace/policy.js';
import { JsonValueSchema, type JsonValue } from '../util/json.js';

/**
 * A task id: it names the task's workspace folder (`<dataDir>/<id>`), its store document and
 * its containers, so it must be one safe path component. 1–200 characters, letters, digits,
 * `.`, `_` and `-`, starting with a letter or digit: `.`, `..`, `...`, `.hidden`, `-rf`, empty
 * ids, `/`, NUL and over-long ids are refused (a `ConfigError` at submit).
 * @internal
 */
export const TaskIdSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a letter or digit, then letters, digits, . _ - only')
  .refine(isSafeComponent, 'must be one safe path component');


/** One entry of a task's history: `{ from, to, event, at, reason }`. */
export interface TransitionRecord {
  /** State before. */
  from: TaskState;
  /** State after. */
  to: TaskState;
  /** Event applied. */
  event: TaskEvent;
  /** Epoch milliseconds. */
  at: number;
  /** Why, when known. */
  reason?: string | undefined;
  /** Attempt number at the time. */
  attempt?: number | undefined;
}

/** Zod schema of {@link TransitionRecord}. */
export const TransitionRecordSchema: z.ZodType<TransitionRecord> = z.object({
  from: z.enum(TASK_STATES),
  to: z.enum(TASK_STATES),
  event: z.enum(TASK_EVENTS),
  at: z.number(),
  reason: z.string().optional(),
  attempt: z.number().int().optional(),
});

/** Retry policy of a task that opts into retries (all fields have defaults). */
export interface RetryPolicy {
  /** Total attempts including the first (default 3; 1 = no retry). */
  maxAttempts?: number;
  /** Base delay of the exponential backoff (default 500 ms). */
  baseMs?: number;
  /** Cap of the backoff delay (default 60 s). */
  maxMs?: number;
  /** Growth factor per attempt (default 2). */
  factor?: number;
  /** Which endings are retried (default both). */
  on?: Array<'failed' | 'timed_out'>;
}

/** Zod schema of {@link RetryPolicy}; parsing fills the defaults. */
export const RetryPolicySchema: z.ZodType<Required<RetryPolicy>, RetryPolicy> = z.object({
  maxAttempts: z.number().int().min(1).max(1000).default(3),
  baseMs: z.number().min(0).default(500),
  maxMs: z.number().min(0).default(60_000),
  factor: z.number().min(1).default(2),
  on: z.array(z.enum(['failed', 'timed_out'])).default(['failed', 'timed_out']),
});

/** An error as recorded on a task. */
export interface RecordedError {
  /** Stable code when the error had one (e.g. `ERR_TASK_TIMEOUT`). */
  code?: string | undefined;
  /** Message. */
  message: string;
}

/** Record of one trigger run, kept on the task (errors included, never lost). */
export interface TriggerRecord {
  /** Trigger name (`cleanup` for the executor's cleanup). */
  name: string;
  /** The outcome that fired it. */
  on: OutcomeState;
  /** Epoch ms when it started. */
  at: number;
  /** Whether it completed without error. */
  ok: boolean;
  /** How long it ran. */
  durationMs: number;
  /** Its error, if any. */
  error?: RecordedError | undefined;
}

const RecordedErrorSchema = z.object({ code: z.string().optional(), message: z.string() });

/** Zod schema of {@link TriggerRecord}. */
export const TriggerRecordSchema: z.ZodType<TriggerRecord> = z.object({
  name: z.string(),
  on: z.enum(OUTCOME_STATES),
  at: z.number(),
  ok: z.boolean(),
  durationMs: z.number(),
  error: RecordedErrorSchema.optional(),
});

/** A lease held (or once held) by a task. */
export interface LeaseRecord {
  /** Lease id. */
  id: string;
  /** Resource name. */
  resource: string;
  /** Ids granted (discrete resources). */
  ids?: string[] | undefined;
  /** Amount granted. */
  amount?: number | undefined;
  /** Epoch ms when it was returned. */
  releasedAt?: number | undefined;
}

/** Zod schema of {@link LeaseRecord}. */
export const LeaseRecordSchema: z.ZodType<LeaseRecord> = z.object({
  id: z.string(),
  resource: z.string(),
  ids: z.array(z.string()).optional(),
  amount: z.number().optional(),
  releasedAt: z.number().optional(),
});

/** Timings of a task (epoch ms). */
export interface TaskTimings {
  /** Submitted. */
  createdAt: number;
  /** Last entered `queued`. */
  queuedAt?: number | undefined;
  /** Last attempt left the queue (`starting`). */
  startedAt?: number | undefined;
  /** Last attempt's executor started (`running`). */
  runningAt?: number | undefined;
  /** Reached its outcome. */
  endedAt?: number | undefined;
  /** Wall time of the last attempt, start to settle. */
  durationMs?: number | undefined;
}

/** The task record: everything known about a task, persisted on every transition. */
export interface TaskRecord {
  /** Unique id. */
  id: string;
  /** Executor kind. */
  kind: string;
  /** Executor spec (JSON). */
  spec: JsonValue;
  /** Current state. */
  state: TaskState;
  /** The outcome reached (kept through `cleaning`/`archived`). */
  outcome?: OutcomeState | undefined;
  /** Higher runs first. */
  priority: number;
  /** Free-form labels. */
  labels: Record<string, string>;
  /** 1-based number of the current or last attempt (0 before the first). */
  attempt: number;
  /** Retry policy, when the task opted in. */
  retry?: Required<RetryPolicy> | undefined;
  /** Per-attempt time limit. */
  timeoutMs?: number | undefined;
  /** Grace between the polite stop and SIGKILL. */
  killAfterMs: number;
  /** Resources leased before each attempt. */
  resources: LeaseRequest[];
  /** Every transition, in order. */
  history: TransitionRecord[];
  /** Exit code of the last attempt. */
  exitCode: number | null;
  /** Signal that ended the last attempt. */
  signal: string | null;
  /** Error of the last attempt. */
  error?: RecordedError | undefined;
  /** Timings. */
  timings: TaskTimings;
  /** Per-task working directory. */
  workspace?: string | undefined;
  /** Combined stdout+stderr log, in arrival order. */
  logPath?: string | undefined;
  /** Per-stream log files. */
  logs?: Record<LogStream, string> | undefined;
  /** Bytes of stdout/stderr dropped because the task reached the queue's `maxLogBytes` (absent when none). */
  logDroppedBytes?: number | undefined;
  /** Submitted with `hold`: stays `created` until `queue.release(id)` (kept across restarts). */
  held?: boolean | undefined;
  /** Output files (absolute paths). */
  outputs: string[];
  /** Artifacts built from the outputs (absolute paths). */
  artifacts: string[];
  /** Executor-defined JSON result. */
  result?: JsonValue | undefined;
  /** Executor facts (`pid`, `containerId`, ...). */
  info: Record<string, JsonValue>;
  /** Leases held by attempts. */
  leases: LeaseRecord[];
  /** Trigger runs. */
  triggers: TriggerRecord[];
}

/** Zod schema of {@link TaskRecord} (what the store validates). */
export const TaskRecordSchema: z.ZodType<TaskRecord> = z.object({
  id: z.string().min(1),
  kind: z.string().min(1),
  spec: JsonValueSchema,
  state: z.enum(TASK_STATES),
  /** The outcome reached (kept through `cleaning`/`archived`). */
  outcome: z.enum(OUTCOME_STATES).optional(),
  priority: z.number(),
  labels: z.record(z.string(), z.string()),
  /** 1-based attempt number of the current or last run. */
  attempt: z.number().int().min(0),
  retry: (RetryPolicySchema as z.ZodType<Required<RetryPolicy>>).optional(),
  timeoutMs: z.number().optional(),
  killAfterMs: z.number(),
  resources: z.array(z.object({ resource: z.string(), count: z.number().optional(), amount: z.number().optional() })).default([]),
  history: z.array(TransitionRecordSchema),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  error: RecordedErrorSchema.optional(),
  timings: z.object({
    createdAt: z.number(),
    queuedAt: z.number().optional(),
    startedAt: z.number().optional(),
    runningAt: z.number().optional(),
    endedAt: z.number().optional(),
    /** Wall time of the last attempt, start to settle. */
    durationMs: z.number().optional(),
  }),
  workspace: z.string().optional(),
  /** Combined stdout+stderr log, in arrival order. */
  logPath: z.string().optional(),
  logs: z.object({ stdout: z.string(), stderr: z.string(), system: z.string() }).optional(),
  logDroppedBytes: z.number().optional(),
  /** Submitted with `hold`: stays `created` until released. */
  held: z.boolean().optional(),
  outputs: z.array(z.string()),
  artifacts: z.array(z.string()),
  result: JsonValueSchema.optional(),
  info: z.record(z.string(), JsonValueSchema),
  leases: z.array(LeaseRecordSchema),
  triggers: z.array(TriggerRecordSchema),
});

/** What an executor's `run()` resolves with. */
export interface TaskResult {
  /** Process-style exit code; non-zero (or `null` with a signal) means failure. Omitted = success. */
  exitCode?: number | null;
  /** Signal name that ended the work, if any (e.g. `SIGKILL`). */
  signal?: string | null;
  /** Files the task produced (absolute paths), e.g. under its workspace. */
  outputs?: string[];
  /** Archives or other artifacts built from the outputs (absolute paths). */
  artifacts?: string[];
  /** Executor-defined JSON result, persisted on the task. */
  result?: JsonValue;
  /** A failure message; when set the attempt fails even with exit code 0. */
  error?: string;
}

/** Stream names accepted by {@link TaskContext.log}. */
export type LogStream = 'stdout' | 'stderr' | 'system';

/** A lease request made by a task. */
export interface LeaseRequest {
  /** Resource name registered with the lease manager (e.g. `gpu`, `port`, `memory`). */
  resource: string;
  /** For discrete resources: how many ids. Default 1. */
  count?: number;
  /** For discrete resources: exactly these ids. */
  ids?: string[];
  /** For quantity resources (e.g. memory bytes): how much. */
  amount?: number;
}

/** A granted lease. */
export interface Lease {
  /** Unique lease id. */
  readonly id: string;
  /** Resource name. */
  readonly resource: string;
  /** Who holds it (a task id for task leases). */
  readonly holder: string;
  /** Ids granted (discrete resources). */
  readonly ids: readonly string[];
  /** Amount granted (quantity resources). */
  readonly amount: number;
}

/**
 * What the queue needs from a lease manager. `ResourceLeaseManager` in `smoothtask/process`
 * implements it.
 */
export interface LeaseProvider {
  /** Grants the lease now or returns `undefined` (never partially). */
  tryAcquire(holder: string, request: LeaseRequest): Lease | undefined;
  /** Waits until the lease can be granted. */
  acquire(holder: string, request: LeaseRequest, options?: { signal?: AbortSignal; timeoutMs?: number }): Promise<Lease>;
  /** Returns a lease; idempotent. */
  release(leaseId: string): void;
  /** Subscribes to "something was released" (the queue re-tries waiting tasks). Returns an unsubscribe. */
  onRelease(fn: () => void): () => void;
}

/** Lease helpers handed to an executor; every lease is returned when the task's attempt ends. */
export interface TaskLeases {
  /** Leases granted to this attempt so far (including those declared in the task's `resources`). */
  readonly held: readonly Lease[];
  /** Grants a lease now or returns `undefined`. */
  tryAcquire(request: LeaseRequest): Lease | undefined;
  /** Waits for a lease (aborted with the task). */
  acquire(request: LeaseRequest, options?: { timeoutMs?: number }): Promise<Lease>;
  /** Returns a lease early (otherwise it is returned when the attempt ends). */
  release(lease: Lease): void;
}

/**
 * What an executor gets for one attempt of one task.
 *
 * The contract:
 * - `signal` aborts on cancel (`reason` is a `TaskCancelledError`), on timeout (a
 *   `TaskTimeoutError`) and when the queue closes (a `QueueClosedError`). On abort the executor
 *   must stop the work (for processes: SIGTERM to the group, then SIGKILL after `killAfterMs`)
 *   and only then settle `run()`. The queue records `timed_out`/`cancelled` after `run()` has
 *   settled and frees the slot then: the slot is held as long as the work exists.
 * - `log()` appends to the task's log files (`stdout.log`, `stderr.log`, `system.log` and the
 *   combined `output.log` in the workspace) and feeds the queue's log listeners live.
 * - `workspace` is a directory created for this task (kept across attempts); put outputs there.
 */
export interface TaskContext<Spec = JsonValue> {
  /** A read-only snapshot of the task at the start of this attempt. */
  readonly task: Readonly<TaskRecord>;
  /** The validated spec (as the executor's `specSchema` parsed it). */
  readonly spec: Spec;
  /** 1-based attempt number. */
  readonly attempt: number;
  /** Aborted on cancel, timeout or queue close, with a typed reason. */
  readonly signal: AbortSignal;
  /** Grace between the polite stop (SIGTERM) and the forced one (SIGKILL), in ms. */
  readonly killAfterMs: number;
  /** Per-task working directory (exists). */
  readonly workspace: string;
  /**
   * Appends a chunk to the task's logs and publishes it to log listeners. Returns a promise
   * when the log files are behind (their write buffers are full): a producer that can wait
   * (a child's pipe, a container's log stream) should pause until it resolves, so output is
   * slowed down to the disk's pace instead of piling up in memory. Output past the queue's
   * `maxLogBytes` is dropped (counted in `task.logDroppedBytes`).
   */
  log(stream: LogStream, chunk: string | Uint8Array): void | Promise<void>;
  /** Records executor facts on the task (`task.info`, e.g. `{ pid }` or `{ containerId }`); visible to `get()`/`list()` at once, persisted with the attempt's ending. */
  setInfo(patch: Record<string, JsonValue>): void;
  /** Lease helpers; leases are returned when the attempt ends, whatever the ending. */
  readonly leases: TaskLeases;
}

/**
 * The executor seam: one executor per task kind, registered with
 * `queue.registerExecutor(kind, executor)`.
 *
 * @example
 * ```ts
 * queue.registerExecutor('sleep', {
 *   specSchema: z.object({ ms: z.number() }),
 *   async run(ctx) {
 *     await setTimeout(ctx.spec.ms, undefined, { signal: ctx.signal }).catch(() => {});
 *     return { exitCode: ctx.signal.aborted ? null : 0 };
 *   },
 * });
 * ```
 */
export interface TaskExecutor<Spec = JsonValue> {
  /** Validates (and may default) the spec at submit time; invalid specs throw `ConfigError`. */
  readonly specSchema?: z.ZodType<Spec>;
  /**
   * Runs one attempt. Resolve with the result (non-zero `exitCode` or `error` = failure) or
   * reject (failure). Must settle only once the work is really gone, including after abort.
   */
  run(ctx: TaskContext<Spec>): Promise<TaskResult>;
  /**
   * Optional cleanup, run while the task is `cleaning` (after `queue.archive(id)` or with
   * `archiveOnFinish`): remove containers, temp files, ... Errors are recorded on the task.
   */
  cleanup?(task: Readonly<TaskRecord>): Promise<void>;
}

/** A trigger: runs after a task reaches an outcome. Its errors are recorded on the task. */
export interface TaskTrigger {
  /** Name recorded in `task.triggers`. */
  name: string;
  /** Outcomes that fire it: `success` (succeeded), `failure` (failed, e.g. non-zero exit), `timeout`, `cancel`. */
  on: Array<'success' | 'failure' | 'timeout' | 'cancel'>;
  /** The hook. A thrown error or rejection is recorded, never lost, and does not change the outcome. */
  run(task: Readonly<TaskRecord>, info: { outcome: OutcomeState; signal: AbortSignal }): unknown;
  /** Time limit for the hook (default 30 s). */
  timeoutMs?: number;
}

/** A transition as heard by listeners (after it was persisted). */
export interface TransitionEvent {
  /** The task after the transition (a frozen snapshot). */
  readonly task: Readonly<TaskRecord>;
  /** From state. */
  readonly from: TaskState;
  /** To state. */
  readonly to: TaskState;
  /** The event. */
  readonly event: TaskEvent;
  /** Epoch ms. */
  readonly at: number;
  /** Why, when known. */
  readonly reason: string | undefined;
}

/** A log chunk as heard by listeners. */
export interface LogEvent {
  /** Task id. */
  readonly taskId: string;
  /** Stream. */
  readonly stream: LogStream;
  /** The chunk, as text (UTF-8). */
  readonly chunk: string;
  /** Epoch ms. */
  readonly at: number;
}
