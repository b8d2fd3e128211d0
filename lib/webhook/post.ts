/**
 * One signed, address-guarded webhook request: the single place where smoothtask opens a
 * connection to a webhook receiver (used by the durable dispatcher and the in-memory sender).
 * @module
 */
import http from 'node:http';
import https from 'node:https';
import { WebhookDeliveryError } from './errors.js';
import { webhookHeaders } from './signature.js';
import { checkLiteralHost, type AddressGuard, type guardedLookup } from './ssrf.js';

/** What {@link postWebhook} needs. */
export interface PostWebhookRequest {
  /** Receiver URL (http or https). */
  url: URL;
  /** Signing secret (`whsec_<base64>`, or the base64 key alone). */
  secret: string;
  /** `webhook-id` (stable across attempts). */
  msgId: string;
  /** JSON body, sent as is. */
  body: string;
  /** The compiled network policy; IP literals are checked against it before connecting. */
  guard: AddressGuard;
  /** The guarded `lookup` (from {@link guardedLookup} over the same guard): names are checked at connect time. */
  lookup: ReturnType<typeof guardedLookup>;
  /** Agents whose `lookup` is the guarded one (keep-alive); default: a fresh connection per request. */
  agents?: { http: http.Agent; https: https.Agent };
  /** Time limit from connect to the end of the response. */
  timeoutMs: number;
  /** `User-Agent`. */
  userAgent: string;
  /** Extra headers (the Standard Webhooks headers and `content-type` always win). */
  headers?: Record<string, string>;
  /** Aborts the request. */
  signal?: AbortSignal;
}

/** What one request got: the status and the receiver's `Retry-After` in ms, if any. */
export interface PostWebhookResult {
  /** HTTP status. */
  status: number;
  /** Parsed `Retry-After`. */
  retryAfterMs?: number;
}

/**
 * POSTs one signed message. Rejects with `SsrfBlockedError` when the address policy refuses
 * the target (an IP literal before connecting, a name in the connect-time lookup), with
 * {@link WebhookDeliveryError} on timeout, or with the network error. Redirects are not
 * followed (the status is returned).
 */
export function postWebhook(r: PostWebhookRequest): Promise<PostWebhookResult> {
  const url = r.url;
  return new Promise<PostWebhookResult>((resolve, reject) => {
    checkLiteralHost(r.guard, url.hostname);
    const headers = {
      ...r.headers,
      'user-agent': r.userAgent,
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(r.body)),
      ...webhookHeaders(r.secret, r.msgId, r.body),
    };
    const ac = new AbortController();
    const onAbort = (): void => ac.abort(r.signal?.reason);
    if (r.signal?.aborted) return reject(r.signal.reason);
    r.signal?.addEventListener('abort', onAbort, { once: true });
    const done = (): void => {
      clearTimeout(timer);
      r.signal?.removeEventListener('abort', onAbort);
    };
    const timer = setTimeout(() => {
      ac.abort();
      reject(new WebhookDeliveryError(`request timed out after ${r.timeoutMs} ms`));
    }, r.timeoutMs);
    timer.unref();
    const https_ = url.protocol === 'https:';
    const lib = https_ ? https : http;
    const req = lib.request(
      url,
      {
        method: 'POST',
        headers,
        ...(r.agents ? { agent: https_ ? r.agents.https : r.agents.http } : { agent: false }),
        lookup: r.lookup as never,
        signal: ac.signal,
      },
      (res) => {
        res.on('data', () => {});
        res.on('error', (e) => {
          done();
          reject(e);
        });
        res.on('end', () => {
          done();
          const ra = parseRetryAfter(res.headers['retry-after']);
          resolve(ra === undefined ? { status: res.statusCode ?? 0 } : { status: res.statusCode ?? 0, retryAfterMs: ra });
        });
      },
    );
    req.on('error', (e) => {
      done();
      reject(e);
    });
    req.end(r.body);
  });
}

/** Parses `Retry-After` (seconds or an HTTP date) into ms. */
export function parseRetryAfter(v: string | string[] | undefined): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  if (!s) return undefined;
  if (/^\d+$/.test(s.trim())) return Number(s.trim()) * 1000;
  const t = Date.parse(s);
  return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now());
}
