import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { JsonStore } from 'smoothtask/store';
import { generateWebhookSecret, verifyWebhook, WebhookDispatcher } from 'smoothtask/webhook';
import { AlertEngine, webhookNotifier, type Notification } from 'smoothtask/notify';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('webhook notifier over the task core\'s durable dispatcher', () => {
  it('notifications survive a receiver outage and a sender restart; signatures verify', async () => {
    const secret = generateWebhookSecret();
    const got: Array<{ id: string; type: string; data: Notification }> = [];
    let down = true;
    const server: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (down) return void res.writeHead(503, { 'retry-after': '0' }).end();
        const v = verifyWebhook<{ type: string; data: Notification }>(secret, req.headers as Record<string, string>, Buffer.concat(chunks));
        got.push({ id: v.id, type: v.payload.type, data: v.payload.data });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/alerts`;
    const dir = await mkdtemp(join(tmpdir(), 'st-notify-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const opts = { backoff: { baseMs: 20, maxMs: 100, factor: 2 }, network: { allowPrivate: false, allow: ['127.0.0.1/32'] }, timeoutMs: 2000 };

    let store = await JsonStore.open({ dir });
    let dispatcher = await WebhookDispatcher.open({ store, ...opts });
    await dispatcher.addEndpoint({ id: 'ops', url, secret, types: ['alert.*'] });
    let v = 1;
    const engine = new AlertEngine({
      rules: [{ name: 'DiskFull', expr: { fn: () => v, op: '>', value: 0 }, labels: { mount: '/data' } }],
      route: { groupInterval: 0 },
      notifiers: [webhookNotifier({ dispatcher })],
      now: () => 0,
    });
    await engine.evaluate(0);
    await engine.flush(); // stored durably by the dispatcher; the receiver answers 503
    expect(engine.stats.notifierErrors).toBe(0);
    await new Promise((r) => setTimeout(r, 150));
    expect(got).toHaveLength(0);
    // "restart": close the dispatcher with the firing notification still pending, reopen the store
    await dispatcher.close();
    store.close();
    down = false;
    store = await JsonStore.open({ dir });
    dispatcher = await WebhookDispatcher.open({ store, ...opts });
    cleanups.push(async () => {
      await dispatcher.close();
      store.close();
    });
    for (let i = 0; i < 100 && got.length < 1; i++) await new Promise((r) => setTimeout(r, 50));
    expect(got.map((g) => g.type)).toEqual(['alert.firing']);
    expect(got[0]!.data.alerts[0]!.labels).toEqual({ alertname: 'DiskFull', mount: '/data' });

    // the resolved notification goes through a notifier on the reopened dispatcher, in order
    // (a second engine, a second later: its firing is a new notification with a new id; the
    // same notification sent again would keep its id, which is derived from group, time and node)
    let t = 1000;
    const engine2 = new AlertEngine({
      rules: [{ name: 'DiskFull', expr: { fn: () => v, op: '>', value: 0 }, labels: { mount: '/data' } }],
      route: { groupInterval: 0 },
      notifiers: [webhookNotifier({ dispatcher })],
      now: () => t,
    });
    await engine2.evaluate(t);
    v = 0;
    t = 2000;
    await engine2.evaluate(t);
    await engine2.flush();
    // At-least-once: a delivery in flight across the restart may arrive twice, with the same
    // webhook id (receivers deduplicate on it). Distinct deliveries must be exactly these, in order.
    const distinct = () => got.filter((g, i) => got.findIndex((h) => h.id === g.id) === i);
    for (let i = 0; i < 100 && distinct().length < 3; i++) await new Promise((r) => setTimeout(r, 50));
    expect(distinct().map((g) => g.type)).toEqual(['alert.firing', 'alert.firing', 'alert.resolved']);
    await engine.close();
    await engine2.close();
  });
});
