/**
 * What the fleet keeps in Redis besides BullMQ's own keys, and the job data format.
 *
 * - `<prefix>:fleet:task:<id>`: the task record (JSON `{ run, final, rec }`), the source of truth
 *   for `get()`/`list()`. Updates go through one Lua script: a record that holds a final state
 *   is never changed again (exactly one final state per job), and a run older than the one
 *   recorded (a node presumed dead after a stall that still reports) is ignored.
 * - `<prefix>:fleet:tasks`: a sorted set of ids by creation time (for `list()`).
 * - `<prefix>:fleet:run:<id>`: counts the deliveries of a job (each run on a node takes the next number).
 * - `<prefix>:fleet:cancel:<id>`: set (with a TTL) by `cancel()`; runs check it when they start.
 * - channels `<prefix>:fleet:cancel` (ids to cancel), `<prefix>:fleet:events` (transitions),
 *   `<prefix>:fleet:logs` (log chunks, when workers forward them): hints for listeners; the
 *   records are the truth.
 * @module
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { ConfigError } from '../errors/index.js';
import { validate } from '../errors/validate.js';
import { isFinished } from '../task/states.js';
import { RetryPolicySchema, TaskIdSchema, type TaskRecord } from '../task/types.js';
import { JsonValueSchema } from '../util/json.js';

/** A capability class name: one BullMQ queue per class. */
export const ClassNameSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'lower-case letters, digits, _ and -, at most 32');

/** Where a job may run: its class (a BullMQ queue) and what a node must offer to take it. */
export const PlacementSchema = z
  .object({
    /** Capability class: only agents serving it take the job (default `default`). */
    class: ClassNameSchema.default('default'),
    /** Labels the node must carry (all of them, same values). */
    labels: z.record(z.string().max(100), z.string().max(200)).default({}),
    /** GPUs the node must have. */
    gpus: z.number().int().min(0).max(64).default(0),
    /** Available memory the node must have when it takes the job, bytes. */
    memoryBytes: z.number().int().min(0).default(0),
    /** Idle CPUs (cores × idle share) the node must have when it takes the job. */
    cpus: z.number().min(0).max(4096).default(0),
  })
  .strict();
/** Placement of a fleet job (input form). */
export type PlacementInput = z.input<typeof PlacementSchema>;
/** Placement of a fleet job. */
export type Placement = z.output<typeof PlacementSchema>;

/** The task part of a job: what the node submits to its own queue (after its policy). */
export const FleetTaskSchema = z
  .object({
    id: TaskIdSchema.refine((s) => !/^\d+$/.test(s), 'must not be all digits (BullMQ reserves them)'),
    kind: z.string().min(1).max(64),
    spec: JsonValueSchema.optional(),
    priority: z.number().default(0),
    labels: z.record(z.string(), z.string()).default({}),
    timeoutMs: z.number().positive().optional(),
    killAfterMs: z.number().min(0).optional(),
    retry: z.union([z.literal(true), RetryPolicySchema]).optional(),
    resources: z.array(z.object({ resource: z.string().min(1), count: z.number().int().positive().optional(), amount: z.number().positive().optional() }).strict()).default([]),
  })
  .strict();

/** W3C trace context carried in a job (OpenTelemetry). */
export const TraceCarrierSchema = z.object({ traceparent: z.string().max(64), tracestate: z.string().max(512).optional() }).strict();

/** The data of a fleet job (validated by the node that takes it: job data is input like any other). */
export const FleetJobDataSchema = z
  .object({
    v: z.literal(1),
    task: FleetTaskSchema,
    placement: PlacementSchema,
    /** Epoch ms of the submit. */
    submittedAt: z.number(),
    /** Trace context of the submit. */
    trace: TraceCarrierSchema.optional(),
  })
  .strict();
/** The data of a fleet job. */
export type FleetJobData = z.output<typeof FleetJobDataSchema>;

/** Facts the fleet adds to a record's `info.fleet`. */
export interface FleetInfo {
  /** Capability class. */
  class: string;
  /** Node (agent) that runs or ran the job, `null` before one took it. */
  node: string | null;
  /** That agent's URL (where its logs and artifacts are served), `null` when not known. */
  agentUrl: string | null;
  /** Delivery number of the run that wrote the record (1 = first; more after a stalled node). */
  run: number;
}

