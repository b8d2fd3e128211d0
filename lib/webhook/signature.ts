/**
 * Standard Webhooks signing and verification (https://www.standardwebhooks.com):
 * headers `webhook-id`, `webhook-timestamp` (unix seconds) and
 * `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, where the key
 * is the base64-decoded part of a `whsec_<base64>` secret.
 * @module
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ConfigError } from '../errors/index.js';
import { WebhookVerificationError } from './errors.js';

const PREFIX = 'whsec_';

/** A new random secret in the `whsec_<base64>` convention (24 random bytes). */
export function generateWebhookSecret(): string {
  return PREFIX + randomBytes(24).toString('base64');
}

/**
 * The HMAC key of a secret, by the Standard Webhooks rule: the base64-decoded part after an
 * optional `whsec_` prefix (so `whsec_<b64>` and `<b64>` sign alike). At least 16 bytes, or
 * {@link WebhookVerificationError}.
 */
export function webhookKey(secret: string): Buffer {
  const b64 = secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret;
  const key = Buffer.from(b64, 'base64');
  if (key.length < 16) throw new WebhookVerificationError('Webhook secret must be whsec_<base64> of at least 16 bytes');
  return key;
}

/**
 * Checks a signing secret given in options: a `ConfigError` naming `what` if it is not
 * `whsec_<base64>` (or bare base64) of at least 16 bytes.
 * @internal
 */
export function checkWebhookSecret(secret: unknown, what: string): void {
  const ok = typeof secret === 'string' && /^(whsec_)?[A-Za-z0-9+/]+={0,2}$/.test(secret) && Buffer.from(secret.replace(/^whsec_/, ''), 'base64').length >= 16;
  if (!ok) {
    throw new ConfigError(`Invalid ${what}: a webhook secret is whsec_<base64> (or the base64 alone) of at least 16 bytes; generateWebhookSecret() makes one`, [
      `${what}: not whsec_<base64> of at least 16 bytes`,
    ]);
  }
}

/** The `v1,<base64>` signature of one message. */
export function signWebhook(secret: string, id: string, timestamp: number, body: string | Uint8Array): string {
  const h = createHmac('sha256', webhookKey(secret));
  h.update(`${id}.${timestamp}.`);
  h.update(body);
  return `v1,${h.digest('base64')}`;
}

/** The three Standard Webhooks headers for one message. */
export function webhookHeaders(secret: string, id: string, body: string | Uint8Array, timestamp = Math.floor(Date.now() / 1000)): Record<string, string> {
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signWebhook(secret, id, timestamp, body) };
}

/** Options of {@link verifyWebhook}. */
export interface VerifyWebhookOptions {
  /** Allowed clock skew / replay window in seconds (default 300). */
  toleranceSec?: number;
  /** "Now" in unix seconds (tests). */
  now?: number;
}

/** What {@link verifyWebhook} returns for a valid request. */
export interface VerifiedWebhook<T = unknown> {
  /** The `webhook-id` (stable across retries: use it to drop duplicates). */
  id: string;
  /** The `webhook-timestamp` (unix seconds). */
  timestamp: number;
  /** The parsed JSON body. */
  payload: T;
}

/**
 * Verifies a received webhook: for receivers. Pass the raw body bytes exactly as received
 * and the request headers (Node's lower-cased `IncomingHttpHeaders` or a `Headers`). Accepts
 * several secrets (rotation) and several signatures in the header. Throws
 * {@link WebhookVerificationError}; returns the parsed payload.
 *
 * @example
 * ```ts
 * const { id, payload } = verifyWebhook(secret, req.headers, rawBody);
 * ```
 */
export function verifyWebhook<T = unknown>(
  secret: string | string[],
  headers: Record<string, string | string[] | undefined> | Headers,
  body: string | Uint8Array,
  options: VerifyWebhookOptions = {},
): VerifiedWebhook<T> {
  const get = (n: string): string | undefined => {
    if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(n) ?? undefined;
    const v = (headers as Record<string, string | string[] | undefined>)[n];
    return Array.isArray(v) ? v[0] : v;
  };
  const id = get('webhook-id');
  const ts = get('webhook-timestamp');
  const sig = get('webhook-signature');
  if (!id || !ts || !sig) throw new WebhookVerificationError('Missing webhook-id, webhook-timestamp or webhook-signature header');
  const timestamp = Number(ts);
  if (!Number.isInteger(timestamp)) throw new WebhookVerificationError('Invalid webhook-timestamp');
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const tol = options.toleranceSec ?? 300;
  if (Math.abs(now - timestamp) > tol) throw new WebhookVerificationError(`webhook-timestamp outside the ${tol} s tolerance`);
  const given = sig
    .split(' ')
    .filter((s) => s.startsWith('v1,'))
    .map((s) => Buffer.from(s.slice(3), 'base64'));
  let ok = false;
  for (const s of Array.isArray(secret) ? secret : [secret]) {
    const expected = Buffer.from(signWebhook(s, id, timestamp, body).slice(3), 'base64');
    for (const g of given) if (g.length === expected.length && timingSafeEqual(g, expected)) ok = true;
  }
  if (!ok) throw new WebhookVerificationError('No matching webhook signature');
  let payload: T;
  try {
    payload = JSON.parse(typeof body === 'string' ? body : Buffer.from(body).toString('utf8')) as T;
  } catch {
    throw new WebhookVerificationError('Webhook body is not JSON');
  }
  return { id, timestamp, payload };
}
