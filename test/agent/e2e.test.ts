// End to end through the HTTP API, with a client that knows only the served OpenAPI document
// (every response validated against it): 200 mixed process tasks (success with known stdout and
// stderr, some writing outputs, failure with its exit code, timeout, cancel through the API while running and while
// queued, retries that fail then succeed with a counter file in the workspace, retries that
// run out) and 10 Docker tasks writing outputs. Every final state, every log (whole, ranges,
// NDJSON and SSE follow from offsets) and every ZIP (sha256 header, entries) is checked against
// ground truth computed here.
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent, hashToken, type Agent } from 'smoothtask/agent';
import { IMAGE, engineGate, probeEngine, readZip } from '../docker/helpers.js';
import { readFollow } from '../fixtures/agent/follow.js';
import { OpenApiClient } from './openapi-client.js';

const TOKEN = 'e2e-token-0123456789abcdef';
const RUN = `e2e${process.pid}`;
const probe = await probeEngine();

interface Expect {
  id: string;
  state: 'succeeded' | 'failed' | 'timed_out' | 'cancelled';
  stdout?: string;
  stderr?: string;
  exitCode?: number;
  attempt?: number;
  files?: Record<string, string>;
  cancel?: 'running' | 'queued';
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const pad = (i: number) => String(i).padStart(3, '0');

/** The 200 process tasks and what each must end with. */
function processTasks(): Array<{ body: Record<string, unknown>; want: Expect }> {
  const out: Array<{ body: Record<string, unknown>; want: Expect }> = [];
  const sh = (script: string) => ({ command: 'sh', args: ['-c', script] });
  // Cancelled while running first, so that they hold slots when the cancels arrive.
  for (let i = 0; i < 10; i++) {
    const id = `${RUN}-cancel-run-${pad(i)}`;
    out.push({ body: { id, kind: 'process', spec: sh(`echo started ${id}; exec sleep 120`) }, want: { id, state: 'cancelled', stdout: `started ${id}\n`, cancel: 'running' } });
  }
  for (let i = 0; i < 120; i++) {
    const id = `${RUN}-ok-${pad(i)}`;
    const lines = (i * 37) % 900;
    // UTF-8 text that is not ASCII, so chunk boundaries can split characters.
    let stdout = `héllo ✓ ${id}\n`;
    for (let j = 0; j < lines; j++) stdout += `line ${j} of ${id} ✓\n`;
    // Every 8th writes outputs under out/ (the process task's ZIP).
    let outputs = '';
    let files: Record<string, string> | undefined;
    if (i % 8 === 0) {
      let seq = '';
      for (let k = 1; k <= i * 10 + 1; k++) seq += `${k}\n`;
      outputs = `; mkdir -p out/nested && printf 'result of %s\\n' ${q(id)} > out/r.txt && seq 1 ${i * 10 + 1} > out/nested/seq.txt`;
      files = { 'r.txt': `result of ${id}\n`, 'nested/seq.txt': seq };
    }
    out.push({
      body: {
        id,
        kind: 'process',
        labels: { run: RUN, mix: 'ok' },
        spec: sh(`printf '%s\\n' ${q(`héllo ✓ ${id}`)}; j=0; while [ $j -lt ${lines} ]; do echo "line $j of ${id} ✓"; j=$((j+1)); done; echo ${q(`err ${id}`)} >&2${outputs}`),
      },
      want: { id, state: 'succeeded', stdout, stderr: `err ${id}\n`, exitCode: 0, ...(files ? { files } : {}) },
    });
  }
  for (let i = 0; i < 30; i++) {
    const id = `${RUN}-fail-${pad(i)}`;
    const code = 1 + ((i * 7) % 120);
    out.push({ body: { id, kind: 'process', labels: { run: RUN, mix: 'fail' }, spec: sh(`echo failing ${id}; exit ${code}`) }, want: { id, state: 'failed', stdout: `failing ${id}\n`, exitCode: code } });
  }
  for (let i = 0; i < 20; i++) {
    const id = `${RUN}-timeout-${pad(i)}`;
    out.push({
      body: { id, kind: 'process', labels: { run: RUN, mix: 'timeout' }, timeoutMs: 1500, killAfterMs: 500, spec: sh(`echo start ${id}; exec sleep 60`) },
      want: { id, state: 'timed_out', stdout: `start ${id}\n` },
    });
  }
  for (let i = 0; i < 15; i++) {
    // 10 succeed at the third attempt; 5 run out of attempts at the second.
    const id = `${RUN}-retry-${pad(i)}`;
    const maxAttempts = i < 10 ? 4 : 2;
    const script = `n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo "attempt $n of ${id}"; [ "$n" -ge 3 ] || exit 7`;
    const runs = i < 10 ? 3 : 2;
    let stdout = '';
    for (let a = 1; a <= runs; a++) stdout += `attempt ${a} of ${id}\n`;
    out.push({
      body: { id, kind: 'process', labels: { run: RUN, mix: 'retry' }, retry: { maxAttempts, baseMs: 50, maxMs: 200 }, spec: sh(script) },
      want: i < 10 ? { id, state: 'succeeded', stdout, exitCode: 0, attempt: 3 } : { id, state: 'failed', stdout, exitCode: 7, attempt: 2 },
    });
  }
  for (let i = 0; i < 5; i++) {
    const id = `${RUN}-cancel-queued-${pad(i)}`;
    out.push({ body: { id, kind: 'process', spec: sh(`echo never ${id}; exec sleep 120`) }, want: { id, state: 'cancelled', cancel: 'queued' } });
  }
  return out;
}

/** The 10 container tasks: stdout and the files of their `out` folder. */
function dockerTasks(): Array<{ body: Record<string, unknown>; want: Expect }> {
  return Array.from({ length: 10 }, (_, i) => {
    const id = `${RUN}-docker-${pad(i)}`;
    let seq = '';
    for (let k = 1; k <= (i + 1) * 100; k++) seq += `${k}\n`;
    return {
      body: {
        id,
        kind: 'container',
        labels: { run: RUN, mix: 'docker' },
        spec: {
          image: IMAGE,
          network: 'none',
          command: ['sh', '-c', `echo docker ${id}; mkdir -p /work/out/sub; printf 'alpha-${i}\\n' > /work/out/a.txt; seq 1 ${(i + 1) * 100} > /work/out/sub/seq.txt`],
        },
      },
      want: { id, state: 'succeeded', stdout: `docker ${id}\n`, exitCode: 0, files: { 'a.txt': `alpha-${i}\n`, 'sub/seq.txt': seq } },
    };
  });
}

let dir: string;
let agent: Agent;
let api: OpenApiClient;
const docker = !!probe.engine;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'st-agent-e2e-'));
  agent = await createAgent({
    dataDir: join(dir, 'data'),
    listen: { host: '127.0.0.1', port: 0 },
    auth: { tokens: [{ name: 'e2e', sha256: hashToken(TOKEN), scopes: ['read', 'submit', 'admin'] }] },
    queue: { concurrency: 8, maxQueued: 1000, killAfterMs: 1000 },
    executors: { process: true, docker },
    policy: { process: { commands: ['sh'] }, docker: { images: [IMAGE], networkModes: ['none'] } },
    metrics: { enabled: false },
    shutdown: { graceMs: 0 },
  });
  await agent.listen();
  api = await OpenApiClient.connect(agent.url!, TOKEN);
});
afterAll(async () => {
  await agent?.close();
  await rm(dir, { recursive: true, force: true });
});

