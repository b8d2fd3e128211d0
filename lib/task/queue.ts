/**
 * The in-process task queue: non-blocking submit, bounded concurrency, priorities, timeouts
 * that stop the work, cancellation, retries with backoff, triggers, listeners.
 * @module
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { z } from 'zod';
import { ConfigError } from '../errors/index.js';
import { validate } from '../errors/validate.js';
import { JsonValueSchema, type JsonValue } from '../util/json.js';
import { errorChannel, logChannel, transitionChannel } from './diagnostics.js';
import {
  QueueClosedError,
  TaskCancelledError,
  TaskNotFoundError,
  TaskNotHeldError,
  TaskTimeoutError,
  UnknownTaskKindError,
} from './errors.js';
import { attemptLeases, leaseRecord, releaseLeases, tryLeaseAll } from './leases.js';
import { followLogFiles } from './log-follow.js';
import { LogSink } from './log-sink.js';
import { decideOutcome, errInfo, retryDelay } from './outcome.js';
import { SubmitOptionsSchema, TaskQueueOptionsSchema, type QueueStats, type SubmitOptions, type TaskQueueOptions } from './options.js';
import { PendingSet } from './pending-set.js';
import type { TaskHandle, TaskListFilter, TaskQueueLike } from './queue-like.js';
import { recoveryOrder, recoveryStep } from './recovery.js';
import { applyTransition, deepFreeze, newTaskRecord } from './record.js';
import { isFinished, isOutcome, type OutcomeState, type TaskEvent } from './states.js';
import { TaskTelemetry } from './telemetry.js';
import { runCleanup, runTriggers } from './triggers.js';
import { context } from '@opentelemetry/api';
import {
  type Lease,
  type LogEvent,
  type LogStream,
  type TaskContext,
  type TaskExecutor,
  type TaskRecord,
  type TaskResult,
  type TaskTrigger,
  type TransitionEvent,
} from './types.js';

type Phase = 'new' | 'held' | 'pending' | 'active' | 'retry-wait' | 'finished' | 'closed';

interface Entry {
  rec: TaskRecord;
  seq: number;
  phase: Phase;
  triggers: TaskTrigger[];
  controller?: AbortController;
  retryTimer?: NodeJS.Timeout;
  cancelReason?: string;
  done: Promise<TaskRecord>;
  resolve: (r: TaskRecord) => void;
  chain: Promise<unknown>;
  preLeases?: Lease[];
  /** The 'enqueue' transition is recorded: the entry may be dispatched. */
  enqueued: boolean;
  detachSignal?: () => void;
  /** `setInfo` of the running attempt: shown by get()/list() at once, persisted with the attempt's ending. */
  liveInfo?: Record<string, JsonValue>;
  /** `persist: 'outcome'`: nothing recorded before the task is finished. */
  outcomeOnly?: boolean;
  /** Transitions applied but not yet recorded nor heard: the next recorded one carries them (see `#transition`). */
  deferred?: TransitionEvent[];
}

/**
 * The in-process task queue.
 *
 * @example
 * ```ts
 * const queue = new TaskQueue({ concurrency: 8, persistence: await StoreTaskPersistence.open(store) });
 * queue.registerExecutor('process', new ProcessExecutor());
 * await queue.ready;
 * const h = queue.submit({ kind: 'process', spec: { command: 'make' }, timeoutMs: 60_000 });
 * const rec = await h.done; // rec.state: 'succeeded' | 'failed' | 'timed_out' | 'cancelled'
 * ```
 */
