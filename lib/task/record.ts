/**
 * The task record: how submit options make a new one, and how a transition makes the next
 * one (state from the transition table, timings, history). Records are deep-frozen snapshots:
 * a change is a new record. Pure; internal to `TaskQueue`.
 * @module
 */
import type { z } from 'zod';
import type { JsonValue } from '../util/json.js';
import type { SubmitOptionsSchema } from './options.js';
import { isOutcome, nextState, type TaskEvent } from './states.js';
import { RetryPolicySchema, type TaskRecord, type TransitionEvent } from './types.js';

/** Freezes `v` and everything it holds (what is frozen already is left, with what it holds). @internal */
export const deepFreeze = <T>(v: T): T => {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
};

/**
 * The record of a task just submitted (state `created`), from its validated options, its id
 * and its spec (validated JSON); `defaults` are the queue's. Not frozen yet. @internal
 */
export function newTaskRecord(
  o: z.output<typeof SubmitOptionsSchema>,
  id: string,
  spec: JsonValue,
  defaults: { defaultTimeoutMs?: number | undefined; killAfterMs: number },
): TaskRecord {
  const now = Date.now();
  return {
    id,
    kind: o.kind,
    spec,
    state: 'created',
    priority: o.priority,
    labels: o.labels,
    attempt: 0,
    ...(o.retry === undefined ? {} : { retry: RetryPolicySchema.parse(o.retry === true ? {} : o.retry) }),
    ...((o.timeoutMs ?? defaults.defaultTimeoutMs) === undefined ? {} : { timeoutMs: o.timeoutMs ?? defaults.defaultTimeoutMs }),
    killAfterMs: o.killAfterMs ?? defaults.killAfterMs,
    resources: o.resources,
    history: [],
    exitCode: null,
    signal: null,
    timings: { createdAt: now },
    outputs: [],
    artifacts: [],
    info: {},
    leases: [],
    triggers: [],
    ...(o.hold ? { held: true } : {}),
  };
}

/**
 * Applies `event` to `rec`: the next record (frozen; `patch` merged in, the state's timing
 * stamped, the transition appended to the history, `outcome` set on an outcome) and the
 * transition event listeners hear. Throws `IllegalTransitionError` for an illegal event.
 * @internal
 */
export function applyTransition(
  rec: Readonly<TaskRecord>,
  event: TaskEvent,
  reason: string | undefined,
  patch: Partial<TaskRecord>,
): { next: TaskRecord; ev: TransitionEvent } {
  const from = rec.state;
  const to = nextState(from, event, rec.id);
  const at = Date.now();
  const timings = { ...rec.timings };
  if (to === 'queued') timings.queuedAt = at;
  if (to === 'starting') timings.startedAt = at;
  if (to === 'running') timings.runningAt = at;
  if (isOutcome(to)) timings.endedAt = at;
  const next: TaskRecord = {
    ...rec,
    ...patch,
    state: to,
    timings: { ...timings, ...patch.timings },
    history: [...rec.history, { from, to, event, at, ...(reason === undefined ? {} : { reason }), attempt: patch.attempt ?? rec.attempt }],
  };
  if (isOutcome(to)) next.outcome = to;
  // What `rec` held is frozen already: freeze only what is new (the record, its timings and
  // history, the history entry, what the patch brought).
  Object.freeze(next.timings);
  Object.freeze(next.history.at(-1));
  Object.freeze(next.history);
  for (const k in patch) if (k !== 'timings') deepFreeze((patch as Record<string, unknown>)[k]);
  Object.freeze(next);
  return { next, ev: { task: next, from, to, event, at, reason } };
}
