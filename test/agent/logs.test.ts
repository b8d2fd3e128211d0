/**
 * Logs over real HTTP from real children: whole, ranges, NDJSON and SSE follow from any offset
 * (resume with Last-Event-ID), UTF-8 kept whole across chunks, close() ends open streams.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { finished, startAgent, TOKENS, until, type Harness } from './api-harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startAgent();
});
afterAll(async () => {
  await h?.close();
});

const errOf = async (r: Response) => ((await r.json()) as { error: { code: string; message: string } }).error;

async function run(id: string, script: string): Promise<void> {
  const r = await h.req('POST', '/v1/tasks', { json: { kind: 'process', id, spec: { command: '/bin/sh', args: ['-c', script] } } });
  expect(r.status).toBe(201);
}

/** Reads a follow response to its end; returns NDJSON objects or SSE events. */
async function readAll(r: Response): Promise<string> {
  return await r.text();
}

function parseSse(text: string): Array<{ id?: string; event?: string; data: string }> {
  const out: Array<{ id?: string; event?: string; data: string }> = [];
  for (const block of text.split('\n\n')) {
    const ev: { id?: string; event?: string; data: string } = { data: '' };
    let any = false;
    for (const line of block.split('\n')) {
      if (line.startsWith(':') || line === '') continue;
      const i = line.indexOf(':');
      const k = line.slice(0, i);
      const v = line.slice(i + 2);
      any = true;
      if (k === 'id') ev.id = v;
      else if (k === 'event') ev.event = v;
      else if (k === 'data') ev.data += v;
    }
    if (any) out.push(ev);
  }
  return out;
}

describe('whole log and ranges', () => {
  it('combined, stdout and stderr are the files the queue wrote', async () => {
    await run('w1', 'i=0; while [ $i -lt 200 ]; do echo "line $i"; i=$((i+1)); done; echo oops >&2');
    await finished(h, 'w1');
    const t = h.agent.queue.get('w1')!;
    const combined = await (await h.req('GET', '/v1/tasks/w1/logs', { token: 'read' })).text();
    expect(combined).toBe(await readFile(t.logPath!, 'utf8'));
    expect(combined).toContain('line 199\n');
    expect(combined).toContain('oops\n');
    const out = await h.req('GET', '/v1/tasks/w1/logs?stream=stdout');
    expect(out.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await out.text()).toBe(await readFile(t.logs!.stdout, 'utf8'));
    expect(await (await h.req('GET', '/v1/tasks/w1/logs?stream=stderr')).text()).toBe('oops\n');
  });

  it('Range: 206 with Content-Range; suffix ranges; 416 when outside; junk ignored', async () => {
    const whole = Buffer.from(await (await h.req('GET', '/v1/tasks/w1/logs?stream=stdout')).arrayBuffer());
    const r = await h.req('GET', '/v1/tasks/w1/logs?stream=stdout', { headers: { range: 'bytes=5-14' } });
    expect(r.status).toBe(206);
    expect(r.headers.get('content-range')).toBe(`bytes 5-14/${whole.length}`);
    expect(r.headers.get('content-length')).toBe('10');
    expect(Buffer.from(await r.arrayBuffer())).toEqual(whole.subarray(5, 15));
    const tail = await h.req('GET', '/v1/tasks/w1/logs?stream=stdout', { headers: { range: 'bytes=-9' } });
    expect(tail.status).toBe(206);
    expect(await tail.text()).toBe('line 199\n');
    const open = await h.req('GET', '/v1/tasks/w1/logs?stream=stdout', { headers: { range: `bytes=${whole.length - 3}-` } });
    expect(await open.text()).toBe('99\n');
    const out = await h.req('GET', '/v1/tasks/w1/logs?stream=stdout', { headers: { range: `bytes=${whole.length}-` } });
    expect(out.status).toBe(416);
    expect(out.headers.get('content-range')).toBe(`bytes */${whole.length}`);
    expect((await errOf(out)).code).toBe('ERR_RANGE_NOT_SATISFIABLE');
    const junk = await h.req('GET', '/v1/tasks/w1/logs?stream=stdout', { headers: { range: 'lines=1-2' } });
    expect(junk.status).toBe(200);
    expect((await junk.arrayBuffer()).byteLength).toBe(whole.length);
  });

  it('bad queries: 400; unknown task: 404', async () => {
    for (const q of ['stream=all', 'follow=maybe', 'offset=-1', 'service=web', 'service=../x&stream=stdout', 'x=1']) {
      const r = await h.req('GET', `/v1/tasks/w1/logs?${q}`);
      expect(r.status, q).toBe(400);
    }
    const r = await h.req('GET', '/v1/tasks/w1/logs?follow=true', { headers: { 'last-event-id': 'abc' } });
    expect(r.status).toBe(400);
    expect((await h.req('GET', '/v1/tasks/none/logs')).status).toBe(404);
    expect((await h.req('GET', '/v1/tasks/none/logs?follow=true')).status).toBe(404);
    expect((await h.req('GET', '/v1/tasks/w1/logs', { token: null })).status).toBe(401);
  });
});