export class TaskQueue implements TaskQueueLike {
  /** Resolves once recorded tasks were loaded and recovered (at once without persistence). Rejects if loading failed. */
  readonly ready: Promise<void>;
  readonly #opts: z.output<typeof TaskQueueOptionsSchema>;
  readonly #executors = new Map<string, TaskExecutor<never>>();
  readonly #entries = new Map<string, Entry>();
  readonly #pending = new PendingSet<Entry>((e) => e.rec.priority);
  readonly #finishedOrder: string[] = [];
  readonly #transitionListeners = new Set<(e: TransitionEvent) => void>();
  readonly #telemetry = new TaskTelemetry();
  readonly #logListeners = new Set<(e: LogEvent) => void>();
  readonly #errorListeners = new Set<(e: { taskId?: string; error: unknown; where: string }) => void>();
  readonly #commitHooks = new Set<(e: TransitionEvent) => unknown>();
  #seq = 0;
  #active = 0;
  #isReady = false;
  #closed = false;
  #dataDir: Promise<string> | undefined;
  #unsubscribeLeases: (() => void) | undefined;
  #activeDone = new Set<Promise<unknown>>();

  /** Creates a queue; with `persistence`, recorded tasks are loaded and recovered in the background (see `ready`). */
  constructor(options: TaskQueueOptions = {}) {
    this.#opts = validate(TaskQueueOptionsSchema, options, 'task queue options');
    if (this.#opts.leases) this.#unsubscribeLeases = this.#opts.leases.onRelease(() => this.#pump());
    this.ready = this.#recover().then(
      () => {
        this.#isReady = true;
        this.#pump();
      },
      (e: unknown) => {
        this.#report(undefined, e, 'recovery');
        throw e;
      },
    );
    this.ready.catch(() => {});
  }

  /** Registers the executor of a task kind (replacing a previous one). */
  registerExecutor<Spec>(kind: string, executor: TaskExecutor<Spec>): this {
    if (!kind) throw new ConfigError('registerExecutor: kind must be a non-empty string');
    if (typeof executor?.run !== 'function') throw new ConfigError(`registerExecutor('${kind}'): executor.run must be a function`);
    this.#executors.set(kind, executor as TaskExecutor<never>);
    this.#pump();
    return this;
  }

  /** Whether an executor is registered for `kind`. */
  hasExecutor(kind: string): boolean {
    return this.#executors.has(kind);
  }

