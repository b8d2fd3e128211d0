import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AlertEngine, standardWebhookSender, WebhookDeliveryError, webhookNotifier } from 'smoothtask/notify';

interface Received {
  id: string;
  timestamp: string;
  body: string;
  valid: boolean;
}

/** Loopback receiver that verifies Standard Webhooks signatures with its own HMAC code. */
async function receiver(secret: string, script: number[] = []) {
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret);
  const got: Received[] = [];
  let calls = 0;
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const id = String(req.headers['webhook-id']);
      const ts = String(req.headers['webhook-timestamp']);
      const expected = createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest();
      const valid = String(req.headers['webhook-signature'])
        .split(' ')
        .some((s) => {
          const [v, sig] = s.split(',');
          const b = Buffer.from(sig ?? '', 'base64');
          return v === 'v1' && b.length === expected.length && timingSafeEqual(b, expected);
        });
      const fresh = Math.abs(Date.now() / 1000 - Number(ts)) < 300;
      got.push({ id, timestamp: ts, body, valid: valid && fresh });
      const status = script[calls++] ?? 204;
      if (status === 503) res.setHeader('retry-after', '0');
      res.statusCode = status;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return { got, url, close: () => new Promise<void>((r) => server.close(() => r())) };
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
      notifiers: [webhookNotifier({ url: rx.url, secret, minBackoffMs: 10, maxBackoffMs: 50 })],
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

  it('a tampered signature does not verify (the receiver really checks)', async () => {
    const rx = await receiver('right-secret');
    cleanups.push(rx.close);
    await standardWebhookSender({ url: rx.url, secret: 'wrong-secret' }).send({ id: 'msg_1', type: 't', payload: {} });
    await standardWebhookSender({ url: rx.url, secret: 'right-secret' }).send({ id: 'msg_2', type: 't', payload: {} });
    expect(rx.got.map((g) => g.valid)).toEqual([false, true]);
  });

  it('410 disables the endpoint; 400 is not retried; errors are counted, not thrown at the engine', async () => {
    const rx = await receiver('s', [400, 410]);
    cleanups.push(rx.close);
    const sender = standardWebhookSender({ url: rx.url, secret: 's', minBackoffMs: 1 });
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
    const sender = standardWebhookSender({ url, secret: 's', attempts: 3, minBackoffMs: 5, timeoutMs: 1000 });
    await expect(sender.send({ id: 'x', type: 't', payload: 1 })).rejects.toMatchObject({ attempts: 3 });
  });
});
