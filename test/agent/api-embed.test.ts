/**
 * Embedded mode (`agent.register(app, { prefix })` into the user's own Fastify 5 app) and the
 * close() contract (grace, cancel or requeue, 503 while closing, idempotent, records survive).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentClosedError, createAgent, hashToken } from '../../lib/agent/index.js';
import { startAgent, TOKENS, until } from './api-harness.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('embedded in the user app', () => {
  it('routes live under the prefix beside the app routes; OpenAPI and /docs follow the prefix; app.close() ends follow streams', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'st-agent-a-embed-'));
    dirs.push(dir);
    const agent = await createAgent({
      dataDir: dir,
      auth: { tokens: [{ name: 'root', sha256: hashToken(TOKENS.admin), scopes: ['admin'] }] },
      policy: { process: { commands: ['/bin/sleep', '/bin/echo'] } },
      metrics: { enabled: false },
    });
    const app = Fastify();
    app.get('/mine', async () => ({ mine: true }));
    await agent.register(app, { prefix: '/agent' });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    const auth = { authorization: `Bearer ${TOKENS.admin}` };
    try {
      expect(await (await fetch(`${url}/mine`)).json()).toEqual({ mine: true });
      expect((await fetch(`${url}/agent/health`)).status).toBe(200);
      expect((await fetch(`${url}/agent/v1/tasks`)).status).toBe(401);
      const s = await fetch(`${url}/agent/v1/tasks`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'process', id: 'e1', spec: { command: '/bin/sleep', args: ['60'] } }) });
      expect(s.status).toBe(201);
      expect(s.headers.get('location')).toBe('/agent/v1/tasks/e1');
      const nf = await fetch(`${url}/agent/v1/nope`, { headers: auth });
      expect(nf.status).toBe(404);
      expect(((await nf.json()) as { error: { code: string } }).error.code).toBe('ERR_NOT_FOUND');
      const doc = (await (await fetch(`${url}/agent/openapi.json`)).json()) as { paths: Record<string, unknown> };
      expect(Object.keys(doc.paths)).toContain('/agent/v1/tasks');
      expect(Object.keys(doc.paths)).not.toContain('/mine');
      expect((await fetch(`${url}/agent/docs`)).status).toBe(200);
      const bad = await fetch(`${url}/agent/v1/tasks`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'process', spec: { command: '/bin/echo', args: ['x'.repeat(2 * 1024 * 1024)] } }) });
      expect(bad.status).toBe(413);

      await until(() => agent.queue.get('e1')?.state === 'running', 'running');
      const follow = await fetch(`${url}/agent/v1/tasks/e1/logs?follow=true`, { headers: auth });
      expect(follow.status).toBe(200);
      const text = follow.text();
      await app.close(); // preClose ends the open stream, or this would never resolve
      expect(await text).toBe('');
    } finally {
      await agent.close({ graceMs: 0 });
      await app.close();
    }
    expect(agent.queue.get('e1')!.state).toBe('cancelled');
  });
});

describe('close()', () => {
  it('lets running tasks finish within the grace; 503 while closing; idempotent; listen after close refused', async () => {
    const h = await startAgent();
    try {
      await h.req('POST', '/v1/tasks', { json: { kind: 'process', id: 'short', spec: { command: '/bin/sh', args: ['-c', 'sleep 1; echo done'] } } });
      await until(() => h.agent.queue.get('short')?.state === 'running', 'running');
      const closing = h.agent.close({ graceMs: 60_000 });
      expect(h.agent.close()).toBe(closing);
      const during = await h.req('GET', '/v1/tasks').catch(() => undefined);
      if (during) {
        expect(during.status).toBe(503);
        expect(((await during.json()) as { error: { code: string } }).error.code).toBe('ERR_AGENT_CLOSED');
      }
      await closing;
      expect(h.agent.queue.get('short')!.state).toBe('succeeded');
      await expect(h.agent.listen()).rejects.toBeInstanceOf(AgentClosedError);
    } finally {
      await h.close();
    }
  });

  it('onTimeout requeue: a task still running after the grace is recorded queued and runs again on the next start', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'st-agent-a-requeue-'));
    dirs.push(dir);
    const cfg = {
      dataDir: dir,
      listen: { host: '127.0.0.1', port: 0 },
      auth: { tokens: [{ name: 'root', sha256: hashToken(TOKENS.admin), scopes: ['admin' as const] }] },
      policy: { process: { commands: ['/bin/sh'] } },
      metrics: { enabled: false },
      shutdown: { graceMs: 100, onTimeout: 'requeue' as const },
    };
    const a = await createAgent(cfg);
    // The first run waits; the second (after the restart) finds the marker and ends at once.
    a.queue.submit({ kind: 'process', id: 'again', spec: { command: '/bin/sh', args: ['-c', 'if [ -f ../again.mark ]; then echo second; else touch ../again.mark; exec sleep 60; fi'] } });
    await until(() => a.queue.get('again')?.state === 'running', 'running');
    await a.close();
    expect(a.queue.get('again')!.state).toBe('queued');
    const b = await createAgent(cfg);
    try {
      const done = await b.queue.wait('again');
      expect(done.state).toBe('succeeded');
    } finally {
      await b.close();
    }
  });
});
