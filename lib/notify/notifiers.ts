/**
 * Notifiers: a callback, an EventEmitter, a log line, and a signed, retried webhook.
 * @module
 */
import { createHash, createHmac, randomUUID } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { SmoothtaskError } from '../errors/index.js';
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

/** One webhook message. */
export interface WebhookMessage {
  /** Unique, stable across retries (receivers deduplicate on it). */
  id: string;
  /** Event type, e.g. `alert.firing`. */
  type: string;
  /** JSON payload. */
  payload: unknown;
}

/**
 * What the webhook notifier needs from a delivery mechanism. The task core's persistent
 * dispatcher (`smoothtask/webhook`) fits through a small adapter; {@link standardWebhookSender}
 * is the built-in in-memory one.
 */
export interface WebhookSender {
  /** Delivers one message (resolves once delivered or handed to a durable queue). */
  send(msg: WebhookMessage): Promise<void>;
  /** Optional cleanup. */
  close?(): void | Promise<void>;
}

/** Thrown when a webhook could not be delivered. */
export class WebhookDeliveryError extends SmoothtaskError {
  /** Last HTTP status, if any. */
  readonly status?: number;
  /** Attempts made. */
  readonly attempts: number;
  /** Creates the error with the attempts made, the last HTTP status and the last cause. */
  constructor(message: string, attempts: number, status?: number, cause?: unknown) {
    super('ERR_WEBHOOK_DELIVERY', message, { cause });
    this.attempts = attempts;
    if (status !== undefined) this.status = status;
  }
}

/** Options of {@link standardWebhookSender}. */
export interface StandardWebhookSenderOptions {
  /** Receiver URL. */
  url: string;
  /** Signing secret: `whsec_<base64>` (Standard Webhooks form) or any string (its UTF-8 bytes). */
  secret: string;
  /** Per-request timeout (default 5000 ms). */
  timeoutMs?: number;
  /** Attempts in all (default 6). */
  attempts?: number;
  /** First retry delay (default 200 ms), doubled each time with full jitter, capped by `maxBackoffMs`. */
  minBackoffMs?: number;
  /** Longest retry delay (default 10 s); a `Retry-After` header wins when longer, up to 60 s. */
  maxBackoffMs?: number;
  /** Extra headers. */
  headers?: Record<string, string>;
  /** Aborts pending retries. */
  signal?: AbortSignal;
}

/** The HMAC key of a Standard Webhooks secret. */
export function webhookKey(secret: string): Buffer {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret, 'utf8');
}

/** `v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>` as Standard Webhooks defines it. */
export function signWebhook(secret: string, id: string, timestampSec: number, body: string): string {
  return `v1,${createHmac('sha256', webhookKey(secret)).update(`${id}.${timestampSec}.${body}`).digest('base64')}`;
}

/**
 * A minimal Standard Webhooks sender: POSTs JSON with `webhook-id`, `webhook-timestamp`,
 * `webhook-signature`; retries network errors, 408, 429 and 5xx with exponential backoff and
 * jitter (honouring `Retry-After`); gives up at once on other 4xx, and for good on 410 Gone.
 * In memory only: messages pending at process exit are lost (the task core's dispatcher
 * persists them; use it through {@link WebhookSender} when durability matters).
 */
