import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JsonStore, StoreTaskPersistence } from 'smoothtask/store';
import { TaskQueue, type TaskRecord } from 'smoothtask/task';
import {
  SsrfBlockedError,
  WebhookDispatcher,
  WebhookVerificationError,
  createAddressGuard,
  forwardTaskEvents,
  generateWebhookSecret,
  parseRetryAfter,
  signWebhook,
  verifyWebhook,
  webhookHeaders,
  type DeliveryEvent,
  type TaskWebhookData,
} from 'smoothtask/webhook';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'st-webhook-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

type Handler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => void;
/** A loopback receiver that can go down and come back on the same port. */
class Receiver {
  server: Server | undefined;
  port = 0;
  constructor(public handler: Handler) {}
  async up(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.handler(req, Buffer.concat(chunks), res));
    });
    await new Promise<void>((r) => this.server!.listen(this.port, '127.0.0.1', () => r()));
    this.port = (this.server.address() as AddressInfo).port;
  }
  async down(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }
}

const fast = { baseMs: 20, maxMs: 200, factor: 2 };
const loopbackOnly = { allowPrivate: false, allow: ['127.0.0.1/32'] };

describe('Standard Webhooks signatures', () => {
  it('matches the Standard Webhooks reference vector', () => {
    const sig = signWebhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}');
    expect(sig).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it('verifies, and rejects tampering, wrong secrets and stale timestamps', () => {
    const secret = generateWebhookSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    const body = JSON.stringify({ type: 't', data: { a: 1 } });
    const h = webhookHeaders(secret, 'msg_1', body);
    expect(verifyWebhook<{ data: { a: number } }>(secret, h, body).payload.data.a).toBe(1);
    expect(verifyWebhook([generateWebhookSecret(), secret], h, Buffer.from(body)).id).toBe('msg_1');
    expect(() => verifyWebhook(secret, h, body.replace('1', '2'))).toThrow(WebhookVerificationError);
    expect(() => verifyWebhook(generateWebhookSecret(), h, body)).toThrow(/signature/);
    expect(() => verifyWebhook(secret, { ...h, 'webhook-id': 'msg_2' }, body)).toThrow(WebhookVerificationError);
    const old = webhookHeaders(secret, 'msg_1', body, Math.floor(Date.now() / 1000) - 3600);
    expect(() => verifyWebhook(secret, old, body)).toThrow(/tolerance/);
    expect(() => verifyWebhook(secret, {}, body)).toThrow(/Missing/);
  });

  it('parses Retry-After as seconds or HTTP date', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    const d = parseRetryAfter(new Date(Date.now() + 5000).toUTCString())!;
    expect(d).toBeGreaterThan(3000);
    expect(d).toBeLessThanOrEqual(5000);
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});

describe('SSRF guard', () => {
  it('classifies addresses by policy', () => {
    const g = createAddressGuard();
    for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '::1', 'fd00::1', 'fe80::1', '::ffff:127.0.0.1', '0.0.0.0', '100.64.0.1'])
      expect(g.allowed(a), a).toBe(false);
    for (const a of ['8.8.8.8', '1.1.1.1', '2606:4700::1111']) expect(g.allowed(a), a).toBe(true);
    expect(createAddressGuard({ allowPrivate: true }).allowed('10.0.0.1')).toBe(true);
    expect(createAddressGuard({ allow: ['127.0.0.1/32'] }).allowed('127.0.0.1')).toBe(true);
    expect(createAddressGuard({ allow: ['127.0.0.1/32'] }).allowed('127.0.0.2')).toBe(false);
    expect(createAddressGuard({ allowPrivate: true, block: ['10.0.0.0/8'] }).allowed('10.0.0.1')).toBe(false);
    expect(createAddressGuard({ block: ['1.1.1.1'] }).allowed('1.1.1.1')).toBe(false);
  });

  it('refuses private targets at connect time (name via lookup, and IP literal), never reaching the receiver', async () => {
    // Deterministic (issue 12 item 11): a refusal is permanent, so each endpoint has exactly one
    // attempt, and drain() tells when there is nothing left to attempt; no count of events is awaited.
    let hits = 0;
    const r = new Receiver((_q, _b, res) => {
      hits++;
      res.end();
    });
    await r.up();
    const store = await JsonStore.open({ dir: join(root, 'ssrf') });
    // The literal endpoint is added under a policy allowing loopback, then the dispatcher is
    // reopened over the same store with the default policy (public only): its stored URL is
    // refused at connect time. addEndpoint itself refuses it under the default policy.
    const d0 = await WebhookDispatcher.open({ store, backoff: fast, network: loopbackOnly });
    await d0.addEndpoint({ id: 'literal', url: r.url });
    await d0.close();
    const d = await WebhookDispatcher.open({ store, backoff: fast }); // default policy: public only
    const events: DeliveryEvent[] = [];
    d.onDelivery((e) => events.push(e));
    await expect(d.addEndpoint({ id: 'literal2', url: r.url })).rejects.toBeInstanceOf(SsrfBlockedError);
    await d.addEndpoint({ id: 'byname', url: `http://localhost:${r.port}/x` });
    await d.send({ type: 'x', data: 1 });
    expect(await d.drain(30_000)).toBe(true);
    // Longer than the largest retry delay (backoff.maxMs 200 ms) several times over: nothing more comes.
    await sleep(1000);
    await d.close();
    await r.down();
    expect(hits).toBe(0);
    expect(events.map((e) => e.endpointId).sort()).toEqual(['byname', 'literal']);
    for (const e of events) {
      expect(e.ok).toBe(false);
      expect(e.attempt).toBe(1);
      expect(e.permanent).toBe(true);
      expect(e.nextAttemptAt).toBeUndefined();
      expect(e.error).toMatch(/blocked by the webhook network policy.*permanent, not retried/);
    }
    // Recorded once, as a dead letter with the reason; nothing left in the outbox.
    for (const id of ['byname', 'literal']) {
      expect(await store.list(`webhooks/dead/${id}`)).toHaveLength(1);
      expect(await store.list(`webhooks/outbox/${id}`)).toHaveLength(0);
    }
  });
});

