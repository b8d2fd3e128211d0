// The agent process restarted mid-run, as an operator runs it (`smoothtask agent --config`):
// - SIGKILL with `queue.recovery: fail`: finished records and their logs survive; tasks that
//   were running end `failed` with ERR_TASK_INTERRUPTED (and their commands are gone); queued
//   ones run on the new agent; a
//   follow of an interrupted task resumes on the new agent from the offset the old one reached
//   (NDJSON `offset`), and the two pieces together are the whole log.
// - SIGTERM with `shutdown.onTimeout: requeue` and `queue.recovery: requeue`: the agent exits 0
//   after its grace; the running task is requeued and runs again on the new agent, where an SSE
//   follow resumes from `Last-Event-ID` while it runs and ends with the task; again the pieces
//   concatenated equal the whole log.
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from 'smoothtask/agent';
import { readFollow } from '../fixtures/agent/follow.js';
import { spawnAgent, type AgentChild } from '../fixtures/agent/spawn.js';
import { OpenApiClient } from './openapi-client.js';

const TOKEN = 'restart-token-0123456789abcdef';
let dir: string;
const children: AgentChild[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'st-agent-restart-'));
});
afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.child.exitCode === null && c.child.signalCode === null) {
      c.child.kill('SIGKILL');
      await c.exited;
    }
  }
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function config(dataDir: string, extra: { recovery: 'fail' | 'requeue'; onTimeout: 'cancel' | 'requeue'; concurrency: number }) {
  return {
    dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    auth: { tokens: [{ name: 'r', sha256: hashToken(TOKEN), scopes: ['read', 'submit', 'admin'] }] },
    queue: { concurrency: extra.concurrency, recovery: extra.recovery, killAfterMs: 1000 },
    policy: { process: { commands: ['sh'] } },
    metrics: { enabled: false },
    shutdown: { graceMs: 500, onTimeout: extra.onTimeout },
  };
}

async function start(name: string, cfg: ReturnType<typeof config>): Promise<{ a: AgentChild; api: OpenApiClient }> {
  const cdir = join(dir, name);
  await import('node:fs/promises').then((f) => f.mkdir(cdir, { recursive: true }));
  const a = await spawnAgent(cfg, cdir);
  children.push(a);
  return { a, api: await OpenApiClient.connect(a.url, TOKEN) };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** Pids of live processes whose environment names task `id` (SMOOTHTASK_TASK_ID, set by the process executor). */
function taskPids(id: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const env = readFileSync(`/proc/${e}/environ`, 'latin1').split('\0');
      if (env.includes(`SMOOTHTASK_TASK_ID=${id}`) && !/^Z/m.test(readFileSync(`/proc/${e}/stat`, 'latin1').split(') ')[1] ?? '')) out.push(Number(e));
    } catch {
      /* gone, or not ours */
    }
  }
  return out;
}

const sh = (script: string) => ({ command: 'sh', args: ['-c', script] });
/** A task printing `tick 0` .. `tick n-1`, one every 50 ms. */
const ticker = (n: number) => sh(`i=0; while [ $i -lt ${n} ]; do echo "tick $i"; i=$((i+1)); sleep 0.05; done`);
const ticks = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `tick ${from + i}\n`).join('');

/**
 * Follows a task's stdout from offset 0 (NDJSON, or SSE) until at least `minBytes` arrived;
 * keeps reading in the background. `text()` is what has arrived so far (whole chunks only).
 */
function followInBackground(api: OpenApiClient, id: string, sse: boolean) {
  let text = '';
  let enough: () => void;
  const reached = new Promise<void>((r) => (enough = r));
  let minBytes = Infinity;
  const done = (async () => {
    const r = await api.expect(200, 'GET /v1/tasks/{id}/logs', {
      params: { id },
      query: { stream: 'stdout', follow: true, ...(sse ? {} : { offset: 0 }) },
      headers: sse ? { accept: 'text/event-stream' } : { accept: 'application/x-ndjson' },
      raw: true,
    });
    return readFollow(r.response, (c) => {
      text += c.data;
      if (Buffer.byteLength(text) >= minBytes) enough();
    });
  })();
  done.catch(() => {}); // the agent goes away mid-stream
  return {
    text: () => text,
    until: (n: number) => {
      minBytes = n;
      if (Buffer.byteLength(text) >= n) enough();
      return reached;
    },
    done,
  };
}