const FINAL = new Set(['succeeded', 'failed', 'timed_out', 'cancelled']);

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** Every task of the list, through the cursor pages. */
async function listAll(query: Record<string, string | number>): Promise<any[]> {
  const items: any[] = [];
  let cursor: string | undefined;
  const seen = new Set<string>();
  do {
    const r = await api.expect(200, 'GET /v1/tasks', { query: { ...query, limit: 50, ...(cursor ? { cursor } : {}) } });
    for (const t of r.body.items) {
      expect(seen.has(t.id), `task ${t.id} listed twice across pages`).toBe(false);
      seen.add(t.id);
      items.push(t);
    }
    cursor = r.body.nextCursor ?? undefined;
  } while (cursor);
  return items;
}

async function checkLogs(w: Expect): Promise<void> {
  if (w.stdout !== undefined) {
    const r = await api.expect(200, 'GET /v1/tasks/{id}/logs', { params: { id: w.id }, query: { stream: 'stdout' } });
    expect(r.body ?? '', `stdout of ${w.id}`).toBe(w.stdout);
  }
  if (w.stderr !== undefined) {
    const r = await api.expect(200, 'GET /v1/tasks/{id}/logs', { params: { id: w.id }, query: { stream: 'stderr' } });
    expect(r.body ?? '', `stderr of ${w.id}`).toBe(w.stderr);
  }
  if (w.stdout !== undefined && w.stderr !== undefined) {
    const r = await api.expect(200, 'GET /v1/tasks/{id}/logs', { params: { id: w.id }, query: { stream: 'combined' } });
    const combined = String(r.body ?? '');
    expect(Buffer.byteLength(combined), `combined log of ${w.id}`).toBe(Buffer.byteLength(w.stdout) + Buffer.byteLength(w.stderr));
    expect(combined.includes(w.stderr)).toBe(true);
  }
}