  /**
   * Submits a task and returns at once. The spec is validated now (throws `ConfigError` or
   * {@link UnknownTaskKindError}); everything else happens in the background.
   */
  submit(options: SubmitOptions): TaskHandle {
    if (this.#closed) throw new QueueClosedError();
    const o = validate(SubmitOptionsSchema, options, 'task submit options');
    const executor = this.#executors.get(o.kind);
    if (!executor) throw new UnknownTaskKindError(o.kind);
    let spec: JsonValue = null;
    const rawSpec = o.spec ?? null;
    if (executor.specSchema) validate(executor.specSchema, rawSpec, `'${o.kind}' task spec`);
    spec = validate(JsonValueSchema, rawSpec, `'${o.kind}' task spec (must be JSON)`);
    const id = o.id ?? randomUUID();
    if (this.#entries.has(id)) throw new ConfigError(`A task with id '${id}' already exists`);
    if (o.resources.length && !this.#opts.leases) throw new ConfigError('Task declares resources but the queue has no lease provider');
    if (o.hold && o.persist === 'outcome') throw new ConfigError("A held task must be recorded to survive a restart: hold cannot go with persist: 'outcome'", ["persist: 'outcome' with hold"]);
    const rec = newTaskRecord(o, id, spec, this.#opts);
    const e = this.#newEntry(rec, o.triggers);
    if (o.persist === 'outcome') e.outcomeOnly = true;
    this.#telemetry.begin(rec);
    if (o.signal) {
      const sig = o.signal;
      const onAbort = () => void this.cancel(id, 'submit signal aborted');
      if (sig.aborted) queueMicrotask(onAbort);
      else {
        sig.addEventListener('abort', onAbort, { once: true });
        e.detachSignal = () => sig.removeEventListener('abort', onAbort);
      }
    }
    if (o.hold) {
      e.phase = 'held';
      e.chain = (async () => {
        await this.#save(e, rec);
        await this.ready.catch(() => {});
        if (e.cancelReason !== undefined) return this.#finishWaiting(e, e.cancelReason);
      })().catch((err: unknown) => this.#report(id, err, 'submit'));
      return this.#handle(e);
    }
    // In the pending list at once (so submission order and priority hold), but not
    // dispatched before its 'enqueue' transition is recorded.
    this.#enqueue(e, false);
    e.chain = (async () => {
      // While recorded tasks are still being recovered, the new one is recorded as created at
      // once; after that its 'enqueue' transition records it (one write, its history holds both).
      if (!this.#isReady) {
        await this.#save(e, rec);
        await this.ready.catch(() => {});
      }
      if (e.cancelReason !== undefined) return this.#finishWaiting(e, e.cancelReason);
      await this.#transition(e, 'enqueue');
      if (e.cancelReason !== undefined) return this.#finishWaiting(e, e.cancelReason);
      e.enqueued = true;
      this.#pump();
    })().catch((err: unknown) => this.#report(id, err, 'submit'));
    return this.#handle(e);
  }

  /** A handle for an existing task. */
  handle(id: string): TaskHandle {
    const e = this.#entries.get(id);
    if (!e) throw new TaskNotFoundError(id);
    return this.#handle(e);
  }

  /** A frozen snapshot of a task, or `undefined`. */
  get(id: string): Readonly<TaskRecord> | undefined {
    return this.#entries.get(id)?.rec;
  }

  /** Snapshots of the tasks in memory, optionally filtered by state or labels. */
  list(filter: TaskListFilter = {}): Readonly<TaskRecord>[] {
    const states = filter.state === undefined ? undefined : Array.isArray(filter.state) ? filter.state : [filter.state];
    const out: TaskRecord[] = [];
    for (const { rec } of this.#entries.values()) {
      if (states && !states.includes(rec.state)) continue;
      if (filter.labels && !Object.entries(filter.labels).every(([k, v]) => rec.labels[k] === v)) continue;
      out.push(rec);
    }
    return out;
  }

  /** Counts: attempts running, tasks waiting for a slot, tasks waiting to retry. */
  stats(): QueueStats {
    let retrying = 0;
    for (const e of this.#entries.values()) if (e.phase === 'retry-wait') retrying++;
    return { active: this.#active, pending: this.#pending.size, retrying, total: this.#entries.size };
  }

  /** Waits for a task's outcome (see {@link TaskHandle.done}); before `ready`, also for recorded tasks. */
  wait(id: string): Promise<TaskRecord> {
    const e = this.#entries.get(id);
    // Before recovery finished, a recorded task may not be loaded yet.
    if (!e && !this.#isReady) return this.ready.then(() => this.wait(id));
    if (!e) return Promise.reject(new TaskNotFoundError(id));
    return e.done;
  }

  /**
   * Cancels a task. A waiting task is cancelled at once; a running one has its signal
   * aborted and is recorded `cancelled` once its executor has stopped. Resolves `false` if
   * the task had already finished.
   */
  async cancel(id: string, reason?: string): Promise<boolean> {
    const e = this.#entries.get(id);
    if (!e) throw new TaskNotFoundError(id);
    switch (e.phase) {
      case 'new':
        e.cancelReason ??= reason ?? 'cancelled';
        return true;
      case 'held':
        e.phase = 'new';
        e.cancelReason = reason ?? 'cancelled';
        e.chain = e.chain.then(() => this.#finishWaiting(e, e.cancelReason)).catch((err: unknown) => this.#report(id, err, 'cancel'));
        return true;
      case 'pending': {
        this.#pending.delete(e);
        e.phase = 'new';
        e.cancelReason = reason ?? 'cancelled';
        if (!e.enqueued) return true; // the submit chain sees cancelReason
        e.chain = e.chain.then(() => this.#finishWaiting(e, e.cancelReason)).catch((err: unknown) => this.#report(id, err, 'cancel'));
        return true;
      }
      case 'retry-wait':
        clearTimeout(e.retryTimer);
        e.phase = 'new';
        e.cancelReason = reason ?? 'cancelled';
        e.chain = e.chain.then(() => this.#finishWaiting(e, e.cancelReason)).catch((err: unknown) => this.#report(id, err, 'cancel'));
        return true;
      case 'active':
        if (e.controller && !e.controller.signal.aborted) e.controller.abort(new TaskCancelledError(id, reason));
        return true;
      default:
        return false;
    }
  }

  /**
   * Queues a task submitted with `hold` (`created --enqueue--> queued`, reason `released`);
   * it then runs in its turn like any other. Resolves once the transition is recorded.
   * @throws {@link TaskNotFoundError} for an unknown id; {@link TaskNotHeldError} when the task
   *   is not held (never was, already released, cancelled, or the queue is closed).
   */
  async release(id: string): Promise<Readonly<TaskRecord>> {
    const e = this.#entries.get(id);
    if (!e) throw new TaskNotFoundError(id);
    if (e.phase !== 'held' || this.#closed) throw new TaskNotHeldError(id, e.rec.state);
    // In the pending list at once (its place is now), dispatched once 'enqueue' is recorded.
    this.#enqueue(e, false);
    const run = e.chain.then(async () => {
      if (e.cancelReason !== undefined) return this.#finishWaiting(e, e.cancelReason);
      await this.#transition(e, 'enqueue', 'released', { held: false });
      if (e.cancelReason !== undefined) return this.#finishWaiting(e, e.cancelReason);
      e.enqueued = true;
      this.#pump();
    });
    e.chain = run.catch((err: unknown) => this.#report(id, err, 'release'));
    await run;
    return e.rec;
  }

  /**
   * Runs the executor's cleanup for a finished task: `clean` (state `cleaning`), cleanup,
   * then `archive` (state `archived`). Cleanup errors are recorded in `task.triggers` under
   * the name `cleanup`.
   */
  async archive(id: string): Promise<TaskRecord> {
    const e = this.#entries.get(id);
    if (!e) throw new TaskNotFoundError(id);
    await e.done;
    const run = e.chain.then(() => this.#archive(e));
    e.chain = run.catch(() => {});
    return run;
  }

  /**
   * Forgets a finished task: removes it from memory and from the persistence (its workspace
   * is left alone). Throws if the task is not finished; resolves `false` for an unknown id.
   */
  async forget(id: string): Promise<boolean> {
    const e = this.#entries.get(id);
    if (!e) return false;
    if (e.phase !== 'finished' && !isOutcome(e.rec.state)) throw new ConfigError(`Task ${id} is not finished (state ${e.rec.state}); cancel it first`);
    // Finished means the outcome is recorded; its triggers may still be running and save the
    // record once more: wait for that (and a pending archive) so nothing writes it back.
    await e.done;
    await e.chain;
    this.#entries.delete(id);
    const i = this.#finishedOrder.indexOf(id);
    if (i >= 0) this.#finishedOrder.splice(i, 1);
    await this.#opts.persistence?.remove?.(id);
    return true;
  }

  /**
   * Adds a hook awaited for each transition **before** it is persisted (write-ahead): for
   * durable side effects that must exist if the transition does, e.g. a held webhook that is
   * released once the transition is recorded (`forwardTaskEvents`). A hook's error is
   * reported to `onError` and does not stop the transition. Returns a remove function.
   */
  addCommitHook(fn: (e: TransitionEvent) => unknown): () => void {
    this.#commitHooks.add(fn);
    return () => this.#commitHooks.delete(fn);
  }

  /** Listens to persisted transitions. Returns an unsubscribe function. */
  onTransition(fn: (e: TransitionEvent) => void): () => void {
    this.#transitionListeners.add(fn);
    return () => this.#transitionListeners.delete(fn);
  }

  /** Listens to log chunks of every task. Returns an unsubscribe function. */
  onLog(fn: (e: LogEvent) => void): () => void {
    this.#logListeners.add(fn);
    return () => this.#logListeners.delete(fn);
  }

  /**
   * Streams a task's log files, of any size: yields each chosen stream's file from its first
   * byte in chunks (at most `chunkBytes`, default 256 KiB, read from an offset; nothing is
   * buffered whole), then follows what is appended until the task reaches an outcome (or
   * `signal` aborts), and ends after the last byte. A finished task yields its files and ends.
   * Bytes of each stream come in order (chunks are whole UTF-8 characters); the interleaving of
   * stdout and stderr is that of reading, the exact one is in `task.logPath`. The generator
   * pulls: a slow consumer slows the reading, not the task.
   */
  async *followLog(
    id: string,
    options: { streams?: LogStream[]; signal?: AbortSignal; chunkBytes?: number } = {},
  ): AsyncGenerator<LogEvent> {
    const e = this.#entries.get(id);
    if (!e) throw new TaskNotFoundError(id);
    yield* followLogFiles(
      {
        id,
        current: () => this.#entries.get(id)?.rec ?? e.rec,
        done: e.done,
        finished: () => e.phase === 'finished' || e.phase === 'closed',
        subscribe: (poke) => {
          const offLog = this.onLog((ev) => {
            if (ev.taskId === id) poke();
          });
          const offTr = this.onTransition((ev) => {
            if (ev.task.id === id) poke();
          });
          return () => {
            offLog();
            offTr();
          };
        },
      },
      options,
    );
  }

  /** Listens to errors that have no caller (persistence failures, listener exceptions). */
  onError(fn: (e: { taskId?: string; error: unknown; where: string }) => void): () => void {
    this.#errorListeners.add(fn);
    return () => this.#errorListeners.delete(fn);
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Stops the queue: no new submissions, waiting tasks stay recorded as they are, pending
   * retries are dropped (left `retrying` in the store), running attempts are aborted with
   * {@link QueueClosedError} and recorded `queued` again (policy `requeue`) or `cancelled`.
   * Resolves when every attempt has settled. Idempotent.
   */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#unsubscribeLeases?.();
      for (const e of this.#entries.values()) {
        if (e.phase === 'retry-wait') {
          clearTimeout(e.retryTimer);
          e.phase = 'closed';
          e.resolve(e.rec);
        } else if (e.phase === 'pending' || e.phase === 'held') {
          e.phase = 'closed';
          e.resolve(e.rec);
        } else if (e.phase === 'active') {
          e.controller?.abort(new QueueClosedError('The task queue closed while the task was running'));
        }
        e.detachSignal?.();
      }
      this.#pending.clear();
    }
    await Promise.allSettled([...this.#activeDone]);
    await Promise.allSettled([...this.#entries.values()].map((e) => e.chain));
    await this.#opts.persistence?.close?.().catch((err: unknown) => this.#report(undefined, err, 'persistence close'));
    this.#telemetry.close();
  }

  /** Same as `close()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---------------------------------------------------------------- internals

  #newEntry(rec: TaskRecord, triggers: TaskTrigger[]): Entry {
    let resolve!: (r: TaskRecord) => void;
    const done = new Promise<TaskRecord>((r) => (resolve = r));
    const e: Entry = { rec: deepFreeze(rec), seq: this.#seq++, phase: 'new', triggers, done, resolve, chain: Promise.resolve(), enqueued: false };
    this.#entries.set(rec.id, e);
    return e;
  }

  #handle(e: Entry): TaskHandle {
    return { id: e.rec.id, done: e.done, cancel: (reason?: string) => this.cancel(e.rec.id, reason) };
  }

  #report(taskId: string | undefined, error: unknown, where: string): void {
    const msg = taskId === undefined ? { error, where } : { taskId, error, where };
    if (errorChannel.hasSubscribers) errorChannel.publish(msg);
    for (const fn of this.#errorListeners) {
      try {
        fn(msg);
      } catch {
        /* an error listener must not break the queue */
      }
    }
  }

  /** Whether `rec` of `e` is written: there is a persistence, and the task records more than its outcome or this is it. */
  #writes(e: Entry, rec: TaskRecord): boolean {
    return this.#opts.persistence !== undefined && !(e.outcomeOnly && !isFinished(rec.state));
  }

  async #save(e: Entry, rec: TaskRecord): Promise<void> {
    const p = this.#opts.persistence;
    if (!p || !this.#writes(e, rec)) return;
    let lastErr: unknown;
    for (let i = 0; i < 3; i++) {
      try {
        await p.save(rec);
        return;
      } catch (err) {
        lastErr = err;
        await new Promise((r) => setTimeout(r, 20 * (i + 1)));
      }
    }
    this.#report(e.rec.id, lastErr, 'persistence');
  }

  /**
   * Applies an event: persist first, then publish. With `defer` (and a record to write), the
   * transition is applied and its commit hooks run, but it is neither written nor heard yet:
   * the next transition's write carries it (the record's history holds both) and listeners
   * then hear both, in order. An attempt's `start` is deferred to its `run` (or to its ending,
   * when it fails before it runs): one durable write instead of two. A crash before that
   * write leaves the task `queued` on disk, and nothing of the attempt ran.
   */
  async #transition(e: Entry, event: TaskEvent, reason?: string, patch: Partial<TaskRecord> = {}, defer = false): Promise<void> {
    const { next, ev } = applyTransition(e.rec, event, reason, patch);
    for (const hook of this.#commitHooks) {
      try {
        // A hook with nothing to wait for returns no promise: no await (and no microtask) then.
        const r = hook(ev);
        if (r && typeof (r as PromiseLike<unknown>).then === 'function') await r;
      } catch (err) {
        this.#report(e.rec.id, err, 'commit hook');
      }
    }
    const write = this.#writes(e, next);
    if (write && !defer) await this.#save(e, next);
    // Facts the running attempt reported (pid, container id) stay visible across its transitions.
    e.rec = e.liveInfo && patch.info === undefined ? deepFreeze({ ...next, info: structuredClone(e.liveInfo) }) : next;
    if (write && defer) {
      (e.deferred ??= []).push(ev);
      return;
    }
    const heard = e.deferred;
    e.deferred = undefined;
    if (heard) for (const d of heard) this.#publish(e, d);
    this.#publish(e, ev);
  }

  /** Tells the channel, telemetry and listeners of a recorded transition. */
  #publish(e: Entry, ev: TransitionEvent): void {
    if (transitionChannel.hasSubscribers) transitionChannel.publish(ev);
    try {
      this.#telemetry.transition(ev);
    } catch (err) {
      this.#report(e.rec.id, err, 'telemetry');
    }
    for (const fn of this.#transitionListeners) {
      try {
        fn(ev);
      } catch (err) {
        this.#report(e.rec.id, err, 'transition listener');
      }
    }
  }

  #enqueue(e: Entry, enqueued = true): void {
    e.enqueued = enqueued;
    if (this.#closed) {
      e.phase = 'closed';
      e.resolve(e.rec);
      return;
    }
    e.phase = 'pending';
    this.#pending.add(e);
    this.#pump();
  }

  #pump(): void {
    if (!this.#isReady || this.#closed) return;
    while (this.#active < this.#opts.concurrency && this.#pending.size > 0) {
      let picked: Entry | undefined;
      let leases: Lease[] = [];
      for (const cand of this.#pending.ordered()) {
        // Strict order: wait for an earlier entry whose 'enqueue' is still being recorded.
        if (!cand.enqueued) break;
        const got = tryLeaseAll(this.#opts.leases, cand.rec.id, cand.rec.resources);
        if (got) {
          picked = cand;
          leases = got;
          break;
        }
      }
      if (!picked) return;
      const e = picked;
      this.#pending.delete(e);
      e.phase = 'active';
      e.preLeases = leases;
      e.controller = new AbortController();
      this.#active++;
      const p = this.#runAttempt(e).catch((err: unknown) => this.#report(e.rec.id, err, 'attempt'));
      this.#activeDone.add(p);
      void p.finally(() => this.#activeDone.delete(p));
    }
  }

  #workspaceRoot(): Promise<string> {
    this.#dataDir ??= this.#opts.dataDir
      ? mkdir(this.#opts.dataDir, { recursive: true }).then(() => this.#opts.dataDir!)
      : mkdtemp(join(tmpdir(), 'smoothtask-tasks-'));
    return this.#dataDir;
  }

  async #runAttempt(e: Entry): Promise<void> {
    const id = e.rec.id;
    const controller = e.controller!;
    const signal = controller.signal;
    const lp = this.#opts.leases;
    const held: Lease[] = [...(e.preLeases ?? [])];
    e.preLeases = undefined;
    const attempt = e.rec.attempt + 1;
    let timer: NodeJS.Timeout | undefined;
    let sink: LogSink | undefined;
    let result: TaskResult | undefined;
    let failure: unknown;
    let ran = false;
    const t0 = Date.now();
    const info: Record<string, JsonValue> = { ...e.rec.info };
    let infoDirty = false;
    try {
      const root = await this.#workspaceRoot();
      const workspace = join(root, id);
      // The id is a validated file name: plain concatenation (path.join allocates a lot per call).
      const logs = { stdout: `${workspace}/stdout.log`, stderr: `${workspace}/stderr.log`, system: `${workspace}/system.log` };
      const logPath = `${workspace}/output.log`;
      await this.#transition(e, 'start', attempt > 1 ? `attempt ${attempt}` : undefined, {
        attempt,
        // A new attempt starts clean: the previous attempt's ending is in the history.
        exitCode: null,
        signal: null,
        error: undefined,
        workspace,
        logs,
        logPath,
        leases: [...e.rec.leases, ...held.map(leaseRecord)],
      }, true);
      // Created on first use (most no-op tasks never touch it): the seam promises it exists when read.
      let wsReady = false;
      const ensureWorkspace = (): string => {
        if (!wsReady) {
          mkdirSync(workspace, { recursive: true });
          wsReady = true;
        }
        return workspace;
      };
      sink = new LogSink(logs, logPath, ensureWorkspace, (stream, chunk) => {
        const ev: LogEvent = { taskId: id, stream, chunk, at: Date.now() };
        if (logChannel.hasSubscribers) logChannel.publish(ev);
        for (const fn of this.#logListeners) {
          try {
            fn(ev);
          } catch (err) {
            this.#report(id, err, 'log listener');
          }
        }
      }, this.#opts.maxLogBytes);
      const executor = this.#executors.get(e.rec.kind);
      if (!executor) throw new UnknownTaskKindError(e.rec.kind);
      const spec = executor.specSchema ? (validate(executor.specSchema, e.rec.spec, `'${e.rec.kind}' task spec`) as never) : (e.rec.spec as never);
      if (e.rec.timeoutMs !== undefined) {
        const ms = e.rec.timeoutMs;
        timer = setTimeout(() => controller.abort(new TaskTimeoutError(id, ms)), ms);
        timer.unref();
      }
      if (signal.aborted) throw signal.reason;
      await this.#transition(e, 'run');
      const s = sink;
      const ctx: TaskContext<never> = {
        task: e.rec,
        spec,
        attempt,
        signal,
        killAfterMs: e.rec.killAfterMs,
        get workspace() {
          return ensureWorkspace();
        },
        log: (stream, chunk) => s.write(stream, chunk),
        setInfo: (patch) => {
          Object.assign(info, patch);
          infoDirty = true;
          e.liveInfo = info;
          e.rec = deepFreeze({ ...e.rec, info: structuredClone(info) });
        },
        leases: attemptLeases(lp, id, held, signal),
      };
      ran = true;
      // In the attempt's span context: what the executor traces nests under the attempt.
      result = await context.with(this.#telemetry.attemptContext(id), () => executor.run(ctx));
    } catch (err) {
      failure = err;
    }
    clearTimeout(timer);
    await sink?.close().catch((err: unknown) => this.#report(id, err, 'log close'));
    const leases = releaseLeases(lp, held, e.rec.leases);

    const patch: Partial<TaskRecord> = { leases, timings: { ...e.rec.timings, durationMs: Date.now() - t0 } };
    if (infoDirty) patch.info = info;
    e.liveInfo = undefined;
    if (sink?.droppedBytes) patch.logDroppedBytes = (e.rec.logDroppedBytes ?? 0) + sink.droppedBytes;
    const retry = e.rec.retry;
    const onClose = this.#opts.onClose ?? (this.#opts.persistence ? 'requeue' : 'cancel');
    const verdict = decideOutcome({ signal, result, failure, ran, attempt, retry, closed: this.#closed, onClose });
    const { event, reason } = verdict;
    Object.assign(patch, verdict.patch);
    try {
      await this.#transition(e, event, reason, patch);
    } finally {
      this.#active--;
      e.controller = undefined;
      this.#pump();
    }

    if (event === 'retry' && retry) {
      e.phase = 'retry-wait';
      const delay = retryDelay(retry, attempt);
      // Ref'd on purpose: a pending retry is the user's work and should keep a script alive.
      e.retryTimer = setTimeout(() => {
        e.retryTimer = undefined;
        if (e.phase !== 'retry-wait') return;
        e.phase = 'new';
        e.chain = e.chain
          .then(async () => {
            if (e.cancelReason !== undefined) return this.#finishWaiting(e, e.cancelReason);
            await this.#transition(e, 'enqueue', 'retry backoff elapsed');
            if (e.cancelReason !== undefined) return this.#finishWaiting(e, e.cancelReason);
            this.#enqueue(e);
          })
          .catch((err: unknown) => this.#report(id, err, 'retry'));
      }, delay);
      return;
    }
    if (event === 'requeue') {
      e.phase = 'closed';
      e.resolve(e.rec);
      return;
    }
    await this.#finish(e);
  }

  /** Cancels a task that is not running (created/queued/retrying). */
  async #finishWaiting(e: Entry, reason: string | undefined): Promise<void> {
    if (isOutcome(e.rec.state)) return;
    await this.#transition(e, 'cancel', reason, { error: errInfo(new TaskCancelledError(e.rec.id, reason)) });
    await this.#finish(e);
  }

  async #finish(e: Entry): Promise<void> {
    e.phase = 'finished';
    e.detachSignal?.();
    const outcome = e.rec.state as OutcomeState;
    const report = (err: unknown, where: string) => this.#report(e.rec.id, err, where);
    const records = await runTriggers([...this.#opts.triggers, ...e.triggers], () => e.rec, outcome, report);
    if (records.length) {
      e.rec = deepFreeze({ ...e.rec, triggers: [...e.rec.triggers, ...records] });
      await this.#save(e, e.rec);
    }
    if (this.#opts.archiveOnFinish) await this.#archive(e).catch((err: unknown) => this.#report(e.rec.id, err, 'archive'));
    e.resolve(e.rec);
    this.#finishedOrder.push(e.rec.id);
    while (this.#finishedOrder.length > this.#opts.keepFinished) {
      const old = this.#finishedOrder.shift()!;
      this.#entries.delete(old);
    }
  }

  async #archive(e: Entry): Promise<TaskRecord> {
    if (e.rec.state === 'archived') return e.rec;
    if (e.rec.state !== 'cleaning') await this.#transition(e, 'clean');
    const rec = await runCleanup(this.#executors.get(e.rec.kind), e.rec, (err, where) => this.#report(e.rec.id, err, where));
    await this.#transition(e, 'archive', undefined, rec ? { triggers: [...e.rec.triggers, rec] } : {});
    return e.rec;
  }

  async #recover(): Promise<void> {
    const p = this.#opts.persistence;
    if (!p) return;
    for (const rec of recoveryOrder(await p.loadAll())) {
      if (this.#entries.has(rec.id)) continue;
      const e = this.#newEntry(rec, []);
      const step = recoveryStep(rec, this.#opts.recovery);
      if (step.action === 'hold') {
        e.phase = 'held';
      } else if (step.action === 'settle') {
        e.phase = 'finished';
        e.resolve(e.rec);
        if (step.forgettable) this.#finishedOrder.push(rec.id);
      } else {
        const t = step.transition;
        if (t) await this.#transition(e, t.event, t.reason, t.patch);
        if (step.action === 'enqueue') this.#enqueue(e);
        else await this.#finish(e);
      }
    }
  }
}