describe('agent restart (child process, smoothtask agent --config)', () => {
  it('SIGKILL mid-run, recovery fail: records survive, running tasks fail ERR_TASK_INTERRUPTED, queued ones run, follow resumes from an offset', { timeout: 240_000 }, async () => {
    const data = join(dir, 'kill-data');
    const cfg = config(data, { recovery: 'fail', onTimeout: 'cancel', concurrency: 2 });
    const { a: a1, api: api1 } = await start('kill-1', cfg);

    const done = ['kill-done-0', 'kill-done-1'];
    for (const id of done) await api1.expect(201, 'POST /v1/tasks', { body: { id, kind: 'process', spec: sh(`echo finished ${id}`) } });
    for (const id of done) await until(`${id} succeeded`, async () => ((await api1.expect(200, 'GET /v1/tasks/{id}', { params: { id } })).body.task.state === 'succeeded' ? true : undefined));
    const long = ['kill-long-0', 'kill-long-1'];
    for (const id of long) await api1.expect(201, 'POST /v1/tasks', { body: { id, kind: 'process', spec: ticker(2000) } });
    const queued = ['kill-queued-0', 'kill-queued-1', 'kill-queued-2'];
    for (const id of queued) await api1.expect(201, 'POST /v1/tasks', { body: { id, kind: 'process', spec: sh(`echo ran ${id}`) } });

    const f = followInBackground(api1, 'kill-long-0', false);
    await f.until(ticks(0, 20).length);
    for (const id of queued) expect((await api1.expect(200, 'GET /v1/tasks/{id}', { params: { id } })).body.task.state).toBe('queued');
    const pids = new Map<string, number[]>();
    for (const id of long) {
      pids.set(id, await until(`processes of ${id}`, async () => (taskPids(id).length ? taskPids(id) : undefined)));
    }
    a1.child.kill('SIGKILL');
    expect((await a1.exited).signal).toBe('SIGKILL');
    await f.done.catch(() => {});
    const before = f.text();
    expect(before.startsWith(ticks(0, 20))).toBe(true);

    const { api: api2 } = await start('kill-2', cfg);
    const all = await api2.expect(200, 'GET /v1/tasks', { query: { limit: 100 } });
    expect(all.body.items.map((t: { id: string }) => t.id).sort()).toEqual([...done, ...long, ...queued].sort());
    for (const id of done) {
      expect((await api2.expect(200, 'GET /v1/tasks/{id}', { params: { id } })).body.task.state).toBe('succeeded');
      expect((await api2.expect(200, 'GET /v1/tasks/{id}/logs', { params: { id }, query: { stream: 'stdout' } })).body).toBe(`finished ${id}\n`);
    }
    for (const id of long) {
      const t = (await api2.expect(200, 'GET /v1/tasks/{id}', { params: { id } })).body.task;
      expect(t.outcome ?? t.state).toBe('failed');
      expect(t.error?.code).toBe('ERR_TASK_INTERRUPTED');
      // The orphaned commands do not live on (they die on their next write to the dead agent's pipe).
      await until(`processes ${pids.get(id)!.join(' ')} of ${id} gone`, async () => (taskPids(id).length === 0 ? true : undefined), 30_000);
    }
    for (const id of queued) {
      const t = await until(`${id} final`, async () => {
        const r = (await api2.expect(200, 'GET /v1/tasks/{id}', { params: { id } })).body.task;
        return ['succeeded', 'failed', 'timed_out', 'cancelled'].includes(r.state) ? r : undefined;
      });
      expect(t.state).toBe('succeeded');
      expect((await api2.expect(200, 'GET /v1/tasks/{id}/logs', { params: { id }, query: { stream: 'stdout' } })).body).toBe(`ran ${id}\n`);
    }

    // Resume the follow on the new agent from where the old one stopped (NDJSON, ?offset=).
    const offset = Buffer.byteLength(before);
    const r = await api2.expect(200, 'GET /v1/tasks/{id}/logs', { params: { id: 'kill-long-0' }, query: { stream: 'stdout', follow: true, offset }, raw: true });
    let rest = '';
    const end = await readFollow(r.response, (c) => void (rest += c.data));
    expect(end.ended).toBe(true);
    expect(end.state).toBe('failed');
    const whole = (await api2.expect(200, 'GET /v1/tasks/{id}/logs', { params: { id: 'kill-long-0' }, query: { stream: 'stdout' } })).body as string;
    expect(before + rest).toBe(whole);
    // What the task printed before the kill is all there, in order, and nothing after it ran.
    const n = whole.split('\n').length - 1;
    expect(n).toBeGreaterThanOrEqual(20);
    expect(whole).toBe(ticks(0, n));
  });

  it('SIGTERM mid-run, onTimeout requeue: exit 0, the task runs again on the restarted agent, an SSE follow resumes from Last-Event-ID', { timeout: 240_000 }, async () => {
    const data = join(dir, 'term-data');
    const cfg = config(data, { recovery: 'requeue', onTimeout: 'requeue', concurrency: 1 });
    const { a: a1, api: api1 } = await start('term-1', cfg);
    const N = 120; // about 6 s of ticks
    await api1.expect(201, 'POST /v1/tasks', { body: { id: 'term-long', kind: 'process', spec: ticker(N) } });
    await api1.expect(201, 'POST /v1/tasks', { body: { id: 'term-queued', kind: 'process', spec: sh('echo ran term-queued') } });

    const f = followInBackground(api1, 'term-long', true);
    await f.until(ticks(0, 10).length);
    a1.child.kill('SIGTERM');
    const exit = await a1.exited;
    expect(exit, a1.stderr()).toEqual({ code: 0, signal: null });
    await f.done.catch(() => {});
    const before = f.text();
    expect(before.startsWith(ticks(0, 10))).toBe(true);

    const { api: api2 } = await start('term-2', cfg);
    const rec = (await api2.expect(200, 'GET /v1/tasks/{id}', { params: { id: 'term-long' } })).body.task;
    expect(['queued', 'starting', 'running', 'succeeded']).toContain(rec.state);
    expect(rec.history.some((h: { event: string }) => h.event === 'requeue')).toBe(true);
    expect((await api2.expect(200, 'GET /v1/tasks/{id}', { params: { id: 'term-queued' } })).body.task.state).not.toBe('failed');

    // Resume with Last-Event-ID = the bytes the old agent delivered; ends when the re-run ends.
    const r = await api2.expect(200, 'GET /v1/tasks/{id}/logs', {
      params: { id: 'term-long' },
      query: { stream: 'stdout', follow: true },
      headers: { accept: 'text/event-stream', 'last-event-id': String(Buffer.byteLength(before)) },
      raw: true,
    });
    let rest = '';
    const end = await readFollow(r.response, (c) => void (rest += c.data));
    expect(end.ended).toBe(true);
    expect(end.state).toBe('succeeded');
    const whole = (await api2.expect(200, 'GET /v1/tasks/{id}/logs', { params: { id: 'term-long' }, query: { stream: 'stdout' } })).body as string;
    expect(before + rest).toBe(whole);
    expect(end.lastOffset).toBe(Buffer.byteLength(whole));
    // The first attempt's ticks, cut by the stop, then the whole second run.
    expect(whole.endsWith(ticks(0, N))).toBe(true);
    const firstRun = whole.slice(0, whole.length - ticks(0, N).length);
    expect(firstRun.length).toBeGreaterThanOrEqual(ticks(0, 10).length);
    expect(ticks(0, N).startsWith(firstRun)).toBe(true);

    const q = await until('term-queued final', async () => {
      const t = (await api2.expect(200, 'GET /v1/tasks/{id}', { params: { id: 'term-queued' } })).body.task;
      return ['succeeded', 'failed', 'timed_out', 'cancelled'].includes(t.state) ? t : undefined;
    });
    expect(q.state).toBe('succeeded');
  });
});