describe('agent end to end over HTTP', () => {
  it('the document is OpenAPI 3.1 and documents the task operations', () => {
    for (const op of ['POST /v1/tasks', 'GET /v1/tasks', 'GET /v1/tasks/{id}', 'POST /v1/tasks/{id}/cancel', 'DELETE /v1/tasks/{id}', 'GET /v1/tasks/{id}/logs', 'GET /v1/tasks/{id}/artifacts']) {
      expect(() => api.operation(op)).not.toThrow();
    }
  });

  it(`200 mixed process tasks${docker ? ' and 10 Docker tasks' : ''}: every state, log and ZIP against ground truth`, { timeout: 360_000 }, async () => {
    const tasks = [...processTasks(), ...(docker ? dockerTasks() : [])];
    expect(tasks.filter((t) => t.body.kind === 'process')).toHaveLength(200);
    expect(tasks.filter((t) => t.want.files).length).toBe(15 + (docker ? 10 : 0));
    const cancelRunning = tasks.filter((t) => t.want.cancel === 'running');
    const cancelQueued = tasks.filter((t) => t.want.cancel === 'queued');

    // Submit, 12 requests in flight; the running-cancel tasks first, the queued-cancel ones last.
    let next = 0;
    await Promise.all(
      Array.from({ length: 12 }, async () => {
        while (next < tasks.length) {
          const t = tasks[next++]!;
          const r = await api.expect(201, 'POST /v1/tasks', { body: t.body });
          expect(r.body.task.id).toBe(t.want.id);
          expect(r.headers.get('location')).toContain(`/v1/tasks/${t.want.id}`);
          if (t.want.cancel === 'queued') await api.expect(202, 'POST /v1/tasks/{id}/cancel', { params: { id: t.want.id } });
        }
      }),
    );
    // A second submit with a used id is refused and changes nothing.
    await api.expect(409, 'POST /v1/tasks', { body: tasks[20]!.body });

    // Cancel the sleepers once they run (their stdout line is written: the follow shows it).
    await Promise.all(
      cancelRunning.map(async (t) => {
        await until(`${t.want.id} running`, async () => {
          const r = await api.expect(200, 'GET /v1/tasks/{id}/logs', { params: { id: t.want.id }, query: { stream: 'stdout' } });
          return r.body === t.want.stdout ? true : undefined;
        });
        const r = await api.expect(202, 'POST /v1/tasks/{id}/cancel', { params: { id: t.want.id } });
        expect(['running', 'cancelled', 'starting']).toContain(r.body.task.state);
      }),
    );

    // Wait until every task of this run is final (the list filters by state).
    try {
      await until('all tasks final', async () => {
        const r = await api.expect(200, 'GET /v1/tasks', { query: { state: 'created,queued,starting,running,retrying', limit: 1 } });
        return r.body.items.length === 0 ? true : undefined;
      }, 300_000);
    } catch (e) {
      // Say which tasks are stuck and how they got there.
      const left = await listAll({ state: 'created,queued,starting,running,retrying' });
      const what = left.slice(0, 20).map((t) => `${t.id} ${t.state} info=${JSON.stringify(t.info)} history=${JSON.stringify(t.history)}`);
      throw new Error(`${(e as Error).message}: ${left.length} not final:\n${what.join('\n')}`);
    }

    const all = new Map((await listAll({})).map((t) => [t.id as string, t]));
    expect(all.size).toBe(tasks.length);
    const labelled = await listAll({ label: `run=${RUN}` });
    expect(labelled.length).toBe(tasks.filter((t) => (t.body.labels as Record<string, string> | undefined)?.run === RUN).length);
    const failedOnly = await listAll({ state: 'failed' });
    expect(failedOnly.length).toBe(tasks.filter((t) => t.want.state === 'failed').length);

    // Every record: state, exit code, attempts, history ends in the final state.
    for (const t of tasks) {
      const w = t.want;
      const { task } = (await api.expect(200, 'GET /v1/tasks/{id}', { params: { id: w.id } })).body;
      const state = task.outcome ?? task.state;
      expect(state, `state of ${w.id}: ${JSON.stringify(task.error ?? null)}`).toBe(w.state);
      expect(FINAL.has(state)).toBe(true);
      if (w.exitCode !== undefined) expect(task.exitCode, `exit code of ${w.id}`).toBe(w.exitCode);
      if (w.attempt !== undefined) expect(task.attempt, `attempts of ${w.id}`).toBe(w.attempt);
      expect(task.history.at(-1)?.to ?? task.state).toBe(task.state);
      expect(task.history.some((h: { to: string }) => h.to === w.state)).toBe(true);
      if (w.cancel === 'queued') expect(task.history.some((h: { to: string }) => h.to === 'running')).toBe(false);
    }

    // Every log against ground truth.
    let i = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (i < tasks.length) await checkLogs(tasks[i++]!.want);
      }),
    );

    // Byte ranges and follow streams from offsets, on finished tasks.
    const big = tasks.find((t) => t.want.id === `${RUN}-ok-023`)!.want; // 851 lines
    const bigBuf = Buffer.from(big.stdout!);
    const range = await api.expect(206, 'GET /v1/tasks/{id}/logs', { params: { id: big.id }, query: { stream: 'stdout' }, headers: { range: 'bytes=100-4099' } });
    expect(Buffer.from(range.body as string)).toEqual(bigBuf.subarray(100, 4100));
    expect(range.headers.get('content-range')).toBe(`bytes 100-4099/${bigBuf.length}`);
    for (const t of tasks.filter((x) => x.want.state === 'succeeded' && x.body.kind === 'process').slice(0, 12)) {
      const full = Buffer.from(t.want.stdout!);
      // A resume offset is one the server handed out (a character boundary): here a line start.
      const from = full.indexOf(10, Math.floor(full.length / 3)) + 1;
      const ndjson = await api.expect(200, 'GET /v1/tasks/{id}/logs', { params: { id: t.want.id }, query: { stream: 'stdout', follow: true, offset: from }, raw: true });
      const got: Buffer[] = [];
      const end = await readFollow(ndjson.response, (c) => void got.push(Buffer.from(c.data)));
      expect(end.ended).toBe(true);
      expect(end.state).toBe('succeeded');
      expect(Buffer.concat(got).toString(), `follow of ${t.want.id} from ${from}`).toBe(full.subarray(from).toString());
      const sse = await api.expect(200, 'GET /v1/tasks/{id}/logs', {
        params: { id: t.want.id },
        query: { stream: 'stdout', follow: true },
        headers: { accept: 'text/event-stream', 'last-event-id': String(from) },
        raw: true,
      });
      expect(sse.headers.get('content-type')).toContain('text/event-stream');
      const got2: string[] = [];
      const end2 = await readFollow(sse.response, (c) => void got2.push(c.data));
      expect(end2.ended).toBe(true);
      expect(got2.join('')).toBe(full.subarray(from).toString());
      expect(end2.lastOffset ?? from).toBe(full.length);
    }

    // A process task that wrote no out/ has no artifacts: 404, documented.
    await api.expect(404, 'GET /v1/tasks/{id}/artifacts', { params: { id: `${RUN}-ok-001` } });

    // Every ZIP (process tasks' out/, Docker tasks' outputs): download, sha256 header, entries.
    for (const t of tasks.filter((x) => x.want.files)) {
      const r = await api.expect(200, 'GET /v1/tasks/{id}/artifacts', { params: { id: t.want.id }, raw: true });
      expect(r.headers.get('content-type')).toContain('application/zip');
      const buf = Buffer.from(await r.response.arrayBuffer());
      expect(Number(r.headers.get('content-length'))).toBe(buf.length);
      expect(r.headers.get('x-checksum-sha256')).toBe(createHash('sha256').update(buf).digest('hex'));
      // Downloaded twice: the same bytes (a process task's ZIP is built on the first download).
      const again = await api.expect(200, 'GET /v1/tasks/{id}/artifacts', { params: { id: t.want.id }, raw: true });
      expect(Buffer.from(await again.response.arrayBuffer())).toEqual(buf);
      const file = join(dir, `${t.want.id}.zip`);
      await writeFile(file, buf);
      const entries = await readZip(file);
      const files = new Map([...entries].filter(([name]) => !name.endsWith('/')));
      expect(Object.fromEntries(files)).toEqual(t.want.files);
    }

    // Delete two finished tasks: the record, logs and artifacts go; the others stay.
    for (const id of [`${RUN}-fail-000`, ...(docker ? [`${RUN}-docker-000`] : [])]) {
      await api.expect(204, 'DELETE /v1/tasks/{id}', { params: { id } });
      await api.expect(404, 'GET /v1/tasks/{id}', { params: { id } });
      await api.expect(404, 'GET /v1/tasks/{id}/logs', { params: { id } });
      await api.expect(404, 'GET /v1/tasks/{id}/artifacts', { params: { id } });
    }
    expect((await listAll({})).length).toBe(tasks.length - (docker ? 2 : 1));
    console.log(`e2e: ${tasks.length} tasks; operations/status seen: ${[...api.seen].map(([k, n]) => `${k} x${n}`).join(', ')}`);
  });
});

describe.skipIf(engineGate(probe))('agent e2e needs Docker', () => {
  it('the Docker engine answered', () => expect(probe.engine).toBeDefined());
});