describe('WebhookDispatcher delivery', () => {
  it('task transitions arrive signed, in order per task, through receiver downtime and a sender restart', async () => {
    const secret = generateWebhookSecret();
    const got = new Map<string, number[]>(); // task id -> seq numbers in arrival order
    const ids = new Set<string>();
    let bad = 0;
    let accept = true;
    const r = new Receiver((req, body, res) => {
      try {
        const v = verifyWebhook<{ type: string; data: TaskWebhookData }>(secret, req.headers, body);
        if (!accept) {
          res.statusCode = 503;
          return res.end();
        }
        if (!ids.has(v.id)) {
          ids.add(v.id);
          const l = got.get(v.payload.data.id) ?? [];
          l.push(v.payload.data.seq);
          got.set(v.payload.data.id, l);
        }
        res.statusCode = 204;
      } catch {
        bad++;
        res.statusCode = 400;
      }
      res.end();
    });
    await r.up();
    const dir = join(root, 'restart');
    const store = await JsonStore.open({ dir });
    let d = await WebhookDispatcher.open({ store, backoff: fast, network: loopbackOnly, timeoutMs: 2000 });
    await d.addEndpoint({ id: 'all', url: r.url, secret });
    const q = new TaskQueue({ concurrency: 4 });
    q.registerExecutor('work', {
      run: async (ctx) => {
        await sleep(5 + Math.random() * 20);
        return { exitCode: ctx.task.labels.fail ? 1 : 0 };
      },
    });
    const unforward = forwardTaskEvents(q, d);
    // Phase 1: receiver up for a few tasks.
    const first = Array.from({ length: 5 }, (_, i) => q.submit({ kind: 'work', id: `a${i}`, labels: i % 2 ? { fail: '1' } : {} }));
    await Promise.all(first.map((h) => h.done));
    // Phase 2: receiver goes down (connection refused), more tasks run, some 503s too.
    await r.down();
    const second = Array.from({ length: 10 }, (_, i) => q.submit({ kind: 'work', id: `b${i}` }));
    await Promise.all(second.map((h) => h.done));
    await sleep(100);
    // Sender restart while everything is pending.
    unforward();
    await d.close();
    const pendingFiles = await store.list('webhooks/outbox/all');
    expect(pendingFiles.length).toBeGreaterThan(0);
    d = await WebhookDispatcher.open({ store: await JsonStore.open({ dir }), backoff: fast, network: loopbackOnly, timeoutMs: 2000 });
    // Restored write-ahead messages stay held until the forwarder checks them against the task history.
    expect(Object.values(d.pending()).reduce((a, b) => a + b, 0)).toBe(pendingFiles.length);
    const unforward2 = forwardTaskEvents(q, d);
    accept = false;
    await r.up(); // same port, answering 503 for a while
    await sleep(150);
    accept = true;
    expect(await d.drain(20_000)).toBe(true);
    unforward2();
    await d.close();
    await q.close();
    await r.down();

    expect(bad).toBe(0);
    for (const h of [...first, ...second]) {
      const rec = q.get(h.id)!;
      const seqs = got.get(h.id) ?? [];
      expect(seqs, h.id).toEqual(rec.history.map((_, i) => i));
    }
    expect(await store.list('webhooks/outbox/all')).toEqual([]);
  }, 60_000);

  it('a crash between a write-ahead webhook and its transition: the unrecorded transition is never delivered, the rest arrive', async () => {
    const secret = generateWebhookSecret();
    const got: Array<{ id: string; seq: number; event: string }> = [];
    const seen = new Set<string>();
    const r = new Receiver((req, body, res) => {
      const v = verifyWebhook<{ data: TaskWebhookData }>(secret, req.headers, body);
      if (!seen.has(v.id)) {
        seen.add(v.id);
        got.push({ id: v.payload.data.id, seq: v.payload.data.seq, event: v.payload.data.event });
      }
      res.statusCode = 204;
      res.end();
    });
    await r.up();
    const dir = join(root, 'write-ahead');
    const store = await JsonStore.open({ dir });
    const real = new StoreTaskPersistence(store);
    // The process "dies" exactly when it is about to record the outcome of task 'x'.
    const dying = {
      save: (t: TaskRecord) => (t.id === 'x' && t.state === 'succeeded' ? new Promise<void>(() => {}) : real.save(t)),
      loadAll: () => real.loadAll(),
    };
    const d1 = await WebhookDispatcher.open({ store, backoff: fast, network: loopbackOnly });
    await d1.addEndpoint({ id: 'ep', url: r.url, secret });
    const q1 = new TaskQueue({ persistence: dying, dataDir: join(dir, 'w1') });
    q1.registerExecutor('work', { run: async () => ({}) });
    forwardTaskEvents(q1, d1);
    q1.submit({ kind: 'work', id: 'x' });
    for (let i = 0; i < 500 && (await store.list('webhooks/outbox/ep')).length < 4; i++) await sleep(10);
    await d1.drain(2000); // the three recorded transitions go out; the held one cannot
    expect(got.map((g) => g.event)).toEqual(['enqueue', 'start', 'run']);
    expect(Object.values(d1.pending())).toEqual([1]);
    await d1.close(); // crash: the write-ahead webhook of 'succeed' is on disk, the transition is not

    const d2 = await WebhookDispatcher.open({ store, backoff: fast, network: loopbackOnly });
    const q2 = new TaskQueue({ persistence: real, dataDir: join(dir, 'w2') });
    q2.registerExecutor('work', { run: async () => ({}) });
    forwardTaskEvents(q2, d2);
    const rec = await q2.wait('x');
    expect(rec.state).toBe('succeeded');
    expect(await d2.drain(10_000)).toBe(true);
    await d2.close();
    await q2.close();
    await r.down();
    // Exactly the recorded history, in order: the phantom 'succeed' at seq 3 never arrived.
    expect(got.map((g) => `${g.seq}:${g.event}`)).toEqual(rec.history.map((h, i) => `${i}:${h.event}`));
    expect(rec.history.map((h) => h.event)).toEqual(['enqueue', 'start', 'run', 'requeue', 'start', 'run', 'succeed']);
  }, 30_000);

  it('honours Retry-After, then delivers', async () => {
    const times: number[] = [];
    const r = new Receiver((_q, _b, res) => {
      times.push(Date.now());
      if (times.length === 1) {
        res.writeHead(503, { 'retry-after': '1' });
        return res.end();
      }
      res.writeHead(200);
      res.end();
    });
    await r.up();
    const d = await WebhookDispatcher.open({ store: await JsonStore.open({ dir: join(root, 'ra') }), backoff: fast, network: loopbackOnly });
    await d.addEndpoint({ url: r.url });
    await d.send({ type: 'x', data: null });
    expect(await d.drain(10_000)).toBe(true);
    await d.close();
    await r.down();
    expect(times).toHaveLength(2);
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(950);
  });

  it('410 disables the endpoint and drops its queue; a hung receiver hits the request timeout', async () => {
    let hits = 0;
    const gone = new Receiver((_q, _b, res) => {
      hits++;
      res.writeHead(410);
      res.end();
    });
    await gone.up();
    const hung = new Receiver(() => {
      /* never answers */
    });
    await hung.up();
    const d = await WebhookDispatcher.open({ store: await JsonStore.open({ dir: join(root, 'gone') }), backoff: fast, network: loopbackOnly, timeoutMs: 300 });
    const events: DeliveryEvent[] = [];
    d.onDelivery((e) => events.push(e));
    await d.addEndpoint({ id: 'gone', url: gone.url });
    await d.addEndpoint({ id: 'hung', url: hung.url });
    for (let i = 0; i < 3; i++) await d.send({ type: 'x', data: i });
    for (let i = 0; i < 300 && !events.some((e) => e.endpointId === 'hung'); i++) await sleep(10);
    expect(hits).toBe(1);
    expect(d.endpoints().find((e) => e.id === 'gone')?.disabled?.reason).toMatch(/410/);
    expect(d.pending().gone ?? 0).toBe(0);
    await d.send({ type: 'x', data: 9 });
    const h = events.find((e) => e.endpointId === 'hung')!;
    expect(h.error).toMatch(/timed out after 300 ms/);
    expect(h.durationMs).toBeGreaterThanOrEqual(290);
    await d.close();
    await gone.down();
    await hung.down();
    expect(hits).toBe(1);
  });

  it('subscriptions: one task, or by type prefix', async () => {
    const seen: Array<[string, string]> = [];
    const r = new Receiver((req, body, res) => {
      const p = JSON.parse(body.toString()) as { type: string };
      seen.push([req.url!, p.type]);
      res.end();
    });
    await r.up();
    const d = await WebhookDispatcher.open({ store: await JsonStore.open({ dir: join(root, 'subs') }), network: loopbackOnly });
    await d.addEndpoint({ id: 'one', url: `${r.url}/one`, subjects: ['t1'] });
    await d.addEndpoint({ id: 'alerts', url: `${r.url}/alerts`, types: ['alert.*'] });
    await d.send({ type: 'task.queued', subject: 't1', data: {} });
    await d.send({ type: 'task.queued', subject: 't2', data: {} });
    await d.send({ type: 'alert.firing', data: { rule: 'cpu' } }, { orderingKey: 'cpu' });
    expect(await d.drain(5000)).toBe(true);
    await d.close();
    await r.down();
    expect(seen.sort()).toEqual([
      ['/hook/alerts', 'alert.firing'],
      ['/hook/one', 'task.queued'],
    ]);
  });
});

