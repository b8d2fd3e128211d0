/**
 * Webhook listeners over real HTTP: the address policy refuses private targets (403 with the
 * rule) and stores nothing; an allowed endpoint gets its secret once, receives signed task
 * events on a loopback receiver, and its delivery attempts are listed.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhook } from '../../lib/webhook/index.js';
import { finished, startAgent, until, type Harness } from './api-harness.js';

const errOf = async (r: Response) => ((await r.json()) as { error: { code: string; message: string; rule?: string } }).error;

describe('default policy: private addresses refused', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startAgent();
  });
  afterAll(async () => {
    await h?.close();
  });

  it.each([['http://127.0.0.1:9/hook'], ['http://[::1]:9/x'], ['http://169.254.169.254/latest/meta-data'], ['http://localhost:9/x'], ['http://[::ffff:10.0.0.1]/x']])(
    '%s: 403 ERR_POLICY rule webhooks.network, nothing stored',
    async (url) => {
      const r = await h.req('POST', '/v1/webhooks', { json: { url } });
      expect(r.status).toBe(403);
      const e = await errOf(r);
      expect(e.code).toBe('ERR_POLICY');
      expect(e.rule).toBe('webhooks.network');
      expect(h.agent.webhooks.endpoints()).toEqual([]);
    },
  );

  it('bad bodies: 400; non-admin: 403; no token: 401', async () => {
    for (const json of [{ url: 'ftp://example.com/x' }, { url: 'not a url' }, { url: 'https://example.com', secret: 'whsec_x' }, { url: 'https://example.com', id: '../x' }, {}]) {
      const r = await h.req('POST', '/v1/webhooks', { json });
      expect(r.status, JSON.stringify(json)).toBe(400);
    }
    expect((await h.req('POST', '/v1/webhooks', { token: 'submit', json: { url: 'https://example.com/h' } })).status).toBe(403);
    expect((await h.req('GET', '/v1/webhooks', { token: 'read' })).status).toBe(403);
    expect((await h.req('GET', '/v1/webhooks', { token: null })).status).toBe(401);
    expect(h.agent.webhooks.endpoints()).toEqual([]);
    expect((await h.req('DELETE', '/v1/webhooks/nope')).status).toBe(404);
    expect((await h.req('GET', '/v1/webhooks/nope/deliveries')).status).toBe(404);
  });
});

describe('allowed loopback receiver', () => {
  let h: Harness;
  let server: Server;
  const received: Array<{ headers: Record<string, string | string[] | undefined>; body: string }> = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push({ headers: req.headers, body });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    h = await startAgent({ webhooks: { network: { allowPrivate: false, allow: ['127.0.0.1/32'], block: [] } } });
  });
  afterAll(async () => {
    await h?.close();
    await new Promise((r) => server.close(r));
  });

  it('register: 201 with the secret once; list without secrets; signed task events arrive; deliveries listed; delete', async () => {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    const r = await h.req('POST', '/v1/webhooks', { json: { url, types: ['task.*'], id: 'hook1' } });
    expect(r.status).toBe(201);
    const { endpoint, secret } = (await r.json()) as { endpoint: Record<string, unknown>; secret: string };
    expect(secret).toMatch(/^whsec_/);
    expect(endpoint).toMatchObject({ id: 'hook1', url });
    expect(endpoint).not.toHaveProperty('secret');
    expect((await h.req('POST', '/v1/webhooks', { json: { url, id: 'hook1' } })).status).toBe(409);

    const list = (await (await h.req('GET', '/v1/webhooks')).json()) as { items: Array<Record<string, unknown>> };
    expect(list.items.map((e) => e.id)).toEqual(['hook1']);
    expect(JSON.stringify(list)).not.toContain(secret);

    expect((await h.req('POST', '/v1/tasks', { json: { kind: 'process', id: 'evt', spec: { command: '/bin/true' } } })).status).toBe(201);
    await finished(h, 'evt');
    await until(() => received.some((m) => m.body.includes('"succeeded"')), 'the succeeded event');
    for (const m of received) {
      const v = verifyWebhook<{ type: string; data: { id: string } }>(secret, m.headers, m.body);
      expect(v.payload.data.id).toBe('evt');
    }
    const d = await until(async () => {
      const body = (await (await h.req('GET', '/v1/webhooks/hook1/deliveries')).json()) as { items: Array<{ ok: boolean; status?: number }> };
      return body.items.length >= received.length && body.items.length > 0 ? body : undefined;
    }, 'deliveries to be listed');
    expect(d.items.every((i) => i.ok && i.status === 204)).toBe(true);

    expect((await h.req('DELETE', '/v1/webhooks/hook1')).status).toBe(204);
    expect(h.agent.webhooks.endpoints()).toEqual([]);
    expect((await h.req('GET', '/v1/webhooks/hook1/deliveries')).status).toBe(404);
  });
});

describe('alerts as webhooks', () => {
  let h: Harness;
  let server: Server;
  let alarm = false;
  const got: Array<{ id: string; type: string; data: any }> = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        got.push({ id: String(req.headers['webhook-id']), ...(JSON.parse(body) as { type: string; data: unknown }) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    h = await startAgent({
      webhooks: { network: { allowPrivate: false, allow: ['127.0.0.1/32'], block: [] } },
      metrics: { enabled: false, backend: 'auto', families: ['cpu'], intervalMs: 500 },
      fleet: { node: { name: 'node-w' } },
      alerts: { rules: [{ name: 'HookAlarm', expr: { fn: () => (alarm ? 1 : 0), op: '>', value: 0 } }] as never },
    });
  });
  afterAll(async () => {
    await h?.close();
    await new Promise((r) => server.close(r));
  });

  it('an alert that fires and resolves reaches the endpoints as alert.firing and alert.resolved, naming the node', async () => {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/alerts`;
    expect((await h.req('POST', '/v1/webhooks', { json: { url, types: ['alert.*'] } })).status).toBe(201);
    alarm = true;
    await until(() => got.some((m) => m.type === 'alert.firing'), 'alert.firing', 20_000);
    alarm = false;
    await until(() => got.some((m) => m.type === 'alert.resolved'), 'alert.resolved', 20_000);
    const firing = got.find((m) => m.type === 'alert.firing')!;
    expect(firing.data.source).toBe('node-w');
    expect(JSON.stringify(firing.data)).toContain('HookAlarm');
    expect(new Set(got.map((m) => m.id)).size).toBe(got.length);
  });
});
