/**
 * Bridge from the task queue to the webhook dispatcher.
 * @module
 */
import type { TransitionEvent } from '../task/types.js';
import type { JsonValue } from '../task/types.js';
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
}

/**
 * Sends every persisted transition of `queue` as a `task.<to>` event (subject and ordering
 * key = task id), so each endpoint gets a task's transitions in order, at least once.
 * Subscribe with `dispatcher.addEndpoint({ url, subjects: [taskId] })` for one task, or
 * without `subjects` for all tasks. Returns an unsubscribe function.
 *
 * A crash between a transition's persistence and its webhook's enqueue loses that webhook
 * (the store has the transition); the window is one store write.
 */
export function forwardTaskEvents(
  queue: { onTransition(fn: (e: TransitionEvent) => void): () => void },
  dispatcher: WebhookDispatcher,
  options: { onError?: (err: unknown) => void } = {},
): () => void {
  return queue.onTransition((e) => {
    const t = e.task;
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
      seq: t.history.length - 1,
      labels: { ...t.labels },
    };
    if (dispatcher.closed) return;
    dispatcher.send({ type: `task.${e.to}`, subject: t.id, data }, { orderingKey: t.id }).catch((err: unknown) => options.onError?.(err));
  });
}