export function standardWebhookSender(opts: StandardWebhookSenderOptions): WebhookSender {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const attempts = opts.attempts ?? 6;
  const minB = opts.minBackoffMs ?? 200;
  const maxB = opts.maxBackoffMs ?? 10_000;
  let gone = false;
  return {
    async send(msg) {
      if (gone) throw new WebhookDeliveryError(`webhook ${opts.url} answered 410 Gone earlier; disabled`, 0, 410);
      const body = JSON.stringify({ type: msg.type, timestamp: new Date().toISOString(), data: msg.payload });
      let lastStatus: number | undefined;
      let lastErr: unknown;
      for (let i = 1; i <= attempts; i++) {
        opts.signal?.throwIfAborted();
        const ts = Math.floor(Date.now() / 1000);
        let retryAfterMs: number | undefined;
        try {
          const res = await fetch(opts.url, {
            method: 'POST',
            body,
            headers: {
              'content-type': 'application/json',
              'user-agent': 'smoothtask-notify',
              ...opts.headers,
              'webhook-id': msg.id,
              'webhook-timestamp': String(ts),
              'webhook-signature': signWebhook(opts.secret, msg.id, ts, body),
            },
            signal: opts.signal ? AbortSignal.any([opts.signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
            redirect: 'manual',
          });
          await res.arrayBuffer().catch(() => undefined);
          lastStatus = res.status;
          if (res.status >= 200 && res.status < 300) return;
          if (res.status === 410) {
            gone = true;
            throw new WebhookDeliveryError(`webhook ${opts.url} answered 410 Gone; disabled`, i, 410);
          }
          if (res.status !== 408 && res.status !== 429 && res.status < 500) {
            throw new WebhookDeliveryError(`webhook ${opts.url} answered ${res.status}`, i, res.status);
          }
          const ra = res.headers.get('retry-after');
          if (ra) retryAfterMs = Number.isFinite(Number(ra)) ? Number(ra) * 1000 : Math.max(0, Date.parse(ra) - Date.now());
        } catch (e) {
          if (e instanceof WebhookDeliveryError) throw e;
          if (opts.signal?.aborted) throw e;
          lastErr = e;
        }
        if (i === attempts) break;
        const backoff = Math.random() * Math.min(maxB, minB * 2 ** (i - 1));
        await sleep(Math.min(60_000, Math.max(backoff, retryAfterMs ?? 0)), undefined, opts.signal ? { signal: opts.signal } : {});
      }
      throw new WebhookDeliveryError(`webhook ${opts.url} failed after ${attempts} attempts`, attempts, lastStatus, lastErr);
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
    options?: { orderingKey?: string },
  ): Promise<string[]>;
}

/**
 * Adapts a `WebhookDispatcher` to {@link WebhookSender}: notifications become events with
 * subject `alerts` (endpoints may subscribe to it or to types `alert.*`), ordered per alert
 * group. The dispatcher assigns the `webhook-id`s and persists pending deliveries, so a restart
 * loses nothing (unlike {@link standardWebhookSender}).
 */
export function dispatcherSender(dispatcher: WebhookDispatcherLike, opts: { subject?: string } = {}): WebhookSender {
  return {
    async send(msg) {
      const data = JSON.parse(JSON.stringify(msg.payload)) as NonNullable<unknown>;
      const groupKey = (msg.payload as { groupKey?: unknown }).groupKey;
      await dispatcher.send(
        { type: msg.type, data, subject: opts.subject ?? 'alerts' },
        { orderingKey: `alerts:${typeof groupKey === 'string' ? groupKey : 'default'}` },
      );
    },
  };
}

/**
 * Options of {@link webhookNotifier}: the task core's dispatcher (preferred: durable), any
 * {@link WebhookSender}, or what {@link standardWebhookSender} needs.
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
 * (`{ dispatcher }`), a custom sender, or the built-in in-memory sender (`{ url, secret }`,
 * where the message id is derived from the group and the notification time, so retries of one
 * notification carry the same id and receivers dedupe).
 * Type: `alert.firing` or `alert.resolved`; payload: the {@link Notification}.
 */
export function webhookNotifier(opts: WebhookNotifierOptions): Notifier {
  const sender =
    'dispatcher' in opts
      ? dispatcherSender(opts.dispatcher, opts.subject !== undefined ? { subject: opts.subject } : {})
      : 'sender' in opts
        ? opts.sender
        : standardWebhookSender(opts);
  const salt = randomUUID();
  return {
    name: 'webhook',
    async notify(n) {
      const id = `msg_${createHash('sha256').update(`${salt}|${n.groupKey}|${n.timestamp}`).digest('hex').slice(0, 32)}`;
      await sender.send({ id, type: `alert.${n.status}`, payload: n });
    },
    close: () => sender.close?.(),
  };
}
