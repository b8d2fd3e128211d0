// SIGTERM/SIGINT on a real `smoothtask agent` process with a real running process task,
// submitted over loopback HTTP with plain fetch: the process stops accepting, lets the task
// finish within shutdown.graceMs or cancels/requeues it after, writes the outcome to the store
// on disk, leaves no child behind and exits 0; a second signal stops it at once with exit 1.
import { randomUUID } from 'node:crypto';
import { createHash } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startCli } from './cli-run.js';
import { JsonStore, StoreTaskPersistence } from '../../lib/store/index.js';
import type { TaskRecord } from '../../lib/task/index.js';

const TOKEN = `tok-shutdown-${randomUUID()}`;
const HASH = createHash('sha256').update(TOKEN).digest('hex');
let root: string;
const children: ChildProcess[] = [];
const markers: string[] = [];

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'st-shutdown-'));
});
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  // A failed run may leave task processes behind: end only ours, found by their unique marker.
  for (const m of markers.splice(0))
    for (const pid of processesWith(m)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Running {
  child: ChildProcess;
  url: string;
  dataDir: string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

async function startAgent(shutdown: { graceMs: number; onTimeout?: 'cancel' | 'requeue' }, env: Record<string, string> = {}, detached = false): Promise<Running> {
  const dir = mkdtempSync(join(root, 'a-'));
  const cfg = join(dir, 'agent.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      dataDir: './data',
      listen: { host: '127.0.0.1', port: 0 },
      auth: { tokens: [{ name: 'test', sha256: HASH, scopes: ['read', 'submit', 'admin'] }] },
      queue: { killAfterMs: 2000 },
      policy: { process: { commands: ['/bin/sh'] } },
      metrics: { enabled: false },
      shutdown,
    }),
  );
  const child = startCli(['agent', '--config', cfg], { env, detached });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  const url = await until(
    () => /listening on (http:\/\/\S+)/.exec(out)?.[1],
    60_000,
    () => `agent did not start: ${err}`,
  );
  return { child, url, dataDir: join(dir, 'data'), stderr: () => err, exited };
}

async function until<T>(fn: () => T | undefined | Promise<T | undefined>, ms: number, what: () => string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const auth = { authorization: `Bearer ${TOKEN}` };

async function submit(url: string, script: string): Promise<string> {
  const res = await fetch(`${url}/v1/tasks`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ kind: 'process', spec: { command: '/bin/sh', args: ['-c', script] } }),
  });
  const body = (await res.json()) as { task?: { id: string } };
  expect(res.status, JSON.stringify(body)).toBe(201);
  return body.task!.id;
}

async function stateOf(url: string, id: string): Promise<string> {
  const res = await fetch(`${url}/v1/tasks/${id}`, { headers: auth });
  return ((await res.json()) as { task: { state: string } }).task.state;
}

/** The task records the agent left on disk (what a restart would find: snapshot and journal). */
async function recordsOnDisk(dataDir: string): Promise<TaskRecord[]> {
  return StoreTaskPersistence.inspect(await JsonStore.open({ dir: join(dataDir, 'store') }));
}

/** The task's record as the agent left it on disk. */
async function recordOnDisk(dataDir: string, id: string): Promise<{ state: string }> {
  const recs = await recordsOnDisk(dataDir);
  const rec = recs.find((r) => r.id === id);
  if (!rec) throw new Error(`no record of ${id} under ${dataDir}/store (${recs.map((r) => r.id).join(', ')})`);
  return rec;
}

/** Pids of live processes whose command line contains `marker`. */
function processesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(marker)) pids.push(Number(p));
    } catch {
      // gone
    }
  }
  return pids;
}

