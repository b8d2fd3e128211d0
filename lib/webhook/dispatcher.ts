/**
 * WebhookDispatcher: durable, signed, ordered, at-least-once delivery of JSON events to
 * subscribed endpoints.
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { channel } from 'node:diagnostics_channel';
import http from 'node:http';
import https from 'node:https';
import { z } from 'zod';
import { ConfigError } from '../errors/index.js';
import { validate } from '../errors/validate.js';
import type { JsonStore } from '../store/store.js';
import { StoreCorruptError } from '../store/errors.js';
import { backoffDelay } from '../util/backoff.js';
import { JsonValueSchema, type JsonValue } from '../util/json.js';
import { SsrfBlockedError, WebhookVerificationError } from './errors.js';
import { postWebhook, type PostWebhookResult } from './post.js';
import { checkWebhookSecret, generateWebhookSecret } from './signature.js';
import { checkLiteralHost, createAddressGuard, guardedLookup, NetworkPolicySchema, type AddressGuard } from './ssrf.js';

/** Channel names (`node:diagnostics_channel`). */
export const WEBHOOK_CHANNELS = {
  /** {@link DeliveryEvent} after every attempt. */
  delivery: 'smoothtask:webhook:delivery',
  /** `{ endpointId, reason }` when an endpoint is disabled (HTTP 410). */
  disabled: 'smoothtask:webhook:disabled',
} as const;
const deliveryCh = channel(WEBHOOK_CHANNELS.delivery);
const disabledCh = channel(WEBHOOK_CHANNELS.disabled);

/** A subscription: where to POST which events. */
export const EndpointSchema = z.object({
  /** Stable id (letters, digits, `._-`): adding it again updates it (keeping its secret). Default: random. */
  id: z.string().regex(/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/).max(100),
  /** http(s) URL. */
  url: z.url({ protocol: /^https?$/ }),
  /** `whsec_<base64>` signing secret. Default: generated. */
  secret: z.string().min(10),
  /** Only events whose subject is listed (e.g. one task id). Default: all subjects. */
  subjects: z.array(z.string()).optional(),
  /** Only these event types; a trailing `*` matches a prefix (`task.*`). Default: all. */
  types: z.array(z.string()).optional(),
  /** Set when the receiver answered 410 Gone. */
  disabled: z
    .object({
      /** Epoch ms. */
      at: z.number(),
      /** Why. */
      reason: z.string(),
    })
    .optional(),
  /** Epoch ms when it was added. */
  createdAt: z.number(),
});
/** A stored endpoint. */
export type Endpoint = z.infer<typeof EndpointSchema>;
/** What {@link WebhookDispatcher.addEndpoint} accepts. */
export interface EndpointInput {
  /** Stable id (letters, digits, `._-`): adding it again updates it (keeping its secret). Default: random. */
  id?: string;
  /** http(s) URL. */
  url: string;
  /** `whsec_<base64>` signing secret. Default: generated. */
  secret?: string;
  /** Only events with one of these subjects (e.g. a task id). Default: all. */
  subjects?: string[];
  /** Only these event types; a trailing `*` matches a prefix. Default: all. */
  types?: string[];
}

const MessageSchema = z.object({
  msgId: z.string(),
  seq: z.number().int(),
  endpointId: z.string(),
  orderingKey: z.string(),
  type: z.string(),
  body: z.string(),
  createdAt: z.number(),
  attempts: z.number().int(),
  nextAttemptAt: z.number(),
  lastError: z.string().optional(),
  /** Not deliverable until released (write-ahead messages). */
  held: z.boolean().optional(),
  /** Sender's reference, used to reconcile held messages after a restart. */
  ref: JsonValueSchema.optional(),
});
type Message = z.infer<typeof MessageSchema>;

