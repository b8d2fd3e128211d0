/**
 * The fleet's producer: submits task specs as BullMQ jobs (one queue per capability class),
 * and answers `get`/`list`/`cancel`/events from the fleet's records in Redis. It has the same
 * shape as the in-process queue (`TaskQueueLike`), so code written against one runs on either.
 * @module
 */
import { randomUUID } from 'node:crypto';
import { Queue, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { ConfigError, SmoothtaskError } from '../errors/index.js';
import { validate } from '../errors/validate.js';
import { SubmitOptionsSchema, type SubmitOptions } from '../task/options.js';
import type { TaskHandle, TaskListFilter, TaskQueueLike } from '../task/queue-like.js';
import { isFinished, type TaskState } from '../task/states.js';
import { RetryPolicySchema, type LogEvent, type TaskRecord, type TransitionEvent } from '../task/types.js';
import { FleetRecords, FleetTaskSchema, PlacementSchema, PrefixSchema, refuseLocalOnly, type FleetJobData, type PlacementInput } from './protocol.js';
import { bullConnection, RedisConfigSchema, redisOptions, waitReady } from './redis.js';
import { injectTrace, fleetTracer } from './trace.js';

/** BullMQ priority (1 runs first, at most 2^21) of a task priority (higher runs first; default 0). */
export const bullPriority = (p: number): number => Math.min(2_097_151, Math.max(1, 1_048_576 - Math.round(p)));

/** Options of {@link FleetProducer}. */
export const FleetProducerOptionsSchema = z
  .object({
    /** Redis connection. */
    redis: RedisConfigSchema.default({ url: 'redis://127.0.0.1:6379', connectTimeoutMs: 10_000 }),
    /** Key prefix shared by the producers and agents of one fleet. */
    prefix: PrefixSchema.default('smoothtask'),
    /** Default placement of submitted tasks. */
    placement: PlacementSchema.default({ class: 'default', labels: {}, gpus: 0, memoryBytes: 0, cpus: 0 }),
    /** Finished jobs kept in BullMQ (the fleet's records keep the tasks). */
    keepJobs: z.object({ ageSeconds: z.number().int().positive().default(86_400), count: z.number().int().positive().default(10_000) }).strict().default({ ageSeconds: 86_400, count: 10_000 }),
    /** How often `done` promises re-read records (events may be missed; records are the truth). */
    pollMs: z.number().int().positive().default(1000),
    /** How long a cancel request stays for a node that takes the job later (seconds). */
    cancelTtlSeconds: z.number().int().positive().default(86_400),
  })
  .strict();
/** Options of {@link FleetProducer}. */
export type FleetProducerOptions = z.input<typeof FleetProducerOptionsSchema>;

/** What {@link FleetProducer.submit} takes: the queue's submit options plus where the task may run. */
export type FleetSubmitOptions = SubmitOptions & { placement?: PlacementInput };

/**
 * Submits tasks to a fleet of agents and follows them.
 *
 * @example
 * ```ts
 * const fleet = new FleetProducer({ redis: { url: 'redis://127.0.0.1:6379' } });
 * const h = await fleet.submit({ kind: 'process', spec: { command: '/bin/echo', args: ['hi'] }, placement: { class: 'cpu' } });
 * const rec = await h.done; // rec.info.fleet: { node, agentUrl, class, run }
 * await fleet.close();
 * ```
 */
export class FleetProducer implements TaskQueueLike {
  /** The options, defaults filled. */
  readonly options: z.output<typeof FleetProducerOptionsSchema>;
  readonly #redis: Redis;
  readonly #sub: Redis;
  readonly #records: FleetRecords;
  readonly #queues = new Map<string, Queue>();
  readonly #transition = new Set<(e: TransitionEvent) => void>();
  readonly #log = new Set<(e: LogEvent) => void>();
  readonly #waiters = new Map<string, Array<(r: TaskRecord) => void>>();
  #poll: NodeJS.Timeout | undefined;
  #closed = false;
  #subscribed: Promise<unknown> | undefined;

  /** Connects lazily (commands wait for the connection). */
  constructor(options: FleetProducerOptions = {}) {
    this.options = validate(FleetProducerOptionsSchema, options, 'fleet producer options');
    const ro = redisOptions(this.options.redis);
    this.#redis = new Redis({ ...ro, lazyConnect: false });
    this.#sub = new Redis({ ...ro, lazyConnect: true });
    for (const c of [this.#redis, this.#sub]) c.on('error', () => {}); // reconnects by itself; commands wait
    this.#records = new FleetRecords(this.#redis, this.options.prefix);
  }

  /**
   * A producer whose Redis connection is up: rejects with `ERR_FLEET_REDIS` (the connection
   * error: refused, wrong password, TLS) after `redis.connectTimeoutMs`.
   */
  static async connect(options: FleetProducerOptions = {}): Promise<FleetProducer> {
    const p = new FleetProducer(options);
    try {
      await p.ready();
    } catch (e) {
      await p.close().catch(() => undefined);
      throw e;
    }
    return p;
  }

  /** Resolves once connected to Redis; rejects with `ERR_FLEET_REDIS` after `redis.connectTimeoutMs`. */
  ready(): Promise<void> {
    return waitReady(this.#redis, this.options.redis.connectTimeoutMs);
  }

  #queue(cls: string): Queue {
    let q = this.#queues.get(cls);
    if (!q) {
      q = new Queue(this.#records.keys.queueName(cls), { connection: bullConnection(this.options.redis), prefix: this.options.prefix });
      q.on('error', () => {});
      this.#queues.set(cls, q);
    }
    return q;
  }

  /**
   * Records the task (state `queued`) and adds its job to its class's queue. Resolves with a
   * handle once both are in Redis. Refuses (`ConfigError`) triggers and `hold`, which cannot
   * travel, an id that exists, and an all-digit id.
   */
  async submit(options: FleetSubmitOptions): Promise<TaskHandle> {
    if (this.#closed) throw new SmoothtaskError('ERR_FLEET_CLOSED', 'The fleet producer is closed');
    const { placement: pIn, ...rest } = options;
    const o = validate(SubmitOptionsSchema, rest, 'task submit options');
    refuseLocalOnly(o);
    const placement = validate(PlacementSchema, pIn ?? this.options.placement, 'fleet placement');
    const task = validate(
      FleetTaskSchema,
      {
        id: o.id ?? randomUUID(),
        kind: o.kind,
        ...(o.spec === undefined ? {} : { spec: o.spec }),
        priority: o.priority,
        labels: o.labels,
        ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
        ...(o.killAfterMs === undefined ? {} : { killAfterMs: o.killAfterMs }),
        ...(o.retry === undefined ? {} : { retry: o.retry }),
        resources: o.resources,
      },
      'fleet task',
    );
    const now = Date.now();
    const rec: TaskRecord = {
      id: task.id,
      kind: task.kind,
      spec: task.spec ?? null,
      state: 'queued',
      priority: task.priority,
      labels: task.labels,
      attempt: 0,
      ...(task.retry === undefined ? {} : { retry: RetryPolicySchema.parse(task.retry === true ? {} : task.retry) }),
      ...(task.timeoutMs === undefined ? {} : { timeoutMs: task.timeoutMs }),
      killAfterMs: task.killAfterMs ?? 5000,
      resources: task.resources,
      history: [{ from: 'created', to: 'queued', event: 'enqueue', at: now }],
      exitCode: null,
      signal: null,
      timings: { createdAt: now, queuedAt: now },
      outputs: [],
      artifacts: [],
      info: { fleet: { class: placement.class, node: null, agentUrl: null, run: 0 } },
      leases: [],
      triggers: [],
    };
    return fleetTracer().startActiveSpan('smoothtask.fleet.submit', { attributes: { 'smoothtask.task.id': task.id, 'smoothtask.task.kind': task.kind, 'smoothtask.fleet.class': placement.class } }, async (span) => {
      try {
        if (!(await this.#records.create(rec))) throw new ConfigError(`A task with id '${task.id}' already exists`, ['id: exists in the fleet']);
        const data: FleetJobData = { v: 1, task, placement, submittedAt: now, ...injectTrace() };
        const jobOpts: JobsOptions = {
          jobId: task.id,
          // The task's retry policy runs on the node (the local queue); a BullMQ retry would be a second one.
          attempts: 1,
          removeOnComplete: { age: this.options.keepJobs.ageSeconds, count: this.options.keepJobs.count },
          removeOnFail: { age: this.options.keepJobs.ageSeconds, count: this.options.keepJobs.count },
          // BullMQ runs jobs without a priority before prioritized ones, and a lower number first:
          // every job gets one, so that higher task priorities run first and equal ones FIFO.
          priority: bullPriority(task.priority),
        };
        await this.#queue(placement.class).add(task.kind, data, jobOpts);
        if (o.signal) {
          const sig = o.signal;
          const onAbort = () => void this.cancel(task.id, 'submit signal aborted').catch(() => {});
          if (sig.aborted) onAbort();
          else sig.addEventListener('abort', onAbort, { once: true });
        }
        return this.#lazyHandle(rec);
      } finally {
        span.end();
      }
    });
  }

  /**
   * A handle for a task of the fleet: its `done` resolves with the final record (it waits from
   * now on: the event subscription and the record polls). Throws `ERR_FLEET_CLOSED` after
   * `close()`.
   */
  handle(id: string): TaskHandle {
    if (this.#closed) throw new SmoothtaskError('ERR_FLEET_CLOSED', 'The fleet producer is closed');
    return { id, done: this.wait(id), cancel: (reason?: string) => this.cancel(id, reason) };
  }

  /**
   * The handle `submit()` returns: its `done` starts the wait when first read, so a producer
   * that never reads it (fire and forget) costs nothing after the submit. Read first after
   * `close()`, it resolves with the record this producer wrote at the submit.
   */
  #lazyHandle(rec: TaskRecord): TaskHandle {
    let done: Promise<TaskRecord> | undefined;
    const start = () => (this.#closed ? Promise.resolve(rec) : this.wait(rec.id));
    return {
      id: rec.id,
      get done() {
        return (done ??= start());
      },
      cancel: (reason?: string) => this.cancel(rec.id, reason),
    };
  }

  /** The task's record (from Redis), or `undefined`. */
  async get(id: string): Promise<Readonly<TaskRecord> | undefined> {
    return this.#records.get(id);
  }

  /** Records of the fleet's tasks (newest 10,000), oldest first, filtered by state and labels. */
  async list(filter: TaskListFilter = {}): Promise<Readonly<TaskRecord>[]> {
    const states = filter.state === undefined ? undefined : Array.isArray(filter.state) ? filter.state : [filter.state];
    const recs = await this.#records.getMany(await this.#records.ids());
    return recs.filter((r) => (!states || states.includes(r.state)) && Object.entries(filter.labels ?? {}).every(([k, v]) => r.labels[k] === v));
  }

  /**
   * Cancels a task wherever it is: a waiting job is removed and recorded `cancelled`; a running
   * one is cancelled by the node that runs it (a message, and a key the node checks when it
   * takes a job). `false` when the task is unknown or finished.
   */
  async cancel(id: string, reason = 'cancelled by the producer'): Promise<boolean> {
    const rec = await this.#records.get(id);
    if (!rec || isFinished(rec.state)) return false;
    const k = this.#records.keys;
    await this.#redis.set(k.cancel(id), reason.slice(0, 500), 'EX', this.options.cancelTtlSeconds);
    await this.#redis.publish(k.cancelChannel, JSON.stringify({ id, reason: reason.slice(0, 500) }));
    const cls = (rec.info.fleet as { class?: string } | undefined)?.class ?? 'default';
    const job = await this.#queue(cls).getJob(id);
    if (job) {
      const st = await job.getState();
      if (st === 'waiting' || st === 'delayed' || st === 'prioritized' || st === 'waiting-children') {
        try {
          await job.remove();
          const now = Date.now();
          await this.#records.put(
            { ...rec, state: 'cancelled', outcome: 'cancelled', history: [...rec.history, { from: rec.state, to: 'cancelled', event: 'cancel', at: now, reason }], timings: { ...rec.timings, endedAt: now }, error: { code: 'ERR_TASK_CANCELLED', message: reason } },
            Number.MAX_SAFE_INTEGER,
          );
        } catch {
          // Taken by a node meanwhile: it sees the key.
        }
      }
    }
    return true;
  }

  /**
   * Resolves with the task's record once it holds a final state, or with the record as it is
   * when `close()` comes first (an id that has no record by then stays pending). Rejects only
   * when called after `close()` (`ERR_FLEET_CLOSED`).
   */
  wait(id: string): Promise<TaskRecord> {
    if (this.#closed) return Promise.reject(new SmoothtaskError('ERR_FLEET_CLOSED', 'The fleet producer is closed'));
    return new Promise((resolve) => {
      const list = this.#waiters.get(id) ?? [];
      list.push(resolve);
      this.#waiters.set(id, list);
      void this.#listen();
      this.#poll ??= setInterval(() => void this.#check([...this.#waiters.keys()]), this.options.pollMs);
      void this.#check([id]);
    });
  }

  async #check(ids: string[]): Promise<void> {
    if (!ids.length) return;
    const recs = await this.#records.getMany(ids).catch(() => []);
    for (const r of recs) if (isFinished(r.state)) this.#settle(r);
  }

  #settle(r: TaskRecord): void {
    const ws = this.#waiters.get(r.id);
    if (!ws) return;
    this.#waiters.delete(r.id);
    for (const w of ws) w(r);
    if (!this.#waiters.size && this.#poll) {
      clearInterval(this.#poll);
      this.#poll = undefined;
    }
  }

  /** Calls `fn` on each transition any node reports (best effort: a hint; `get()` is the truth). */
  onTransition(fn: (e: TransitionEvent) => void): () => void {
    this.#transition.add(fn);
    void this.#listen();
    return () => this.#transition.delete(fn);
  }

  /** Calls `fn` on log chunks of tasks, from agents started with `forwardLogs` (best effort). */
  onLog(fn: (e: LogEvent) => void): () => void {
    this.#log.add(fn);
    void this.#listen();
    return () => this.#log.delete(fn);
  }

  #listen(): Promise<unknown> {
    if (this.#subscribed || this.#closed) return this.#subscribed ?? Promise.resolve();
    const k = this.#records.keys;
    this.#sub.on('message', (ch: string, msg: string) => {
      let v: unknown;
      try {
        v = JSON.parse(msg);
      } catch {
        return;
      }
      if (ch === k.eventChannel) {
        const e = v as TransitionEvent;
        if (!e || typeof e !== 'object' || !e.task || typeof e.task.id !== 'string') return;
        for (const f of this.#transition) f(e);
        // A final event carries the record its node stored (the write and the message are one
        // script): a waiter settles from it; nobody waiting, nothing to read.
        if (isFinished(e.task.state) && this.#waiters.has(e.task.id)) this.#settle(e.task);
      } else if (ch === k.logChannel) {
        for (const f of this.#log) f(v as LogEvent);
      }
    });
    this.#subscribed = this.#sub.subscribe(k.eventChannel, k.logChannel).catch(() => undefined);
    return this.#subscribed;
  }

  /** Closes the connections (pending `done` promises resolve with the record as it is then). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#poll) clearInterval(this.#poll);
    for (const [id, ws] of this.#waiters) {
      const r = await this.#records.get(id).catch(() => undefined);
      if (r) for (const w of ws) w(r);
    }
    this.#waiters.clear();
    await Promise.allSettled([...this.#queues.values()].map((q) => q.close()));
    this.#sub.disconnect();
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}