describe('smoothtask agent: signals and shutdown', () => {
  it('SIGTERM: stops accepting, lets the running task finish within the grace, records it succeeded, exits 0', async () => {
    const a = await startAgent({ graceMs: 30_000, onTimeout: 'cancel' });
    const marker = `st-finish-${randomUUID()}`;
    markers.push(marker);
    const id = await submit(a.url, `sleep 2; echo ${marker}-done; : ${marker}`);
    await until(async () => ((await stateOf(a.url, id)) === 'running' ? true : undefined), 30_000, () => 'task never ran');
    const t0 = Date.now();
    a.child.kill('SIGTERM');
    await until(() => (a.stderr().includes('SIGTERM: stopping') ? true : undefined), 10_000, a.stderr);
    // While the task finishes, new work is refused (503) or the port is already closed.
    const refused = await fetch(`${a.url}/v1/tasks`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'process', spec: { command: '/bin/sh', args: ['-c', 'true'] } }),
    }).then(
      (r) => r.status,
      () => 'connection refused',
    );
    expect([503, 'connection refused']).toContain(refused);
    const { code, signal, at } = await a.exited;
    expect(signal).toBeNull();
    expect(code, a.stderr()).toBe(0);
    expect(at - t0).toBeLessThan(30_000); // within the grace
    const rec = await recordOnDisk(a.dataDir, id);
    expect(rec.state).toBe('succeeded');
    expect(processesWith(marker)).toEqual([]);
    // Exactly one task was ever recorded: the refused submission created nothing.
    expect((await recordsOnDisk(a.dataDir)).map((d) => d.id)).toEqual([id]);
  });

  it('SIGTERM past the grace: cancels the running task (onTimeout cancel), kills its processes, exits 0', async () => {
    const a = await startAgent({ graceMs: 1500, onTimeout: 'cancel' });
    const marker = `st-cancel-${randomUUID()}`;
    markers.push(marker);
    const id = await submit(a.url, `sleep 120; : ${marker}`);
    await until(async () => ((await stateOf(a.url, id)) === 'running' ? true : undefined), 30_000, () => 'task never ran');
    expect(processesWith(marker).length).toBeGreaterThan(0);
    const t0 = Date.now();
    a.child.kill('SIGTERM');
    const { code, at } = await a.exited;
    expect(code, a.stderr()).toBe(0);
    expect(at - t0).toBeGreaterThanOrEqual(1400); // the grace was honoured
    expect(at - t0).toBeLessThan(45_000);
    expect((await recordOnDisk(a.dataDir, id)).state).toBe('cancelled');
    expect(processesWith(marker)).toEqual([]);
  });

  it('SIGINT past the grace with onTimeout requeue: the task is recorded queued again, exits 0', async () => {
    const a = await startAgent({ graceMs: 500, onTimeout: 'requeue' });
    const marker = `st-requeue-${randomUUID()}`;
    markers.push(marker);
    const id = await submit(a.url, `sleep 120; : ${marker}`);
    await until(async () => ((await stateOf(a.url, id)) === 'running' ? true : undefined), 30_000, () => 'task never ran');
    a.child.kill('SIGINT');
    const { code } = await a.exited;
    expect(code, a.stderr()).toBe(0);
    expect((await recordOnDisk(a.dataDir, id)).state).toBe('queued');
    expect(processesWith(marker)).toEqual([]);
  });

  it('a second signal stops at once: the task is cancelled long before the grace ends, exit 1', async () => {
    const a = await startAgent({ graceMs: 300_000, onTimeout: 'cancel' });
    const marker = `st-second-${randomUUID()}`;
    markers.push(marker);
    const id = await submit(a.url, `sleep 120; : ${marker}`);
    await until(async () => ((await stateOf(a.url, id)) === 'running' ? true : undefined), 30_000, () => 'task never ran');
    a.child.kill('SIGTERM');
    await until(() => (a.stderr().includes('SIGTERM: stopping') ? true : undefined), 10_000, a.stderr);
    const t0 = Date.now();
    a.child.kill('SIGTERM');
    const { code, at } = await a.exited;
    expect(code, a.stderr()).toBe(1);
    expect(at - t0).toBeLessThan(30_000); // not the 300 s grace
    expect((await recordOnDisk(a.dataDir, id)).state).toBe('cancelled');
    expect(processesWith(marker)).toEqual([]);
  });

  it('Ctrl-C in a terminal (SIGINT to the whole process group) still gives running tasks their grace', async () => {
    const a = await startAgent({ graceMs: 30_000, onTimeout: 'cancel' }, {}, true);
    const marker = `st-ctrlc-${randomUUID()}`;
    markers.push(marker);
    const id = await submit(a.url, `sleep 2; : ${marker}`);
    await until(async () => ((await stateOf(a.url, id)) === 'running' ? true : undefined), 30_000, () => 'task never ran');
    process.kill(-a.child.pid!, 'SIGINT');
    const { code } = await a.exited;
    expect(code, a.stderr()).toBe(0);
    expect((await recordOnDisk(a.dataDir, id)).state).toBe('succeeded');
    expect(processesWith(marker)).toEqual([]);
  });

  it('SMOOTHTASK_AGENT__* variables (possibly secrets) configure the agent but do not reach its process tasks', async () => {
    const a = await startAgent({ graceMs: 5000 }, { SMOOTHTASK_AGENT__QUEUE__CONCURRENCY: '3', SMOOTHTASK_AGENT__HTTP__PUBLIC_STATUS: 'true' });
    // Exit status = number of inherited SMOOTHTASK_AGENT__ variables: 0 means none leaked.
    const id = await submit(a.url, 'exit $(env | grep -c "^SMOOTHTASK_AGENT__")');
    const final = await until(
      async () => {
        const s = await stateOf(a.url, id);
        return ['succeeded', 'failed'].includes(s) ? s : undefined;
      },
      30_000,
      () => 'task never ended',
    );
    expect(final).toBe('succeeded');
    a.child.kill('SIGTERM');
    expect((await a.exited).code).toBe(0);
  });
});
