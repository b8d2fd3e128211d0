import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AlertEngine, standardWebhookSender, WebhookDeliveryError, webhookNotifier } from 'smoothtask/notify';
import * as webhook from 'smoothtask/webhook';
import { SsrfBlockedError, generateWebhookSecret, verifyWebhook } from 'smoothtask/webhook';
import { ConfigError } from '../../lib/errors/index.js';

interface Received {
  id: string;
  timestamp: string;
  body: string;
  valid: boolean;
}

/** Loopback allowed explicitly: the default policy (public only) refuses it, as the last tests show. */
const network = { allow: ['127.0.0.1/32'] };

/** Loopback receiver that checks signatures with smoothtask/webhook's `verifyWebhook` (the receivers' function). */
async function receiver(secret: string, script: number[] = []) {
  const got: Received[] = [];
  let calls = 0;
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let valid = true;
      try {
        verifyWebhook(secret, req.headers, body);
      } catch {
        valid = false;
      }
      got.push({ id: String(req.headers['webhook-id']), timestamp: String(req.headers['webhook-timestamp']), body, valid });
      const status = script[calls++] ?? 204;
      if (status === 503) res.setHeader('retry-after', '0');
      res.statusCode = status;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}/hook`;
  return { got, url, port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe('webhook notifier', () => {
  it('firing and resolved notifications arrive signed; retried through 503s with the same id', async () => {
    const secret = `whsec_${randomBytes(24).toString('base64')}`;
    const rx = await receiver(secret, [503, 503, 204, 204]);
    cleanups.push(rx.close);
    let v = 1;
    const engine = new AlertEngine({
      rules: [{ name: 'Disk', expr: { fn: () => v, op: '>', value: 0 }, labels: { mount: '/' }, annotations: { summary: 'disk {{ $labels.mount }}' } }],
      notifiers: [webhookNotifier({ url: rx.url, secret, network, minBackoffMs: 10, maxBackoffMs: 50 })],
      route: { groupInterval: 0 },
      now: () => 0,
    });
    await engine.evaluate(0);
    await engine.flush();
    v = 0;
    await engine.evaluate(1000);
    await engine.flush();
    expect(rx.got).toHaveLength(4);
    expect(rx.got.every((g) => g.valid)).toBe(true);
    // three attempts of the first message share one id; the resolved one has its own
    expect(new Set(rx.got.slice(0, 3).map((g) => g.id)).size).toBe(1);
    expect(rx.got[3]!.id).not.toBe(rx.got[0]!.id);
    const first = JSON.parse(rx.got[2]!.body);
    const second = JSON.parse(rx.got[3]!.body);
    expect(first.type).toBe('alert.firing');
    expect(first.data.alerts[0].labels).toEqual({ alertname: 'Disk', mount: '/' });
    expect(first.data.alerts[0].annotations.summary).toBe('disk /');
    expect(second.type).toBe('alert.resolved');
    expect(engine.stats.notifierErrors).toBe(0);
    await engine.close();
  });

  it('a wrong secret does not verify (the receiver really checks)', async () => {
    const right = generateWebhookSecret();
    const rx = await receiver(right);
    cleanups.push(rx.close);
    await standardWebhookSender({ url: rx.url, secret: generateWebhookSecret(), network }).send({ id: 'msg_1', type: 't', payload: {} });
    await standardWebhookSender({ url: rx.url, secret: right, network }).send({ id: 'msg_2', type: 't', payload: {} });
    expect(rx.got.map((g) => g.valid)).toEqual([false, true]);
  });

  it('one signing rule with smoothtask/webhook: whsec_-prefixed and bare secrets sign alike and verify with verifyWebhook', async () => {
    const key = randomBytes(32).toString('base64');
    const rx = await receiver(`whsec_${key}`);
    cleanups.push(rx.close);
    const n = webhookNotifier({ url: rx.url, secret: key, network }); // bare base64: same key
    const engine = new AlertEngine({ rules: [{ name: 'S', expr: { fn: () => true } }], notifiers: [n, webhookNotifier({ url: rx.url, secret: `whsec_${key}`, network })], now: () => 0 });
    await engine.evaluate(0);
    await engine.flush();
    expect(rx.got).toHaveLength(2);
    expect(rx.got.every((g) => g.valid)).toBe(true);
    // and the receiver's bare-key verification accepts both too
    for (const g of rx.got) expect(() => verifyWebhook(key, { 'webhook-id': g.id, 'webhook-timestamp': g.timestamp, 'webhook-signature': webhook.signWebhook(`whsec_${key}`, g.id, Number(g.timestamp), g.body) }, g.body)).not.toThrow();
    await engine.close();
    // A secret that is not base64 of >= 16 bytes is refused up front (before, it was HMACed as UTF-8 and no receiver using the standard rule could verify it).
    expect(() => webhookNotifier({ url: rx.url, secret: 'right-secret', network })).toThrow(ConfigError);
  });

  it('one delivery error class and one signing function: notify re-exports smoothtask/webhook', () => {
    expect(WebhookDeliveryError).toBe(webhook.WebhookDeliveryError);
    expect(standardWebhookSender).toBe(webhook.standardWebhookSender);
  });

  it('410 disables the endpoint; 400 is not retried; errors are counted, not thrown at the engine', async () => {
    const secret = generateWebhookSecret();
    const rx = await receiver(secret, [400, 410]);
    cleanups.push(rx.close);
    const sender = standardWebhookSender({ url: rx.url, secret, network, minBackoffMs: 1 });
    await expect(sender.send({ id: 'a', type: 't', payload: 1 })).rejects.toMatchObject({ status: 400, attempts: 1 });
    await expect(sender.send({ id: 'b', type: 't', payload: 1 })).rejects.toBeInstanceOf(WebhookDeliveryError);
    await expect(sender.send({ id: 'c', type: 't', payload: 1 })).rejects.toThrow(/disabled/);
    expect(rx.got).toHaveLength(2);

    const errors: unknown[] = [];
    const engine = new AlertEngine({ rules: [{ name: 'X', expr: { fn: () => true } }], notifiers: [webhookNotifier({ sender })], now: () => 0 });
    engine.on('notifierError', (e) => errors.push(e));
    await engine.evaluate(0);
    await engine.flush();
    expect(engine.stats.notifierErrors).toBe(1);
    expect(errors).toHaveLength(1);
  });

  it('gives up after the configured attempts when the receiver is down', async () => {
    const rx = await receiver('s');
    const url = rx.url;
    await rx.close(); // nothing listens there now
    const sender = standardWebhookSender({ url, secret: generateWebhookSecret(), network, attempts: 3, minBackoffMs: 5, timeoutMs: 1000 });
    await expect(sender.send({ id: 'x', type: 't', payload: 1 })).rejects.toMatchObject({ attempts: 3 });
  });

  it('a notifier pointed at a private address is refused by the webhook address policy (literal: at creation; name: once, not retried)', async () => {
    const secret = generateWebhookSecret();
    const rx = await receiver(secret);
    cleanups.push(rx.close);
    // Default policy: public addresses only. IP literals, IPv6 forms embedding 127.0.0.1 included.
    for (const url of [rx.url, `http://[::ffff:7f00:1]:${rx.port}/h`, `http://[64:ff9b::7f00:1]:${rx.port}/h`, `http://[2002:7f00:1::]:${rx.port}/h`]) {
      expect(() => webhookNotifier({ url, secret }), url).toThrow(SsrfBlockedError);
    }
    // A name resolving to loopback: refused in the connect-time lookup, after one attempt.
    const sender = standardWebhookSender({ url: `http://localhost:${rx.port}/h`, secret, attempts: 5, minBackoffMs: 1 });
    const errors: unknown[] = [];
    const engine = new AlertEngine({ rules: [{ name: 'P', expr: { fn: () => true } }], notifiers: [webhookNotifier({ sender })], now: () => 0 });
    engine.on('notifierError', (e) => errors.push(e));
    await engine.evaluate(0);
    await engine.flush();
    expect(engine.stats.notifierErrors).toBe(1);
    expect((errors[0] as { error: unknown }).error).toBeInstanceOf(SsrfBlockedError);
    const err = await sender.send({ id: 'y', type: 't', payload: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SsrfBlockedError);
    expect((err as SsrfBlockedError).address).toMatch(/^(127\.0\.0\.1|::1)$/);
    expect(rx.got).toHaveLength(0);
    await engine.close();
  });
});
