/**
 * An in-memory webhook sender: signed, address-guarded, retried delivery of one message at a
 * time to one URL, for callers without a store (the notify module's `webhookNotifier({ url })`).
 * Same signing, address policy, request code and error classes as the durable
 * `WebhookDispatcher`; only the queue is in memory.
 * @module
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError } from '../errors/index.js';
import { backoffDelay } from '../util/backoff.js';
import { SsrfBlockedError, WebhookDeliveryError, WebhookVerificationError } from './errors.js';
import { postWebhook } from './post.js';
import { checkWebhookSecret } from './signature.js';
import { checkLiteralHost, createAddressGuard, guardedLookup, type NetworkPolicy } from './ssrf.js';

/** One webhook message. */
export interface WebhookMessage {
  /** `webhook-id`: unique, stable across retries (receivers deduplicate on it). */
  id: string;
  /** Event type, e.g. `alert.firing`. */
  type: string;
  /** JSON payload, sent as `{ type, timestamp, data }`. */
  payload: unknown;
}

/** Something that delivers {@link WebhookMessage}s (the in-memory sender, or an adapter over the dispatcher). */
export interface WebhookSender {
  /** Delivers one message (resolves once delivered or handed to a durable queue). */
  send(msg: WebhookMessage): Promise<void>;
  /** Optional cleanup. */
  close?(): void | Promise<void>;
}

/** Options of {@link standardWebhookSender}. */
export interface StandardWebhookSenderOptions {
  /** Receiver URL (http or https). */
  url: string;
  /** Signing secret: `whsec_<base64>` or the base64 alone (same key either way), at least 16 bytes. */
  secret: string;
  /** Address policy (default: public addresses only), as for the dispatcher. */
  network?: NetworkPolicy;
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
  /** `User-Agent` (default `smoothtask-webhooks/0.1`). */
  userAgent?: string;
}

/**
 * A Standard Webhooks sender kept in memory: POSTs JSON with `webhook-id`,
 * `webhook-timestamp`, `webhook-signature`; retries network errors, 408, 429 and 5xx with
 * exponential backoff and full jitter (honouring `Retry-After`); gives up at once on other
 * 4xx, and for good on 410 Gone. A target refused by the address policy fails at once with
 * `SsrfBlockedError` (permanent: never retried). Messages pending at process exit are lost;
 * use the `WebhookDispatcher` when durability matters.
 *
 * Throws `ConfigError` for a bad URL or secret, or `SsrfBlockedError` for an IP-literal URL the
 * policy refuses.
 */
export function standardWebhookSender(opts: StandardWebhookSenderOptions): WebhookSender {
  let url: URL;
  try {
    url = new URL(opts.url);
  } catch (e) {
    throw new ConfigError(`Invalid webhook url: ${JSON.stringify(opts.url)}`, ['url: not a URL'], { cause: e });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`Invalid webhook url ${opts.url}: http or https only`, ['url: protocol']);
  checkWebhookSecret(opts.secret, 'webhook secret');
  const guard = createAddressGuard(opts.network);
  const lookup = guardedLookup(guard);
  const timeoutMs = opts.timeoutMs ?? 5000;
  const attempts = opts.attempts ?? 6;
  const backoff = { baseMs: opts.minBackoffMs ?? 200, maxMs: opts.maxBackoffMs ?? 10_000 };
  const userAgent = opts.userAgent ?? 'smoothtask-webhooks/0.1';
  // A literal outside the policy is refused now, not at the first send.
  checkLiteralHost(guard, url.hostname);
  let gone = false;
  return {
    async send(msg) {
      if (gone) throw new WebhookDeliveryError(`webhook ${opts.url} answered 410 Gone earlier; disabled`, 410, { attempts: 0 });
      const body = JSON.stringify({ type: msg.type, timestamp: new Date().toISOString(), data: msg.payload });
      let lastStatus: number | undefined;
      let lastErr: unknown;
      for (let i = 1; i <= attempts; i++) {
        opts.signal?.throwIfAborted();
        let retryAfterMs: number | undefined;
        try {
          const res = await postWebhook({
            url,
            secret: opts.secret,
            msgId: msg.id,
            body,
            guard,
            lookup,
            timeoutMs,
            userAgent,
            ...(opts.headers ? { headers: opts.headers } : {}),
            ...(opts.signal ? { signal: opts.signal } : {}),
          });
          lastStatus = res.status;
          if (res.status >= 200 && res.status < 300) return;
          if (res.status === 410) {
            gone = true;
            throw new WebhookDeliveryError(`webhook ${opts.url} answered 410 Gone; disabled`, 410, { attempts: i });
          }
          if (res.status !== 408 && res.status !== 429 && res.status < 500) {
            throw new WebhookDeliveryError(`webhook ${opts.url} answered ${res.status}`, res.status, { attempts: i });
          }
          retryAfterMs = res.retryAfterMs;
        } catch (e) {
          // Permanent: a delivery error decided above, or the policy (or the secret) refusing the target.
          if (e instanceof WebhookDeliveryError && e.attempts !== undefined) throw e;
          if (e instanceof SsrfBlockedError || e instanceof WebhookVerificationError) throw e;
          if (opts.signal?.aborted) throw e;
          lastErr = e;
        }
        if (i === attempts) break;
        const delay = Math.min(60_000, Math.max(backoffDelay(i - 1, backoff), retryAfterMs ?? 0));
        await sleep(delay, undefined, opts.signal ? { signal: opts.signal } : {});
      }
      throw new WebhookDeliveryError(`webhook ${opts.url} failed after ${attempts} attempts`, lastStatus, { attempts, cause: lastErr });
    },
  };
}