/** Options of {@link WebhookDispatcher.open}. */
export const WebhookDispatcherOptionsSchema = z.strictObject({
  /** Where endpoints and pending deliveries are kept (under `<prefix>/`). */
  store: z.custom<JsonStore>((v) => v != null && typeof (v as JsonStore).update === 'function'),
  /** Store key prefix. */
  prefix: z.string().default('webhooks'),
  /** Per-request time limit (connect to end of response). */
  timeoutMs: z.number().positive().default(10_000),
  /** Backoff between attempts of one message. */
  backoff: z
    .object({
      /** First delay. */
      baseMs: z.number().min(0).default(1000),
      /** Largest delay. */
      maxMs: z.number().min(0).default(300_000),
      /** Growth per attempt. */
      factor: z.number().min(1).default(2),
    })
    .default({ baseMs: 1000, maxMs: 300_000, factor: 2 }),
  /** Upper bound applied to a receiver's `Retry-After`. */
  maxRetryAfterMs: z.number().min(0).default(3_600_000),
  /** Give up on a message after this many attempts (moved to `<prefix>/dead/`). Default: never. */
  maxAttempts: z.number().int().positive().optional(),
  /** Requests in flight at once, over all endpoints. */
  maxInFlight: z.number().int().positive().default(16),
  /** Network policy (SSRF guard). Default: public addresses only. */
  network: NetworkPolicySchema.default({ allowPrivate: false, allow: [], block: [] }),
  /** `User-Agent` header. */
  userAgent: z.string().default('smoothtask-webhooks/0.1'),
});
/** Options of {@link WebhookDispatcher.open}. */
export type WebhookDispatcherOptions = z.input<typeof WebhookDispatcherOptionsSchema>;

/** One delivery attempt, as heard by listeners. */
export interface DeliveryEvent {
  /** Endpoint. */
  endpointId: string;
  /** The `webhook-id` (stable across attempts). */
  msgId: string;
  /** Event type. */
  type: string;
  /** Ordering key. */
  orderingKey: string;
  /** 1-based attempt. */
  attempt: number;
  /** Delivered (2xx). */
  ok: boolean;
  /** HTTP status, when a response came. */
  status?: number;
  /** Why it failed. */
  error?: string;
  /** When the next attempt is due (epoch ms), if any. */
  nextAttemptAt?: number;
  /**
   * Set when the failure is permanent and the message is not retried (moved to
   * `<prefix>/dead/`): the address policy refused the target, or the endpoint's secret is unusable.
   */
  permanent?: true;
  /** Request duration. */
  durationMs: number;
}

/** Options of {@link WebhookDispatcher.send}. */
export interface SendOptions {
  /** Delivery order is kept per ordering key (default: the subject, else `default`). */
  orderingKey?: string;
  /** Store but do not deliver until `release()` (write-ahead use; see `reconcileHeld`). */
  hold?: boolean;
  /** A JSON reference stored with the message, handed to `reconcileHeld` after a restart. */
  ref?: JsonValue;
  /**
   * A stable id of the event (e.g. `task.succeeded:<task>:<attempt>:0`): each copy's `webhook-id`
   * is derived from it and the endpoint's URL instead of drawn at random, so the same event sent
   * again (after a restart, or by another agent of a fleet that ran the same task) carries the
   * same `webhook-id` and receivers deduplicate; a copy still pending here is not queued twice.
   */
  eventId?: string;
}

/** An event to send. */
export interface WebhookEvent {
  /** Event type, e.g. `task.succeeded` or `alert.firing`. */
  type: string;
  /** JSON payload, sent as `{ type, timestamp, data }`. */
  data: JsonValue;
  /** What the event is about (e.g. a task id); endpoints can subscribe to subjects. */
  subject?: string;
}

/** Key of a delivery lane (one per endpoint and ordering key). */
const laneKey = (endpointId: string, key: string): string => `${endpointId}\u0000${key}`;

interface Lane {
  endpointId: string;
  key: string;
  msgs: Array<Message & { persisted: Promise<void>; restored?: boolean }>;
  running: boolean;
  wake?: () => void;
}

const PAD = 16;

/**
 * Durable webhook delivery. Messages are written to the store before `send()` resolves and
 * removed only after a 2xx answer; a dispatcher opened over the same store after a crash or
 * restart resumes them. Per (endpoint, ordering key) delivery is strictly in order: a message
 * waits until every earlier one with the same key was delivered. Failed attempts are retried
 * with exponential backoff and full jitter, or after the receiver's `Retry-After`; 410 Gone
 * disables the endpoint (its pending messages are dropped). Each request has a time limit and
 * connects only to addresses the network policy allows (checked in the connect-time lookup).
 *
 * Generic: `send()` takes any JSON payload and an ordering key, so alerts and task events
 * share it.
 */