/** Key and channel names of a fleet (see the module comment). */
export interface FleetKeys {
  /** Key of a task's record. */
  record: (id: string) => string;
  /** Sorted set of task ids by creation time. */
  index: string;
  /** Delivery counter of a task. */
  run: (id: string) => string;
  /** Cancel request of a task. */
  cancel: (id: string) => string;
  /** Epoch ms of a task's first start on any node. */
  firstStart: (id: string) => string;
  /** Channel of cancel requests. */
  cancelChannel: string;
  /** Channel of transitions. */
  eventChannel: string;
  /** Channel of forwarded log chunks. */
  logChannel: string;
  /** BullMQ queue name of a class. */
  queueName: (cls: string) => string;
}

/** Key and channel names under a prefix. */
export function fleetKeys(prefix: string): FleetKeys {
  const p = `${prefix}:fleet`;
  return {
    record: (id) => `${p}:task:${id}`,
    index: `${p}:tasks`,
    run: (id) => `${p}:run:${id}`,
    cancel: (id) => `${p}:cancel:${id}`,
    firstStart: (id) => `${p}:start:${id}`,
    cancelChannel: `${p}:cancel`,
    eventChannel: `${p}:events`,
    logChannel: `${p}:logs`,
    queueName: (cls) => `tasks-${cls}`,
  };
}

/** A prefix for keys: letters, digits, `_`, `-` and `.` (no `:` or braces). */
export const PrefixSchema = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - only');

// The run and final flag of a stored record: read from its first bytes (JSON.stringify writes
// { run, final, rec } in that order), so a transition never decodes the whole record in Redis;
// anything else is decoded.
const HEAD = `
local function head(key)
  local h = redis.call('GETRANGE', key, 0, 63)
  if h == '' then return nil end
  local r, f = string.match(h, '^{"run":(%d+),"final":(%a+),')
  if r then return tonumber(r), f == 'true' end
  local c = cjson.decode(redis.call('GET', key))
  return tonumber(c.run), (c.final == true)
end
`;

// KEYS[1] record; ARGV[1] the record's JSON; ARGV[2] run; ARGV[3] 'true' when final; ARGV[4]
// channel ('' for none); ARGV[5] the message, or (ARGV[6] = '1') what follows the record in it
// (the message is then {"task":<record><ARGV[5]>): the record crosses the wire once.
// 1 = written (and published); 0 = refused (final already, or an older run).
const PUT = `${HEAD}
local run, final = head(KEYS[1])
if run then
  if final then return 0 end
  if run > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], '{"run":' .. ARGV[2] .. ',"final":' .. ARGV[3] .. ',"rec":' .. ARGV[1] .. '}')
if ARGV[4] ~= '' then
  if ARGV[6] == '1' then redis.call('PUBLISH', ARGV[4], '{"task":' .. ARGV[1] .. ARGV[5])
  else redis.call('PUBLISH', ARGV[4], ARGV[5]) end
end
return 1`;

// A run begins: KEYS run counter, cancel key, record, first start; ARGV now, TTL of the first start.
// Returns { run, cancel reason or false, 1 when the record is final, first start }.
const BEGIN = `${HEAD}
local run = redis.call('INCR', KEYS[1])
local cancel = redis.call('GET', KEYS[2])
local final = 0
local _, f = head(KEYS[3])
if f then final = 1 end
redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[2], 'NX')
return { run, cancel, final, redis.call('GET', KEYS[4]) }`;

/** What a run learns when it begins. */
export interface RunStart {
  /** Delivery number of this run. */
  run: number;
  /** The cancel reason when a cancel was asked. */
  cancel: string | undefined;
  /** The record already holds a final state. */
  final: boolean;
  /** Epoch ms of the job's first start on any node. */
  firstStart: number;
}

/** The connection with the fleet's scripts defined on it (`defineCommand`). */
type ScriptedRedis = Redis & {
  smoothtaskFleetPut(...args: string[]): Promise<unknown>;
  smoothtaskFleetBegin(...args: string[]): Promise<unknown>;
};

interface Stored {
  run: number;
  final: boolean;
  rec: TaskRecord;
}

