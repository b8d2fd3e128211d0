/**
 * Notifiers: a callback, an EventEmitter, a log line, and a signed webhook. Webhooks go
 * through `smoothtask/webhook` (its signing, address policy, request code and error class):
 * either its durable `WebhookDispatcher` or its in-memory `standardWebhookSender`.
 * @module
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { EventEmitter } from 'node:events';
import { standardWebhookSender, type StandardWebhookSenderOptions, type WebhookSender } from '../webhook/sender.js';
import type { Notification } from './dispatcher.js';
import type { Notifier } from './engine.js';

/** Calls `fn` with every notification. */
export function callbackNotifier(fn: (n: Notification) => void | Promise<void>, name = 'callback'): Notifier {
  return { name, notify: fn };
}

/** Emits every notification on `emitter` as `event` (default `'notification'`). */
export function emitterNotifier(emitter: EventEmitter, event = 'notification'): Notifier {
  return { name: 'emitter', notify: (n) => void emitter.emit(event, n) };
}

/** Options of {@link logNotifier}. */
export interface LogNotifierOptions {
  /** Where lines go (default: `process.stderr`). */
  write?: (line: string) => void;
  /** `text` (default): one human line per alert; `json`: one JSON object per notification. */
  format?: 'text' | 'json';
}

/** Formats one line per alert: `[FIRING] HighCpu {comm="burn",pid="42"} value=0.98 summary="…"`. */
export function formatNotificationLines(n: Notification): string[] {
  return n.alerts.map((a) => {
    const labels = Object.entries(a.labels)
      .filter(([k]) => k !== 'alertname')
      .sort(([x], [y]) => x.localeCompare(y))
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(',');
    const ann = Object.entries(a.annotations)
      .map(([k, v]) => ` ${k}=${JSON.stringify(v)}`)
      .join('');
    return `[${a.status.toUpperCase()}] ${a.labels.alertname ?? '?'} {${labels}} value=${Number(a.value.toPrecision(6))}${ann}`;
  });
}

/** Writes notifications as log lines. */
export function logNotifier(opts: LogNotifierOptions = {}): Notifier {
  const write = opts.write ?? ((line: string) => void process.stderr.write(`${line}\n`));
  return {
    name: 'log',
    notify(n) {
      if (opts.format === 'json') write(JSON.stringify(n));
      else for (const l of formatNotificationLines(n)) write(l);
    },
  };
}

/**
 * The part of the task core's `WebhookDispatcher` (`smoothtask/webhook`) the notifier uses:
 * durable (store-backed), ordered, at-least-once, signed delivery to its registered endpoints.
 */
export interface WebhookDispatcherLike {
  /** Queues an event for every matching endpoint; resolves once durably stored. */
  send(
    event: { type: string; data: NonNullable<unknown>; subject?: string },
    options?: { orderingKey?: string; eventId?: string },
  ): Promise<string[]>;
}

/**
 * Adapts a `WebhookDispatcher` to `WebhookSender`: notifications become events with
 * subject `alerts` (endpoints may subscribe to it or to types `alert.*`), ordered per alert
 * group. The dispatcher assigns the `webhook-id`s and persists pending deliveries, so a restart
 * loses nothing (unlike the in-memory `standardWebhookSender`).
 */
export function dispatcherSender(dispatcher: WebhookDispatcherLike, opts: { subject?: string } = {}): WebhookSender {
  return {
    async send(msg) {
      const data = JSON.parse(JSON.stringify(msg.payload)) as NonNullable<unknown>;
      const groupKey = (msg.payload as { groupKey?: unknown }).groupKey;
      await dispatcher.send(
        { type: msg.type, data, subject: opts.subject ?? 'alerts' },
        { orderingKey: `alerts:${typeof groupKey === 'string' ? groupKey : 'default'}`, eventId: msg.id },
      );
    },
  };
}

/**
 * Options of {@link webhookNotifier}: the task core's dispatcher (preferred: durable), any
 * `WebhookSender`, or what `standardWebhookSender` (smoothtask/webhook) needs.
 */
export type WebhookNotifierOptions =
  | {
      /** The task core's `WebhookDispatcher` (smoothtask/webhook). */
      dispatcher: WebhookDispatcherLike;
      /** Event subject (default `alerts`). */
      subject?: string;
    }
  | {
      /** A custom delivery mechanism. */
      sender: WebhookSender;
    }
  | StandardWebhookSenderOptions;

/**
 * Posts each notification as a signed webhook: through the task core's durable dispatcher
 * (`{ dispatcher }`), a custom sender, or smoothtask/webhook's in-memory sender
 * (`{ url, secret, network? }`: same signing, address policy and errors as the dispatcher;
 * the message id is derived from the group and the notification time, so retries of one
 * notification carry the same id and receivers dedupe).
 * Type: `alert.firing` or `alert.resolved`; payload: the {@link Notification}.
 *
 * `source` (default the host name) is part of each message id: the same notification sent
 * again by this node keeps its id, two nodes of a fleet never share one. When given, it is also
 * sent in the payload (`source`), so receivers know which node the alert is about.
 *
 * Throws `ConfigError` for a bad URL or secret, `SsrfBlockedError` for an IP-literal URL the
 * address policy refuses.
 */
export function webhookNotifier(opts: WebhookNotifierOptions & { source?: string }): Notifier {
  const sender =
    'dispatcher' in opts
      ? dispatcherSender(opts.dispatcher, opts.subject !== undefined ? { subject: opts.subject } : {})
      : 'sender' in opts
        ? opts.sender
        : standardWebhookSender(opts);
  // Who sends: part of each id, so two nodes' alerts never share one, while one node's
  // notification sent again (a retry, a restart) keeps its id.
  const source = opts.source ?? hostname();
  return {
    name: 'webhook',
    async notify(n) {
      const id = `msg_${createHash('sha256').update(`${source}|${n.groupKey}|${n.timestamp}`).digest('hex').slice(0, 32)}`;
      await sender.send({ id, type: `alert.${n.status}`, payload: opts.source === undefined ? n : { ...n, source } });
    },
    close: () => sender.close?.(),
  };
}
