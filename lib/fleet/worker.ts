/**
 * The fleet's worker, run by each agent: BullMQ workers (one per capability class the node
 * serves) take jobs, check the job's placement against this node, and run each task through
 * the node's own queue and executors (after the agent's policy). Transitions are written to
 * the fleet's records and published; cancel requests from any producer reach the node that
 * runs the job; on close, jobs still running after a grace period are handed back to the queue.
 * @module
 */
import { DelayedError, UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { SpanStatusCode } from '@opentelemetry/api';
import { z } from 'zod';
import { SmoothtaskError } from '../errors/index.js';
import { validate } from '../errors/validate.js';
import type { SubmitOptions } from '../task/options.js';
import type { TaskQueue } from '../task/queue.js';
import type { TaskHandle } from '../task/queue-like.js';
import { isFinished } from '../task/states.js';
import type { TaskRecord, TransitionEvent } from '../task/types.js';
import type { JsonValue } from '../util/json.js';
import { ClassNameSchema, FleetRecords, PrefixSchema, parseJobData, type FleetInfo, type FleetJobData, type Placement } from './protocol.js';
import { bullConnection, RedisConfigSchema, redisOptions, waitReady } from './redis.js';
import { extractTrace, fleetTracer } from './trace.js';

/** This node as the fleet sees it. */
export interface FleetNode {
  /** Unique name of the node in the fleet (default: the host name). */
  name: string;
  /** The agent's URL, where the task's logs and artifacts are served (recorded with each task). */
  url?: string | undefined;
  /** Labels a job's placement may require. */
  labels?: Record<string, string> | undefined;
  /** GPUs this node has. */
  gpus?: number | undefined;
  /** Free resources now (memory available, idle CPUs); checked when a job asks for some. */
  free?: (() => Promise<{ memoryBytes: number; cpus: number }>) | undefined;
}

/** Options of {@link FleetWorker}. */
export const FleetWorkerOptionsSchema = z
  .object({
    /** Redis connection. */
    redis: RedisConfigSchema.default({ url: 'redis://127.0.0.1:6379', connectTimeoutMs: 10_000 }),
    /** Key prefix shared by the producers and agents of one fleet. */
    prefix: PrefixSchema.default('smoothtask'),
    /** Capability classes this node serves (one BullMQ queue each). */
    classes: z.array(ClassNameSchema).min(1).default(['default']),
    /** Jobs taken at once per class. */
    concurrency: z.number().int().min(1).max(1024).default(4),
    /** BullMQ lock of a running job; renewed at half. A node silent for longer is presumed dead. */
    lockDurationMs: z.number().int().min(1000).default(30_000),
    /** How often workers look for stalled jobs (of dead nodes) to run again. */
    stalledIntervalMs: z.number().int().min(500).default(30_000),
    /** How many times a job may stall (its node died) and run again before it fails. */
    maxStalledCount: z.number().int().min(0).default(3),
    /** A job no node can place for this long fails with `ERR_FLEET_NO_NODE`. */
    placementTimeoutMs: z.number().int().positive().default(600_000),
    /** A job this node cannot place now is put back for this long. */
    placementRetryMs: z.number().int().positive().default(1000),
    /** Publish log chunks of fleet tasks to producers' `onLog` (costs a Redis message per chunk). */
    forwardLogs: z.boolean().default(false),
    /** How often running jobs re-check their cancel key (a missed message). */
    cancelCheckMs: z.number().int().positive().default(5000),
    /**
     * A running job's intermediate state (`starting`, `running`, `retrying`) is written to the
     * fleet's record and published this long after it was reached, the newest one only: a state
     * that lasted less is seen by producers only in the final record's history. 0 writes each
     * at once (one write in flight per job; those in between still coalesce).
     */
    transitionDelayMs: z.number().int().min(0).max(60_000).default(50),
  })
  .strict();
/** Options of {@link FleetWorker}. */
export type FleetWorkerOptions = z.input<typeof FleetWorkerOptionsSchema>;

/** What the node decides before it submits a job's task: return the options to submit, or throw (a typed error) to refuse. */
export type FleetAdmission = (task: SubmitOptions & { id: string }) => SubmitOptions | Promise<SubmitOptions>;

interface Active {
  job: Job;
  run: number;
  cls: string;
  /** The write in flight, and the newest transition waiting for it (earlier ones are dropped). */
  writing: Promise<unknown> | undefined;
  /** The delay before the next write starts (`transitionDelayMs`). */
  timer: NodeJS.Timeout | undefined;
  next: { rec: TaskRecord; e: TransitionEvent } | undefined;
  handBack: boolean;
}

/**
 * Runs fleet jobs on this node through `queue`.
 *
 * @example
 * ```ts
 * const worker = new FleetWorker(queue, { redis: { url }, classes: ['cpu'] }, { name: 'node-a', url: 'http://10.0.0.5:7700' });
 * await worker.start();
 * // ...
 * await worker.close(10_000);
 * ```
 */
export class FleetWorker {
  /** The options, defaults filled. */
  readonly options: z.output<typeof FleetWorkerOptionsSchema>;
  /** This node. */
  readonly node: FleetNode;
  readonly #queue: TaskQueue;
  readonly #admit: FleetAdmission | undefined;
  readonly #redis: Redis;
  readonly #sub: Redis;
  readonly #records: FleetRecords;
  readonly #workers: Worker[] = [];
  readonly #active = new Map<string, Active>();
  /**
   * Tasks whose job's lock this node lost while running them: the local run is being cancelled
   * and forgotten (settles once it is, then leaves the map); no final state is written for it.
   */
  readonly #lost = new Map<string, Promise<void>>();
  readonly #off: Array<() => void> = [];
  #cancelTimer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  /** A worker for `queue` (which must have the executors the jobs need). Call {@link FleetWorker.start}. */
  constructor(queue: TaskQueue, options: FleetWorkerOptions, node: FleetNode, admit?: FleetAdmission) {
    this.options = validate(FleetWorkerOptionsSchema, options, 'fleet worker options');
    this.node = node;
    this.#queue = queue;
    this.#admit = admit;
    const ro = redisOptions(this.options.redis);
    this.#redis = new Redis(ro);
    this.#sub = new Redis({ ...ro, lazyConnect: true });
    for (const c of [this.#redis, this.#sub]) c.on('error', () => {});
    this.#records = new FleetRecords(this.#redis, this.options.prefix);
  }

  /** Jobs running on this node now. */
  get active(): number {
    return this.#active.size;
  }

  /** Subscribes to cancel requests and starts taking jobs. */
  async start(): Promise<void> {
    // A wrong address or password fails the start (ERR_FLEET_REDIS) rather than hanging it.
    await waitReady(this.#redis, this.options.redis.connectTimeoutMs);
    const k = this.#records.keys;
    this.#off.push(this.#queue.onTransition((e) => this.#onTransition(e)));
    if (this.options.forwardLogs) {
      this.#off.push(
        this.#queue.onLog((e) => {
          if (this.#active.has(e.taskId)) void this.#redis.publish(k.logChannel, JSON.stringify({ ...e, node: this.node.name })).catch(() => {});
        }),
      );
    }
    this.#sub.on('message', (_ch: string, msg: string) => {
      try {
        const m = JSON.parse(msg) as { id?: unknown; reason?: unknown };
        if (typeof m.id === 'string' && this.#active.has(m.id)) void this.#queue.cancel(m.id, typeof m.reason === 'string' ? m.reason : 'cancelled by the producer');
      } catch {
        // not ours
      }
    });
    await this.#sub.connect().catch(() => undefined);
    await this.#sub.subscribe(k.cancelChannel);
    this.#cancelTimer = setInterval(() => void this.#checkCancels(), this.options.cancelCheckMs);
    this.#cancelTimer.unref();
    const o = this.options;
    for (const cls of o.classes) {
      // Two parameters: BullMQ (6.x) makes an AbortController per job only for a processor that
      // takes a third, and aborts it only from worker.cancelJob(), which the fleet does not call.
      const w = new Worker(k.queueName(cls), (job, token) => this.#process(cls, job, token), {
        connection: bullConnection(o.redis),
        prefix: o.prefix,
        concurrency: o.concurrency,
        lockDuration: o.lockDurationMs,
        stalledInterval: o.stalledIntervalMs,
        maxStalledCount: o.maxStalledCount,
        autorun: true,
      });
      w.on('error', () => {}); // connection errors: BullMQ reconnects
      // The lock of a running job could not be renewed (this node was cut off from Redis, or
      // stalled, longer than lockDurationMs): BullMQ gives the job to a node again, so this
      // node stops its own run rather than run the task twice at once.
      w.on('lockRenewalFailed', (ids: string[]) => this.#lockLost(ids));
      this.#workers.push(w);
    }
    await Promise.all(this.#workers.map((w) => w.waitUntilReady()));
  }

  #lockLost(ids: readonly string[]): void {
    for (const id of ids) {
      const a = this.#active.get(id);
      if (!a || a.handBack || this.#lost.has(id)) continue;
      let local: TaskHandle;
      try {
        local = this.#queue.handle(id);
      } catch {
        continue; // not submitted here yet
      }
      this.#lost.set(
        id,
        (async () => {
          await this.#queue.cancel(id, `${this.node.name} lost the fleet job's lock (cut off from Redis or stalled): the job runs again`).catch(() => false);
          await local.done.catch(() => undefined);
          await this.#queue.forget(id).catch(() => {});
        })().finally(() => this.#lost.delete(id)),
      );
    }
  }

  async #checkCancels(): Promise<void> {
    const ids = [...this.#active.keys()];
    if (!ids.length) return;
    const vals = await this.#redis.mget(ids.map((id) => this.#records.keys.cancel(id))).catch(() => []);
    ids.forEach((id, i) => {
      const v = vals[i];
      if (typeof v === 'string') void this.#queue.cancel(id, v);
    });
  }

  #info(cls: string, run: number): FleetInfo {
    return { class: cls, node: this.node.name, agentUrl: this.node.url ?? null, run };
  }

  #withInfo(rec: Readonly<TaskRecord>, cls: string, run: number): TaskRecord {
    return { ...rec, info: { ...rec.info, fleet: this.#info(cls, run) as unknown as JsonValue } } as TaskRecord;
  }

  #onTransition(e: TransitionEvent): void {
    const a = this.#active.get(e.task.id);
    // The final record is written by the run itself, once (and a hand-back's cancel is no end).
    if (!a || isFinished(e.task.state)) return;
    a.next = { rec: this.#withInfo(e.task, a.cls, a.run), e };
    if (a.writing || a.timer) return;
    const d = this.options.transitionDelayMs;
    if (d === 0) a.writing = this.#flush(a);
    else a.timer = setTimeout(() => {
      a.timer = undefined;
      a.writing ??= this.#flush(a);
    }, d);
  }

  /** Writes the newest transition of `a` (one write in flight per job; those in between coalesce). */
  async #flush(a: Active): Promise<void> {
    while (a.next) {
      const { rec, e } = a.next;
      a.next = undefined;
      await this.#records.put(rec, a.run, { ...e, task: rec, node: this.node.name }).catch(() => false);
      if (rec.state === 'running') await a.job.updateProgress({ state: rec.state, attempt: rec.attempt, node: this.node.name }).catch(() => {});
    }
    a.writing = undefined;
  }

  async #finish(id: string, cls: string, run: number, state: 'failed' | 'cancelled' | 'timed_out', code: string, message: string): Promise<void> {
    const rec = await this.#records.get(id);
    if (!rec || isFinished(rec.state)) return;
    const now = Date.now();
    const done: TaskRecord = {
      ...this.#withInfo(rec, cls, run),
      state,
      outcome: state,
      error: { code, message },
      history: [...rec.history, { from: rec.state, to: state, event: state === 'failed' ? 'fail' : state === 'cancelled' ? 'cancel' : 'time_out', at: now, reason: message }],
      timings: { ...rec.timings, endedAt: now },
    };
    await this.#records.put(done, run, { task: done, from: rec.state, to: state, event: done.history.at(-1)!.event, at: now, reason: message, node: this.node.name });
  }

  #fitsStatic(p: Placement): string | undefined {
    for (const [k, v] of Object.entries(p.labels)) if (this.node.labels?.[k] !== v) return `label ${k}=${v}`;
    if (p.gpus > (this.node.gpus ?? 0)) return `${p.gpus} GPUs`;
    return undefined;
  }

  async #fitsNow(p: Placement): Promise<string | undefined> {
    if (!p.memoryBytes && !p.cpus) return undefined;
    if (!this.node.free) return undefined;
    const f = await this.node.free();
    if (f.memoryBytes < p.memoryBytes) return `${p.memoryBytes} bytes of memory free`;
    if (f.cpus < p.cpus) return `${p.cpus} idle CPUs`;
    return undefined;
  }

  async #process(cls: string, job: Job, token: string | undefined): Promise<unknown> {
    let data: FleetJobData;
    try {
      data = parseJobData(job.data);
      if (job.id !== data.task.id) throw new SmoothtaskError('ERR_FLEET_JOB_INVALID', `Job id '${job.id}' is not its task's id '${data.task.id}'`);
    } catch (e) {
      if (typeof job.id === 'string') await this.#finish(job.id, cls, Number.MAX_SAFE_INTEGER, 'failed', 'ERR_FLEET_JOB_INVALID', (e as Error).message).catch(() => {});
      throw new UnrecoverableError(`invalid fleet job: ${(e as Error).message}`);
    }
    const id = data.task.id;
    if (this.#closing) {
      await job.moveToWait(token);
      throw new WaitingError();
    }
    // Placement: a node that cannot take the job now puts it back for another (or for later).
    const miss = this.#fitsStatic(data.placement) ?? (await this.#fitsNow(data.placement));
    if (miss) {
      if (Date.now() - data.submittedAt > this.options.placementTimeoutMs) {
        await this.#finish(id, cls, Number.MAX_SAFE_INTEGER, 'failed', 'ERR_FLEET_NO_NODE', `No node could place the task within ${this.options.placementTimeoutMs} ms (last refusal by ${this.node.name}: needs ${miss})`);
        throw new UnrecoverableError('no node can place the task');
      }
      await job.moveToDelayed(Date.now() + this.options.placementRetryMs, token);
      throw new DelayedError();
    }
    const begin = await this.#records.begin(id);
    const run = begin.run;
    if (begin.cancel !== undefined) {
      await this.#finish(id, cls, run, 'cancelled', 'ERR_TASK_CANCELLED', begin.cancel);
      return { state: 'cancelled', node: this.node.name };
    }
    if (begin.final) return { state: 'final already', node: this.node.name };

    return fleetTracer().startActiveSpan(
      'smoothtask.fleet.run',
      { attributes: { 'smoothtask.task.id': id, 'smoothtask.task.kind': data.task.kind, 'smoothtask.fleet.node': this.node.name, 'smoothtask.fleet.run': run } },
      extractTrace(data.trace),
      async (span) => {
        try {
          return await this.#run(cls, job, token, data, run, begin.firstStart);
        } catch (e) {
          if (!(e instanceof DelayedError) && !(e instanceof WaitingError)) span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
          throw e;
        } finally {
          span.end();
        }
      },
    );
  }

  async #run(cls: string, job: Job, token: string | undefined, data: FleetJobData, run: number, firstStart: number): Promise<unknown> {
    const id = data.task.id;
    // Delivered again after this node lost the lock: the old local run ends first, then a new one starts.
    await this.#lost.get(id);
    // The task's time limit holds across nodes: a job run again after its node died gets what is left.
    let timeoutMs = data.task.timeoutMs;
    if (run > 1 && timeoutMs !== undefined) {
      const left = timeoutMs - (Date.now() - firstStart);
      if (left <= 0) {
        await this.#finish(id, cls, run, 'timed_out', 'ERR_TASK_TIMEOUT', `The task's ${timeoutMs} ms ran out across nodes`);
        throw new UnrecoverableError('timed out');
      }
      timeoutMs = left;
    }
    const a: Active = { job, run, cls, writing: undefined, timer: undefined, next: undefined, handBack: false };
    this.#active.set(id, a);
    try {
      let handle: TaskHandle;
      const local = this.#queue.get(id);
      if (local && !isFinished(local.state)) handle = this.#queue.handle(id); // delivered again to the node that runs it
      else if (local) handle = { id, done: Promise.resolve(local as TaskRecord), cancel: async () => false };
      else {
        const t = data.task;
        let opts: SubmitOptions & { id: string } = {
          id,
          kind: t.kind,
          spec: t.spec ?? null,
          priority: t.priority,
          labels: t.labels,
          resources: t.resources,
          ...(timeoutMs === undefined ? {} : { timeoutMs }),
          ...(t.killAfterMs === undefined ? {} : { killAfterMs: t.killAfterMs }),
          ...(t.retry === undefined ? {} : { retry: t.retry }),
        };
        try {
          if (this.#admit) opts = { ...(await this.#admit(opts)), id };
          // The fleet's record is the durable one, and BullMQ reruns the job of a node that died:
          // a restart of this agent must not run it locally a second time.
          handle = this.#queue.submit({ ...opts, persist: 'outcome' });
        } catch (e) {
          const code = (e as { code?: unknown }).code;
          await this.#finish(id, cls, run, 'failed', typeof code === 'string' ? code : 'ERR_FLEET_REFUSED', `Refused by ${this.node.name}: ${(e as Error).message}`);
          throw new UnrecoverableError(`refused: ${(e as Error).message}`);
        }
      }
      const rec = await handle.done;
      // Taken at once: the entry leaves the map when the local run is forgotten.
      const lostNow = this.#lost.get(id);
      clearTimeout(a.timer);
      a.timer = undefined;
      a.next = undefined;
      await a.writing;
      if (lostNow) {
        // Not a final state: the job is BullMQ's to give again (its stalled-job check).
        await lostNow;
        throw new SmoothtaskError('ERR_FLEET_LOCK_LOST', `${this.node.name} lost the job's lock; it runs again`);
      }
      if (a.handBack) {
        // The node is closing: the job goes back to the queue for another node.
        void this.#queue.forget(id).catch(() => {});
        await job.moveToWait(token);
        throw new WaitingError();
      }
      const final = this.#withInfo(rec, cls, run);
      const last = final.history.at(-1);
      await this.#records.put(final, run, { task: final, from: last?.from ?? final.state, to: final.state, event: last?.event ?? 'succeed', at: Date.now(), reason: last?.reason, node: this.node.name });
      if (rec.state === 'succeeded' || rec.outcome === 'succeeded') return { state: 'succeeded', exitCode: rec.exitCode, node: this.node.name, agentUrl: this.node.url ?? null };
      throw new UnrecoverableError(`task ${rec.outcome ?? rec.state}${rec.error ? `: ${rec.error.message}` : ''}`);
    } finally {
      clearTimeout(a.timer);
      // A later delivery of the same job to this node may have its own entry by now.
      if (this.#active.get(id) === a) this.#active.delete(id);
    }
  }

  /**
   * Stops taking jobs; jobs running here may finish for `graceMs`, then they are cancelled
   * locally and handed back to the queue (another node runs them: at-least-once). Idempotent.
   */
  close(graceMs = 0): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.allSettled(this.#workers.map((w) => w.pause(true)));
      const t0 = Date.now();
      while (this.#active.size && Date.now() - t0 < graceMs) await new Promise((r) => setTimeout(r, 100));
      for (const [id, a] of this.#active) {
        a.handBack = true;
        await this.#queue.cancel(id, 'the node is closing: handed back to the fleet');
      }
      const t1 = Date.now();
      while (this.#active.size && Date.now() - t1 < 10_000) await new Promise((r) => setTimeout(r, 50));
      if (this.#cancelTimer) clearInterval(this.#cancelTimer);
      for (const off of this.#off) off();
      await Promise.allSettled(this.#workers.map((w) => Promise.race([w.close(), new Promise((r) => setTimeout(r, 5000))])));
      this.#sub.disconnect();
      await this.#redis.quit().catch(() => this.#redis.disconnect());
    })();
    return this.#closing;
  }
}
