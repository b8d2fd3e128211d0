/**
 * Bridge from the task queue to the webhook dispatcher.
 * @module
 */
import type { TaskRecord, TransitionEvent } from '../task/types.js';
import type { JsonValue } from '../util/json.js';
import type { WebhookDispatcher } from './dispatcher.js';

/** The `data` of a `task.<state>` webhook event. */
export interface TaskWebhookData {
  [key: string]: JsonValue;
  /** Task id. */
  id: string;
  /** Task kind. */
  kind: string;
  /** State before. */
  from: string;
  /** State after. */
  to: string;
  /** Event applied. */
  event: string;
  /** Epoch ms of the transition. */
  at: number;
  /** Why, when known. */
  reason: string | null;
  /** Attempt number. */
  attempt: number;
  /** Exit code so far. */
  exitCode: number | null;
  /** Signal so far. */
  signal: string | null;
  /** Position of this transition in the task's history (0-based): receivers can order and dedupe by it. */
  seq: number;
  /** Task labels. */
  labels: { [key: string]: string };
  /** Who sent it (the agent's node name; `null` when the forwarder was given none). */
  source: string | null;
}

/** What `forwardTaskEvents` needs from a queue (a `TaskQueue`). */
export interface ForwardableQueue {
  /** Listens to persisted transitions. */
  onTransition(fn: (e: TransitionEvent) => void): () => void;
  /** Write-ahead hook, awaited before each transition is persisted. */
  addCommitHook(fn: (e: TransitionEvent) => unknown): () => void;
  /** Resolves once recorded tasks were loaded. */
  readonly ready: Promise<void>;
  /** A task snapshot. */
  get(id: string): Readonly<TaskRecord> | undefined;
}

/**
 * Sends every transition of `queue` as a `task.<to>` event (subject and ordering key = task
 * id), so each endpoint gets a task's transitions in order, at least once, and never one that
 * was not recorded:
 *
 * 1. before the queue persists a transition, its webhook is stored **held** (write-ahead);
 * 2. once the transition is persisted, the webhook is released for delivery;
 * 3. after a crash, held webhooks left over are checked against the recorded task history
 *    (`reconcileHeld`, run when `queue.ready` resolves): released if their transition was
 *    recorded, deleted if it never was.
 *
 * Call it right after creating the queue (before `ready`) so recovery transitions are sent
 * too. Subscribe with `dispatcher.addEndpoint({ url, subjects: [taskId] })` for one task, or
 * without `subjects` for all tasks. Returns a function that stops forwarding.
 */
export function forwardTaskEvents(
  queue: ForwardableQueue,
  dispatcher: WebhookDispatcher,
  options: {
    onError?: (err: unknown) => void;
    /** Sent as `data.source` (an agent gives its node name, so a fleet's receivers know which node sent what). */
    source?: string;
  } = {},
): () => void {
  const held = new Map<string, string[]>();
  const keyOf = (id: string, seq: number) => `${id}\u0000${seq}`;
  const hold = async (e: TransitionEvent): Promise<void> => {
    const t = e.task;
    const seq = t.history.length - 1;
    const data: TaskWebhookData = {
      id: t.id,
      kind: t.kind,
      from: e.from,
      to: e.to,
      event: e.event,
      at: e.at,
      reason: e.reason ?? null,
      attempt: t.attempt,
      exitCode: t.exitCode,
      signal: t.signal,
      seq,
      labels: { ...t.labels },
      source: options.source ?? null,
    };
    // The event's identity: the task entering this state in this attempt (the nth time, for a
    // state entered twice in one attempt). Not the history position: a fleet task run again on
    // another node after its first node died has a history of its own there, but its transitions
    // are the same events, and receivers deduplicate them by webhook-id.
    const nth = t.history.slice(0, seq).filter((h) => h.to === e.to && (h.attempt ?? 0) === t.attempt).length;
    try {
      const ids = await dispatcher.send(
        { type: `task.${e.to}`, subject: t.id, data },
        { orderingKey: t.id, hold: true, ref: { taskId: t.id, seq, at: e.at, event: e.event }, eventId: `task.${e.to}:${t.id}:${t.attempt}:${nth}` },
      );
      if (ids.length) held.set(keyOf(t.id, seq), ids);
    } catch (err) {
      options.onError?.(err);
    }
  };
  // Synchronous when no endpoint wants the event (the queue then does not wait on a promise).
  const offHook = queue.addCommitHook((e) => (dispatcher.wants({ type: `task.${e.to}`, subject: e.task.id }) ? hold(e) : undefined));
  const offListener = queue.onTransition((e) => {
    const k = keyOf(e.task.id, e.task.history.length - 1);
    const ids = held.get(k);
    if (ids) {
      held.delete(k);
      if (!dispatcher.closed) dispatcher.release(ids);
    }
  });
  void queue.ready
    .then(() =>
      dispatcher.reconcileHeld((ref) => {
        const r = ref as { taskId?: string; seq?: number; at?: number; event?: string } | undefined;
        if (!r?.taskId || r.seq === undefined) return false;
        const h = queue.get(r.taskId)?.history[r.seq];
        return h !== undefined && h.at === r.at && h.event === r.event;
      }),
    )
    .catch((err: unknown) => options.onError?.(err));
  return () => {
    offHook();
    offListener();
  };
}