export class WebhookDispatcher {
  readonly #opts: z.output<typeof WebhookDispatcherOptionsSchema>;
  readonly #store: JsonStore;
  readonly #guard: AddressGuard;
  readonly #lookup: ReturnType<typeof guardedLookup>;
  readonly #endpoints = new Map<string, Endpoint>();
  readonly #lanes = new Map<string, Lane>();
  readonly #listeners = new Set<(e: DeliveryEvent) => void>();
  readonly #inflight = new Set<AbortController>();
  readonly #laneRuns = new Set<Promise<void>>();
  #slots: number;
  #slotWaiters: Array<() => void> = [];
  #seq = 0;
  #closed = false;
  readonly #agents: { http: http.Agent; https: https.Agent };

  private constructor(opts: z.output<typeof WebhookDispatcherOptionsSchema>) {
    this.#opts = opts;
    this.#store = opts.store;
    this.#guard = createAddressGuard(opts.network);
    this.#lookup = guardedLookup(this.#guard);
    this.#slots = opts.maxInFlight;
    // The lookup is on the agent so every connection the agent opens goes through the guard.
    this.#agents = {
      http: new http.Agent({ keepAlive: true, lookup: this.#lookup } as http.AgentOptions),
      https: new https.Agent({ keepAlive: true, lookup: this.#lookup } as https.AgentOptions),
    };
  }

  /** Opens a dispatcher over a store and resumes pending deliveries. */
  static async open(options: WebhookDispatcherOptions): Promise<WebhookDispatcher> {
    const d = new WebhookDispatcher(validate(WebhookDispatcherOptionsSchema, options, 'webhook dispatcher options'));
    await d.#load();
    return d;
  }

  /**
   * Subscribes an endpoint (persisted). Returns it, with its secret. Throws `ConfigError` for
   * a bad URL or secret, and `SsrfBlockedError` when the URL's host is an IP literal the
   * network policy refuses (a host name is checked at each connect instead).
   *
   * With an `id`, it is an upsert: a service that calls it at every start keeps one endpoint,
   * and the endpoint keeps its secret (unless `secret` is given) and its creation time, so
   * receivers keep verifying. Without an `id`, every call adds a new endpoint.
   */
  async addEndpoint(input: EndpointInput): Promise<Endpoint> {
    this.#check();
    const existing = input.id !== undefined ? this.#endpoints.get(input.id) : undefined;
    const ep = validate(
      EndpointSchema,
      {
        ...input,
        id: input.id ?? `ep_${randomBytes(6).toString('hex')}`,
        secret: input.secret ?? existing?.secret ?? generateWebhookSecret(),
        createdAt: existing?.createdAt ?? Date.now(),
      },
      'webhook endpoint',
    );
    checkWebhookSecret(ep.secret, 'webhook endpoint secret');
    checkLiteralHost(this.#guard, new URL(ep.url).hostname);
    await this.#store.write(this.#key('endpoints', ep.id), EndpointSchema, ep);
    this.#endpoints.set(ep.id, ep);
    return ep;
  }

  /** Unsubscribes an endpoint and drops its pending messages. */
  async removeEndpoint(id: string): Promise<boolean> {
    this.#check();
    const had = this.#endpoints.delete(id);
    await this.#dropPending(id);
    await this.#store.delete(this.#key('endpoints', id));
    return had;
  }

  /** Subscribed endpoints (secrets included). */
  endpoints(): Endpoint[] {
    return [...this.#endpoints.values()];
  }

  /** Messages not yet delivered, per endpoint. */
  pending(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const l of this.#lanes.values()) out[l.endpointId] = (out[l.endpointId] ?? 0) + l.msgs.length;
    return out;
  }

  /** Listens to delivery attempts. Returns an unsubscribe function. */
  onDelivery(fn: (e: DeliveryEvent) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /**
   * Whether some enabled endpoint would receive an event of this type and subject now: a
   * sender with costly event data can skip building it when nothing listens.
   */
  wants(event: Pick<WebhookEvent, 'type' | 'subject'>): boolean {
    if (this.closed) return false;
    for (const ep of this.#endpoints.values()) if (!ep.disabled && matches(ep, event)) return true;
    return false;
  }

  /**
   * Queues an event for every matching, enabled endpoint. The order of `send()` calls is the
   * delivery order per ordering key (default: the subject, else `default`). Resolves with the
   * message ids once every copy is durably stored.
   */
  async send(event: WebhookEvent, options: SendOptions = {}): Promise<string[]> {
    this.#check();
    if (!event || typeof event.type !== 'string' || !event.type) throw new ConfigError('webhook event needs a type');
    // Nothing to deliver (no endpoint, or none that wants this event): no validation walk of
    // the data and no JSON (an agent forwards every task transition, with or without endpoints).
    if (!this.wants(event)) return [];
    validate(JsonValueSchema, event.data, 'webhook event data');
    const key = options.orderingKey ?? event.subject ?? 'default';
    const now = Date.now();
    const body = JSON.stringify({ type: event.type, timestamp: new Date(now).toISOString(), data: event.data });
    const writes: Promise<void>[] = [];
    const ids: string[] = [];
    for (const ep of this.#endpoints.values()) {
      if (ep.disabled || !matches(ep, event)) continue;
      const msgId =
        options.eventId === undefined ? `msg_${randomBytes(12).toString('hex')}` : `msg_${createHash('sha256').update(`${options.eventId}\u0000${ep.url}`).digest('hex').slice(0, 24)}`;
      if (options.eventId !== undefined && this.#lanes.get(laneKey(ep.id, key))?.msgs.some((m) => m.msgId === msgId)) {
        ids.push(msgId);
        continue;
      }
      // seq is taken synchronously, so the call order is the delivery order.
      const msg: Message = {
        msgId,
        seq: this.#seq++,
        endpointId: ep.id,
        orderingKey: key,
        type: event.type,
        body,
        createdAt: now,
        attempts: 0,
        nextAttemptAt: now,
        ...(options.hold ? { held: true } : {}),
        ...(options.ref === undefined ? {} : { ref: options.ref }),
      };
      const persisted = this.#store.write(this.#msgKey(msg), MessageSchema, msg);
      persisted.catch(() => {});
      this.#laneFor(ep.id, key).msgs.push({ ...msg, persisted });
      writes.push(persisted);
      ids.push(msg.msgId);
    }
    await Promise.all(writes);
    for (const l of this.#lanes.values()) this.#kick(l);
    return ids;
  }

  /**
   * Releases held messages (sent with `hold: true`) for delivery. In memory only: after a
   * restart, held messages wait for {@link WebhookDispatcher.reconcileHeld}.
   */
  release(msgIds: string[]): void {
    const ids = new Set(msgIds);
    for (const l of this.#lanes.values()) {
      let hit = false;
      for (const m of l.msgs) if (m.held && ids.has(m.msgId)) ((m.held = false), (hit = true));
      if (hit) {
        l.wake?.();
        this.#kick(l);
      }
    }
  }

  /**
   * Decides the fate of messages still held from before a restart: `keep(ref)` true releases
   * one, false deletes it (its cause was never recorded). Returns how many were kept / dropped.
   */
  async reconcileHeld(keep: (ref: JsonValue | undefined, msg: { msgId: string; type: string; orderingKey: string }) => boolean | Promise<boolean>): Promise<{ kept: number; dropped: number }> {
    let kept = 0;
    let dropped = 0;
    for (const l of [...this.#lanes.values()]) {
      for (const m of [...l.msgs]) {
        if (!m.held || !m.restored) continue;
        if (await keep(m.ref, { msgId: m.msgId, type: m.type, orderingKey: m.orderingKey })) {
          m.held = false;
          kept++;
        } else {
          l.msgs.splice(l.msgs.indexOf(m), 1);
          await this.#store.delete(this.#msgKey(m)).catch(() => {});
          dropped++;
        }
      }
      l.wake?.();
      this.#kick(l);
    }
    return { kept, dropped };
  }

  /** Waits until nothing is pending (or the timeout passes). Resolves `true` when drained. */
  async drain(timeoutMs = 30_000): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if ([...this.#lanes.values()].every((l) => l.msgs.length === 0)) return true;
      await new Promise((r) => setTimeout(r, 10).unref());
    }
    return false;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Stops delivering (requests in flight are aborted; their messages stay stored for the next start). Idempotent. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      for (const ac of this.#inflight) ac.abort();
      for (const l of this.#lanes.values()) l.wake?.();
      for (const w of this.#slotWaiters.splice(0)) w();
    }
    await Promise.allSettled([...this.#laneRuns]);
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }

  /** Same as `close()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ------------------------------------------------------------------ internals

  #check(): void {
    if (this.#closed) throw new ConfigError('The webhook dispatcher is closed');
  }

  #key(kind: 'endpoints' | 'outbox' | 'dead', id: string): string {
    return `${this.#opts.prefix}/${kind}/${id}`;
  }

  #msgKey(m: Pick<Message, 'endpointId' | 'seq'>, kind: 'outbox' | 'dead' = 'outbox'): string {
    return `${this.#opts.prefix}/${kind}/${m.endpointId}/${String(m.seq).padStart(PAD, '0')}`;
  }

  #laneFor(endpointId: string, key: string): Lane {
    const id = laneKey(endpointId, key);
    let l = this.#lanes.get(id);
    if (!l) {
      l = { endpointId, key, msgs: [], running: false };
      this.#lanes.set(id, l);
    }
    return l;
  }

  #kick(l: Lane): void {
    if (l.running || this.#closed || l.msgs.length === 0) return;
    l.running = true;
    const run = this.#runLane(l)
      .catch(() => {})
      .finally(() => {
        l.running = false;
        this.#laneRuns.delete(run);
        if (l.msgs.length === 0) this.#lanes.delete(laneKey(l.endpointId, l.key));
        else this.#kick(l);
      });
    this.#laneRuns.add(run);
  }

  async #sleep(l: Lane, ms: number): Promise<void> {
    if (ms <= 0) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        l.wake = undefined;
        resolve();
      }, ms);
      t.unref();
      l.wake = () => {
        clearTimeout(t);
        l.wake = undefined;
        resolve();
      };
    });
  }

  async #acquireSlot(): Promise<void> {
    while (this.#slots <= 0) {
      if (this.#closed) return;
      await new Promise<void>((r) => this.#slotWaiters.push(r));
    }
    this.#slots--;
  }

  #releaseSlot(): void {
    this.#slots++;
    this.#slotWaiters.shift()?.();
  }

  async #runLane(l: Lane): Promise<void> {
    while (!this.#closed && l.msgs.length > 0) {
      const m = l.msgs[0]!;
      try {
        await m.persisted;
      } catch {
        // Never stored: send() already rejected to its caller; do not deliver what a restart would not know.
        l.msgs.shift();
        continue;
      }
      const ep = this.#endpoints.get(m.endpointId);
      if (!ep || ep.disabled) {
        l.msgs.length = 0;
        return;
      }
      if (m.held) {
        // In order: nothing behind a held message goes first. release() wakes us.
        await this.#sleep(l, 60_000);
        continue;
      }
      await this.#sleep(l, m.nextAttemptAt - Date.now());
      if (this.#closed) return;
      if (m.held) continue;
      await this.#acquireSlot();
      if (this.#closed) {
        this.#releaseSlot();
        return;
      }
      const attempt = m.attempts + 1;
      const t0 = performance.now();
      let res: PostWebhookResult | undefined;
      let err: unknown;
      try {
        res = await this.#post(ep, m);
      } catch (e) {
        err = e;
      } finally {
        this.#releaseSlot();
      }
      if (this.#closed && !res) return; // aborted by close: stays stored for the next start
      const durationMs = performance.now() - t0;
      const base: DeliveryEvent = { endpointId: ep.id, msgId: m.msgId, type: m.type, orderingKey: m.orderingKey, attempt, ok: false, durationMs };
      if (res && res.status >= 200 && res.status < 300) {
        l.msgs.shift();
        await this.#store.delete(this.#msgKey(m)).catch(() => {});
        this.#emit({ ...base, ok: true, status: res.status });
        continue;
      }
      if (res && res.status === 410) {
        this.#emit({ ...base, status: 410, error: 'endpoint gone (410): disabled' });
        await this.#disable(ep, 'receiver answered 410 Gone');
        return;
      }
      const error =
        res !== undefined ? `HTTP ${res.status}` : err instanceof Error ? err.message : String(err);
      // Permanent: the policy refused the address (it will refuse it again), or the secret cannot sign.
      const permanent = !res && (err instanceof SsrfBlockedError || err instanceof WebhookVerificationError);
      if (permanent || (this.#opts.maxAttempts !== undefined && attempt >= this.#opts.maxAttempts)) {
        l.msgs.shift();
        const reason = permanent ? `${error}; permanent, not retried` : `${error}; gave up after ${attempt} attempts`;
        const dead = { ...m, attempts: attempt, lastError: reason };
        delete (dead as { persisted?: unknown }).persisted;
        delete (dead as { restored?: unknown }).restored;
        await this.#store.write(this.#msgKey(m, 'dead'), MessageSchema, dead).catch(() => {});
        await this.#store.delete(this.#msgKey(m)).catch(() => {});
        this.#emit({ ...base, ...(res ? { status: res.status } : {}), error: reason, ...(permanent ? { permanent: true as const } : {}) });
        continue;
      }
      let delay = backoffDelay(attempt - 1, this.#opts.backoff);
      if (res?.retryAfterMs !== undefined) delay = Math.max(delay, Math.min(res.retryAfterMs, this.#opts.maxRetryAfterMs));
      m.attempts = attempt;
      m.nextAttemptAt = Date.now() + delay;
      m.lastError = error;
      const { persisted: _p, restored: _r, ...stored } = m;
      await this.#store.write(this.#msgKey(m), MessageSchema, stored).catch(() => {});
      this.#emit({ ...base, ...(res ? { status: res.status } : {}), error, nextAttemptAt: m.nextAttemptAt });
    }
  }

  #emit(e: DeliveryEvent): void {
    if (deliveryCh.hasSubscribers) deliveryCh.publish(e);
    for (const fn of this.#listeners) {
      try {
        fn(e);
      } catch {
        /* listeners must not break delivery */
      }
    }
  }

  async #disable(ep: Endpoint, reason: string): Promise<void> {
    const next: Endpoint = { ...ep, disabled: { at: Date.now(), reason } };
    this.#endpoints.set(ep.id, next);
    await this.#store.write(this.#key('endpoints', ep.id), EndpointSchema, next).catch(() => {});
    await this.#dropPending(ep.id);
    if (disabledCh.hasSubscribers) disabledCh.publish({ endpointId: ep.id, reason });
  }

  async #dropPending(endpointId: string): Promise<void> {
    for (const l of this.#lanes.values()) if (l.endpointId === endpointId) l.msgs.length = 0;
    for (const k of await this.#store.list(`${this.#opts.prefix}/outbox/${endpointId}`)) await this.#store.delete(k).catch(() => {});
  }

  async #post(ep: Endpoint, m: Message): Promise<PostWebhookResult> {
    const ac = new AbortController();
    this.#inflight.add(ac);
    try {
      return await postWebhook({
        url: new URL(ep.url),
        secret: ep.secret,
        msgId: m.msgId,
        body: m.body,
        guard: this.#guard,
        lookup: this.#lookup,
        agents: this.#agents,
        timeoutMs: this.#opts.timeoutMs,
        userAgent: this.#opts.userAgent,
        signal: ac.signal,
      });
    } finally {
      this.#inflight.delete(ac);
    }
  }

  async #load(): Promise<void> {
    const p = this.#opts.prefix;
    for (const k of await this.#store.list(`${p}/endpoints`)) {
      const ep = await this.#store.read(k, EndpointSchema).catch((e: unknown) => {
        if (e instanceof StoreCorruptError) return undefined;
        throw e;
      });
      if (ep) this.#endpoints.set(ep.id, ep);
    }
    const msgs: Message[] = [];
    for (const ep of this.#endpoints.values()) {
      for (const k of await this.#store.list(`${p}/outbox/${ep.id}`)) {
        const m = await this.#store.read(k, MessageSchema).catch((e: unknown) => {
          if (e instanceof StoreCorruptError) return undefined;
          throw e;
        });
        if (m) msgs.push(m);
      }
    }
    msgs.sort((a, b) => a.seq - b.seq);
    for (const m of msgs) {
      this.#seq = Math.max(this.#seq, m.seq + 1);
      this.#laneFor(m.endpointId, m.orderingKey).msgs.push({ ...m, persisted: Promise.resolve(), restored: true });
    }
    for (const l of this.#lanes.values()) this.#kick(l);
  }
}

function matches(ep: Endpoint, e: Pick<WebhookEvent, 'type' | 'subject'>): boolean {
  if (ep.subjects && (e.subject === undefined || !ep.subjects.includes(e.subject))) return false;
  if (ep.types && !ep.types.some((t) => (t.endsWith('*') ? e.type.startsWith(t.slice(0, -1)) : t === e.type))) return false;
  return true;
}
