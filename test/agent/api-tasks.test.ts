/**
 * Tasks API over real HTTP on loopback, with the real store and real children: bad input gets
 * the documented 4xx and creates nothing; the happy paths do what the contract says.
 */
import { access } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { finished, startAgent, until, type Harness } from './api-harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startAgent();
});
afterAll(async () => {
  await h?.close();
});

/** A raw request: the path goes on the wire as written (fetch would normalise %2E%2E). */
function raw(method: string, path: string): Promise<{ status: number; body: string }> {
  const u = new URL(h.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, method, path, headers: { authorization: 'Bearer tok-admin-0123456789' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const errOf = async (r: Response) => ((await r.json()) as { error: { code: string; message: string; issues?: Array<{ path: string; message: string }>; rule?: string } }).error;

async function expectNothingCreated() {
  const c = await h.created();
  expect(c).toEqual({ recorded: [], workspaces: [], inMemory: 0 });
}

describe('bad input creates nothing', () => {
  it('malformed JSON: 400 ERR_MALFORMED_JSON', async () => {
    const r = await h.req('POST', '/v1/tasks', { body: '{"kind":"process",', headers: { 'content-type': 'application/json' } });
    expect(r.status).toBe(400);
    const e = await errOf(r);
    expect(e.code).toBe('ERR_MALFORMED_JSON');
    expect(e.message).toMatch(/JSON/i);
    await expectNothingCreated();
  });

  it('empty JSON body: 400', async () => {
    const r = await h.req('POST', '/v1/tasks', { body: '', headers: { 'content-type': 'application/json' } });
    expect(r.status).toBe(400);
    await expectNothingCreated();
  });

  it('unknown top-level field: 400 ERR_VALIDATION naming it', async () => {
    const r = await h.req('POST', '/v1/tasks', { json: { kind: 'process', spec: { command: '/bin/true' }, evil: 1 } });
    expect(r.status).toBe(400);
    const e = await errOf(r);
    expect(e.code).toBe('ERR_VALIDATION');
    expect(JSON.stringify(e.issues)).toContain('evil');
    await expectNothingCreated();
  });

  it('unknown field inside the process spec: 400 naming it', async () => {
    const r = await h.req('POST', '/v1/tasks', { json: { kind: 'process', spec: { command: '/bin/true', privileged: true } } });
    expect(r.status).toBe(400);
    const e = await errOf(r);
    expect(e.code).toBe('ERR_VALIDATION');
    expect(e.message).toContain('privileged');
    await expectNothingCreated();
  });

  it('wrong types: 400 listing each issue with its path', async () => {
    const r = await h.req('POST', '/v1/tasks', { json: { kind: 7, timeoutMs: -1 } });
    expect(r.status).toBe(400);
    const e = await errOf(r);
    const paths = e.issues!.map((i) => i.path);
    expect(paths).toContain('body.kind');
    expect(paths).toContain('body.timeoutMs');
    await expectNothingCreated();
  });

  it('oversized body: 413 ERR_BODY_TOO_LARGE', async () => {
    const big = JSON.stringify({ kind: 'process', spec: { command: '/bin/echo', args: ['x'.repeat(2 * 1024 * 1024)] } });
    const r = await h.req('POST', '/v1/tasks', { body: big, headers: { 'content-type': 'application/json' } });
    expect(r.status).toBe(413);
    expect((await errOf(r)).code).toBe('ERR_BODY_TOO_LARGE');
    await expectNothingCreated();
  });

  it('not JSON: 415', async () => {
    const r = await h.req('POST', '/v1/tasks', { body: 'kind=process', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(r.status).toBe(415);
    expect((await errOf(r)).code).toBe('ERR_UNSUPPORTED_MEDIA_TYPE');
    await expectNothingCreated();
  });

  it.each([['..'], ['.'], ['a/b'], ['a\u0000b'], ['-rf'], ['x'.repeat(201)]])('submit with id %j: 400', async (id) => {
    const r = await h.req('POST', '/v1/tasks', { json: { kind: 'process', id, spec: { command: '/bin/true' } } });
    expect(r.status).toBe(400);
    const e = await errOf(r);
    expect(e.code).toBe('ERR_VALIDATION');
    expect(e.issues!.map((i) => i.path)).toContain('body.id');
    await expectNothingCreated();
  });

  it.each([['%2E%2E'], ['..'], ['a%2Fb'], ['a%00b'], ['%2E'], ['%2e%2e%2f%2e%2e%2fetc']])('path id %s: 400 on get, cancel, delete, logs', async (enc) => {
    for (const [m, p] of [
      ['GET', `/v1/tasks/${enc}`],
      ['POST', `/v1/tasks/${enc}/cancel`],
      ['DELETE', `/v1/tasks/${enc}`],
      ['GET', `/v1/tasks/${enc}/logs`],
      ['GET', `/v1/tasks/${enc}/logs?follow=true`],
    ] as const) {
      const r = await raw(m, p);
      expect(r.status, `${m} ${p}: ${r.body}`).toBe(400);
      const e = (JSON.parse(r.body) as { error: { code: string; issues: Array<{ path: string }> } }).error;
      expect(e.code).toBe('ERR_VALIDATION');
      expect(e.issues.map((i) => i.path)).toContain('params.id');
    }
    await expectNothingCreated();
  });

  it('unknown task: 404 ERR_TASK_NOT_FOUND on get, cancel, delete', async () => {
    for (const [m, p] of [
      ['GET', '/v1/tasks/nope'],
      ['POST', '/v1/tasks/nope/cancel'],
      ['DELETE', '/v1/tasks/nope'],
    ] as const) {
      const r = await h.req(m, p);
      expect(r.status, `${m} ${p}`).toBe(404);
      const e = await errOf(r);
      expect(e.code).toBe('ERR_TASK_NOT_FOUND');
      expect(e.message).toContain("'nope'");
    }
  });

  it('unknown kind: 400 ERR_UNKNOWN_TASK_KIND', async () => {
    const r = await h.req('POST', '/v1/tasks', { json: { kind: 'container', spec: { image: 'x' } } });
    expect(r.status).toBe(400);
    expect((await errOf(r)).code).toBe('ERR_UNKNOWN_TASK_KIND');
    await expectNothingCreated();
  });

  it('bad list query: 400', async () => {
    for (const q of ['state=bogus', 'limit=0', 'limit=abc', 'cursor=zzz', 'label=novalue', 'other=1']) {
      const r = await h.req('GET', `/v1/tasks?${q}`, { token: 'read' });
      expect(r.status, q).toBe(400);
      expect((await errOf(r)).code).toBe('ERR_VALIDATION');
    }
  });

  it('unknown route under /v1: 404 JSON error', async () => {
    const r = await h.req('GET', '/v1/nothing-here');
    expect(r.status).toBe(404);
    expect((await errOf(r)).code).toBe('ERR_NOT_FOUND');
  });
});

describe('task lifecycle', () => {
  it('submit: 201 + Location; get; the task runs to success', async () => {
    const r = await h.req('POST', '/v1/tasks', { token: 'submit', json: { kind: 'process', id: 'ok-1', spec: { command: '/bin/echo', args: ['hello'] }, labels: { suite: 'a' } } });
    expect(r.status).toBe(201);
    expect(r.headers.get('location')).toBe('/v1/tasks/ok-1');
    const { task } = (await r.json()) as { task: { id: string; state: string; labels: Record<string, string> } };
    expect(task.id).toBe('ok-1');
    expect(task.labels).toEqual({ suite: 'a' });
    const done = await finished(h, 'ok-1');
    expect(done.state).toBe('succeeded');
    expect(done.exitCode).toBe(0);
    expect((done.history as unknown[]).length).toBeGreaterThan(2);
  });

  it('duplicate id: 409 ERR_TASK_EXISTS', async () => {
    const r = await h.req('POST', '/v1/tasks', { json: { kind: 'process', id: 'ok-1', spec: { command: '/bin/true' } } });
    expect(r.status).toBe(409);
    expect((await errOf(r)).code).toBe('ERR_TASK_EXISTS');
  });

  it('a failing task ends failed with its exit code', async () => {
    const r = await h.req('POST', '/v1/tasks', { json: { kind: 'process', id: 'fail-1', spec: { command: '/bin/sh', args: ['-c', 'exit 3'] } } });
    expect(r.status).toBe(201);
    const t = await finished(h, 'fail-1');
    expect(t.state).toBe('failed');
    expect(t.exitCode).toBe(3);
  });

  it('cancel a running task: 202, then cancelled; cancel again: 409', async () => {
    await h.req('POST', '/v1/tasks', { json: { kind: 'process', id: 'long-1', spec: { command: '/bin/sleep', args: ['60'] } } });
    await until(async () => ((await (await h.req('GET', '/v1/tasks/long-1')).json()) as { task: { state: string } }).task.state === 'running', 'running');
    const d = await h.req('DELETE', '/v1/tasks/long-1');
    expect(d.status).toBe(409);
    expect((await errOf(d)).code).toBe('ERR_TASK_NOT_FINISHED');
    const c = await h.req('POST', '/v1/tasks/long-1/cancel', { token: 'submit' });
    expect(c.status).toBe(202);
    const t = await finished(h, 'long-1');
    expect(t.state).toBe('cancelled');
    const again = await h.req('POST', '/v1/tasks/long-1/cancel', { token: 'submit' });
    expect(again.status).toBe(409);
    expect((await errOf(again)).code).toBe('ERR_TASK_FINISHED');
  });

  it('list: filters by state, kind, label; pages with a cursor in a stable order', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await h.req('POST', '/v1/tasks', { json: { kind: 'process', id: `page-${i}`, spec: { command: '/bin/true' }, labels: { group: 'paged', n: String(i) } } });
      expect(r.status).toBe(201);
    }
    for (let i = 0; i < 5; i++) await finished(h, `page-${i}`);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = `label=group=paged&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const r = await h.req('GET', `/v1/tasks?${q}`, { token: 'read' });
      expect(r.status).toBe(200);
      const body = (await r.json()) as { items: Array<{ id: string }>; nextCursor: string | null };
      expect(body.items.length).toBeLessThanOrEqual(2);
      seen.push(...body.items.map((t) => t.id));
      cursor = body.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(seen.sort()).toEqual(['page-0', 'page-1', 'page-2', 'page-3', 'page-4']);
    expect(pages).toBe(3);
    const failed = (await (await h.req('GET', '/v1/tasks?state=failed,cancelled', { token: 'read' })).json()) as { items: Array<{ id: string }> };
    expect(failed.items.map((t) => t.id).sort()).toEqual(['fail-1', 'long-1']);
    const byLabel = (await (await h.req('GET', '/v1/tasks?label=group=paged,n=3', { token: 'read' })).json()) as { items: Array<{ id: string }> };
    expect(byLabel.items.map((t) => t.id)).toEqual(['page-3']);
    const none = (await (await h.req('GET', '/v1/tasks?kind=container', { token: 'read' })).json()) as { items: unknown[] };
    expect(none.items).toEqual([]);
  });

  it('delete a finished task: 204; record (journal and snapshot) and workspace are gone', async () => {
    const before = await h.created();
    expect(before.recorded).toContain('ok-1');
    expect(before.workspaces).toContain('ok-1');
    const ws = (h.agent.queue.get('ok-1')!.workspace)!;
    const r = await h.req('DELETE', '/v1/tasks/ok-1');
    expect(r.status).toBe(204);
    const after = await h.created();
    expect(after.recorded).not.toContain('ok-1');
    expect(after.workspaces).not.toContain('ok-1');
    await expect(access(ws)).rejects.toThrow();
    expect((await h.req('GET', '/v1/tasks/ok-1')).status).toBe(404);
    // other tasks untouched
    expect(after.recorded).toContain('fail-1');
  });
});

describe('queue full', () => {
  it('429 with Retry-After once maxQueued tasks wait; nothing created by the refused submit', async () => {
    const q = await startAgent({ queue: { concurrency: 1, maxQueued: 2 } });
    try {
      for (const id of ['run', 'w1', 'w2']) {
        const r = await q.req('POST', '/v1/tasks', { json: { kind: 'process', id, spec: { command: '/bin/sleep', args: ['60'] } } });
        expect(r.status).toBe(201);
        if (id === 'run') await until(() => q.agent.queue.stats().active === 1, 'the first task to start');
      }
      await until(async () => q.agent.queue.stats().pending === 2 && q.agent.queue.stats().active === 1, 'one running, two waiting');
      const r = await q.req('POST', '/v1/tasks', { json: { kind: 'process', id: 'w3', spec: { command: '/bin/true' } } });
      expect(r.status).toBe(429);
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect((await errOf(r)).code).toBe('ERR_QUEUE_FULL');
      expect(q.agent.queue.get('w3')).toBeUndefined();
      expect((await q.created()).recorded).not.toContain('w3');
    } finally {
      await q.close();
    }
  });
});