/** Reads and writes fleet records with the rules above. */
export class FleetRecords {
  readonly keys: FleetKeys;
  readonly #redis: Redis;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.keys = fleetKeys(prefix);
    // EVALSHA with a fallback to EVAL on NOSCRIPT (ioredis): the script's text is not sent (and
    // hashed by Redis) with every call.
    redis.defineCommand('smoothtaskFleetPut', { numberOfKeys: 1, lua: PUT });
    redis.defineCommand('smoothtaskFleetBegin', { numberOfKeys: 4, lua: BEGIN });
  }

  /** Records a new task (refused when the id exists). */
  async create(rec: TaskRecord): Promise<boolean> {
    const ok = await this.#redis.set(this.keys.record(rec.id), JSON.stringify({ run: 0, final: false, rec } satisfies Stored), 'NX');
    if (ok !== 'OK') return false;
    await this.#redis.zadd(this.keys.index, rec.timings.createdAt, rec.id);
    return true;
  }

  /**
   * Writes `rec` for delivery `run` and publishes `event` (when given) on the event channel, in
   * one step; `false` when refused (final already, or a newer run recorded).
   */
  async put(rec: TaskRecord, run: number, event?: unknown): Promise<boolean> {
    const final = isFinished(rec.state);
    // The record is serialised once and sent once: the script makes the stored value and the
    // event that carries it.
    const recJson = JSON.stringify(rec);
    let msg = '';
    let tail = '0';
    if (event !== undefined) {
      if (typeof event === 'object' && event !== null && (event as { task?: unknown }).task === rec) {
        const { task: _task, ...rest } = event as Record<string, unknown>;
        const r = JSON.stringify(rest);
        msg = r === '{}' ? '}' : `,${r.slice(1)}`;
        tail = '1';
      } else msg = JSON.stringify(event);
    }
    const r = await (this.#redis as ScriptedRedis).smoothtaskFleetPut(
      this.keys.record(rec.id),
      recJson,
      // The stored value is { run, final, rec } in that order: what the scripts read first (HEAD).
      String(run),
      String(final),
      event === undefined ? '' : this.keys.eventChannel,
      msg,
      tail,
    );
    return r === 1;
  }

  /** Begins a run of `id`: its delivery number, a pending cancel, whether it is final already, its first start. */
  async begin(id: string): Promise<RunStart> {
    const k = this.keys;
    const r = (await (this.#redis as ScriptedRedis).smoothtaskFleetBegin(k.run(id), k.cancel(id), k.record(id), k.firstStart(id), String(Date.now()), String(7 * 86_400))) as [
      number,
      string | null,
      number,
      string | null,
    ];
    return { run: Number(r[0]), cancel: typeof r[1] === 'string' ? r[1] : undefined, final: r[2] === 1, firstStart: Number(r[3] ?? Date.now()) };
  }

  /** The record of `id`. */
  async get(id: string): Promise<TaskRecord | undefined> {
    const s = await this.#redis.get(this.keys.record(id));
    return s ? parseStored(s)?.rec : undefined;
  }

  /** Records of `ids` (missing ones left out). */
  async getMany(ids: string[]): Promise<TaskRecord[]> {
    const out: TaskRecord[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const vals = await this.#redis.mget(ids.slice(i, i + 500).map((id) => this.keys.record(id)));
      for (const v of vals) {
        const s = v ? parseStored(v) : undefined;
        if (s) out.push(s.rec);
      }
    }
    return out;
  }

  /** Ids by creation time (oldest first), at most `limit`. */
  async ids(limit = 10_000): Promise<string[]> {
    return this.#redis.zrange(this.keys.index, -limit, -1);
  }

}

function parseStored(s: string): Stored | undefined {
  try {
    const v = JSON.parse(s) as Stored;
    return v && typeof v === 'object' && v.rec && typeof v.rec.id === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Validates job data (a typed `ConfigError` naming each problem). */
export function parseJobData(data: unknown): FleetJobData {
  return validate(FleetJobDataSchema, data, 'fleet job data');
}

/** Refuses submit options the fleet cannot carry to another node. */
export function refuseLocalOnly(o: { triggers?: unknown[] | undefined; hold?: boolean | undefined }): void {
  if (o.triggers && o.triggers.length) throw new ConfigError('Triggers are functions of this process: a fleet job cannot carry them (use webhooks)', ['triggers: not supported by the fleet']);
  if (o.hold) throw new ConfigError('A fleet job cannot be held: upload its inputs somewhere every node reads, then submit', ['hold: not supported by the fleet']);
}