describe('follow', () => {
  it('NDJSON: a running task, from offset 0, is complete and ends with its state', async () => {
    await run('f1', 'i=0; while [ $i -lt 30 ]; do echo "tick $i"; i=$((i+1)); sleep 0.02; done');
    const r = await h.req('GET', '/v1/tasks/f1/logs?follow=true&stream=stdout', { token: 'read' });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    expect(r.headers.get('cache-control')).toBe('no-cache, no-transform');
    const lines = (await readAll(r)).trim().split('\n').map((l) => JSON.parse(l) as { offset?: number; data?: string; end?: boolean; state?: string; stream?: string });
    const last = lines.pop()!;
    expect(last).toMatchObject({ end: true, state: 'succeeded' });
    const data = lines.map((l) => l.data).join('');
    const file = await readFile(h.agent.queue.get('f1')!.logs!.stdout, 'utf8');
    expect(data).toBe(file);
    expect(lines.at(-1)!.offset).toBe(Buffer.byteLength(file));
    expect(lines.every((l) => l.stream === 'stdout')).toBe(true);
  });

  it('SSE: ids are byte offsets; resuming with Last-Event-ID gives exactly the rest', async () => {
    await run('f2', 'i=0; while [ $i -lt 2000 ]; do echo "row $i ................................................................"; i=$((i+1)); done');
    await finished(h, 'f2');
    const file = await readFile(h.agent.queue.get('f2')!.logPath!);
    const full = await h.req('GET', '/v1/tasks/f2/logs?follow=true', { headers: { accept: 'text/event-stream' } });
    expect(full.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = parseSse(await full.text());
    const logs = events.filter((e) => e.event === 'log');
    expect(logs.length).toBeGreaterThan(1);
    expect(events.at(-1)!.event).toBe('end');
    expect(JSON.parse(events.at(-1)!.data)).toMatchObject({ end: true, state: 'succeeded' });
    const mid = logs[0]!.id!;
    expect(Number(mid)).toBeGreaterThan(0);
    const resumed = await h.req('GET', '/v1/tasks/f2/logs?follow=true', { headers: { accept: 'text/event-stream', 'last-event-id': mid } });
    const rest = parseSse(await resumed.text())
      .filter((e) => e.event === 'log')
      .map((e) => (JSON.parse(e.data) as { data: string }).data)
      .join('');
    expect(Buffer.from(rest)).toEqual(file.subarray(Number(mid)));
    const viaQuery = await h.req('GET', `/v1/tasks/f2/logs?follow=true&offset=${file.length - 20}`);
    const tail = (await viaQuery.text()).trim().split('\n').map((l) => JSON.parse(l) as { data?: string });
    expect(tail.map((l) => l.data ?? '').join('')).toBe(file.subarray(file.length - 20).toString());
  });

  it('multi-byte characters are never split across chunks', async () => {
    await run('utf', "yes '€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€' | head -n 5000");
    await finished(h, 'utf');
    const file = await readFile(h.agent.queue.get('utf')!.logs!.stdout, 'utf8');
    expect(file.length).toBeGreaterThan(200_000);
    const r = await h.req('GET', '/v1/tasks/utf/logs?follow=true&stream=stdout');
    const lines = (await r.text()).trim().split('\n').map((l) => JSON.parse(l) as { data?: string });
    expect(lines.length).toBeGreaterThan(3);
    for (const l of lines) expect(l.data ?? '').not.toContain('\uFFFD');
    expect(lines.map((l) => l.data ?? '').join('')).toBe(file);
  });

  it('a client that leaves does not stop the task; close() cancels it and the stream ends with its state', async () => {
    const a = await startAgent();
    try {
      const s = await a.req('POST', '/v1/tasks', { json: { kind: 'process', id: 'forever', spec: { command: '/bin/sleep', args: ['120'] } } });
      expect(s.status).toBe(201);
      const ac = new AbortController();
      const gone = await fetch(`${a.url}/v1/tasks/forever/logs?follow=true`, { headers: { authorization: `Bearer ${TOKENS.read}` }, signal: ac.signal });
      expect(gone.status).toBe(200);
      ac.abort();
      const r = await fetch(`${a.url}/v1/tasks/forever/logs?follow=true`, { headers: { authorization: `Bearer ${TOKENS.read}`, accept: 'text/event-stream' } });
      expect(r.status).toBe(200);
      const body = r.text();
      await until(() => a.agent.queue.get('forever')?.state === 'running', 'running');
      expect(a.agent.queue.get('forever')!.state).toBe('running');
      await a.agent.close({ graceMs: 0 });
      const events = parseSse(await body);
      expect(events.at(-1)).toMatchObject({ event: 'end' });
      expect(JSON.parse(events.at(-1)!.data)).toMatchObject({ end: true, state: 'cancelled' });
    } finally {
      await a.close();
    }
  });

  it('close() with onTimeout requeue ends open follow streams without an end event (the client resumes later)', async () => {
    const a = await startAgent({ shutdown: { graceMs: 0, onTimeout: 'requeue' } });
    try {
      await a.req('POST', '/v1/tasks', { json: { kind: 'process', id: 'kept', spec: { command: '/bin/sh', args: ['-c', 'echo started; exec sleep 120'] } } });
      await until(() => a.agent.queue.get('kept')?.state === 'running', 'running');
      const r = await fetch(`${a.url}/v1/tasks/kept/logs?follow=true`, { headers: { authorization: `Bearer ${TOKENS.read}`, accept: 'text/event-stream' } });
      const body = r.text();
      await a.agent.close();
      const text = await body;
      expect(text).not.toContain('event: end');
      expect(a.agent.queue.get('kept')!.state).toBe('queued');
    } finally {
      await a.close();
    }
  });
});