describe('WebhookDispatcher endpoints', () => {
  it('addEndpoint with an id is an upsert: called at every start it keeps one endpoint, its secret and creation time', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'smoothtask-wh-upsert-'));
    try {
      const open = async () => WebhookDispatcher.open({ store: await JsonStore.open({ dir }), timeoutMs: 1000 });
      const d1 = await open();
      const a = await d1.addEndpoint({ id: 'ops', url: 'https://ops.example.com/hooks' });
      await d1.close();
      // A restart: the same call again, with a changed filter.
      const d2 = await open();
      const b = await d2.addEndpoint({ id: 'ops', url: 'https://ops.example.com/hooks', types: ['task.*'] });
      expect(d2.endpoints().map((e) => e.id)).toEqual(['ops']);
      expect(b.secret).toBe(a.secret);
      expect(b.createdAt).toBe(a.createdAt);
      expect(b.types).toEqual(['task.*']);
      // An explicit secret replaces it; an endpoint without an id is a new one each time.
      const c = await d2.addEndpoint({ id: 'ops', url: 'https://ops.example.com/hooks', secret: 'whsec_' + Buffer.alloc(24, 7).toString('base64') });
      expect(c.secret).not.toBe(a.secret);
      await d2.addEndpoint({ url: 'https://ci.example.com/hooks' });
      await d2.addEndpoint({ url: 'https://ci.example.com/hooks' });
      expect(d2.endpoints()).toHaveLength(3);
      await d2.close();
      const d3 = await open();
      expect(d3.endpoints().find((e) => e.id === 'ops')!.secret).toBe(c.secret);
      await d3.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
