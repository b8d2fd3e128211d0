import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaseError, ProcessExecutor, ResourceLeaseManager } from 'smoothtask/process';
import { TaskQueue, type LogEvent } from 'smoothtask/task';
import { pgrep, pidsWithMarker } from './helpers.js';

let dataDir: string;
let q: TaskQueue;
const leases = new ResourceLeaseManager({ resources: { gpu: { ids: [0, 1] }, port: { range: [21000, 21002] }, memory: { capacity: 1000 } } });
beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'st-proc-'));
  q = new TaskQueue({ concurrency: 4, dataDir, killAfterMs: 300, leases });
  q.registerExecutor('process', new ProcessExecutor());
});
afterAll(async () => {
  await q.close();
  await rm(dataDir, { recursive: true, force: true });
});

// A unique sleep duration marks every process of a test (sh and sleep alike) in /proc.
const marker = () => `29.${String(randomBytes(4).readUInt32BE()).padStart(10, '0')}`;

describe('process executor', () => {
  it('runs a command: env, cwd = workspace, stdin, stdout/stderr logs streamed live, exit code, outputs', async () => {
    const live: LogEvent[] = [];
    const off = q.onLog((e) => live.push(e));
    const r = await q.submit({
      kind: 'process',
      spec: {
        command: 'echo "hi $GREETING from $(pwd)"; cat > in.txt; echo oops >&2; echo done > out.txt; exit 0',
        shell: true,
        env: { GREETING: 'there' },
        stdin: 'fed',
        outputs: ['out.txt', 'missing.txt'],
      },
    }).done;
    off();
    expect(r.state).toBe('succeeded');
    expect(r.exitCode).toBe(0);
    expect(r.signal).toBeNull();
    expect(typeof r.info.pid).toBe('number');
    expect(await readFile(r.logs!.stdout, 'utf8')).toBe(`hi there from ${r.workspace}\n`);
    expect(await readFile(r.logs!.stderr, 'utf8')).toBe('oops\n');
    expect(await readFile(join(r.workspace!, 'in.txt'), 'utf8')).toBe('fed');
    expect(r.outputs).toEqual([join(r.workspace!, 'out.txt')]);
    expect(live.filter((e) => e.taskId === r.id && e.stream === 'stdout').map((e) => e.chunk).join('')).toContain('hi there');
    expect(await readFile(r.logs!.system, 'utf8')).toMatch(/spawned pid \d+/);
  });

  it('followLog streams a running task from its first byte to its end, and a finished one from its files', async () => {
    const h = q.submit({ kind: 'process', spec: { command: 'for i in 1 2 3; do echo line$i; sleep 0.05; done; echo err >&2', shell: true } });
    while (q.get(h.id)?.state !== 'running') await sleep(2);
    const got = { stdout: '', stderr: '' } as Record<string, string>;
    for await (const ev of q.followLog(h.id)) got[ev.stream] += ev.chunk;
    expect(q.get(h.id)?.state).toBe('succeeded');
    expect(got).toEqual({ stdout: 'line1\nline2\nline3\n', stderr: 'err\n' });
    const after: string[] = [];
    for await (const ev of q.followLog(h.id)) after.push(ev.chunk);
    expect(after.join('')).toBe('line1\nline2\nline3\nerr\n');
  });

  it('non-zero exit fails; a missing executable fails with the spawn error', async () => {
    const a = await q.submit({ kind: 'process', spec: { command: 'sh', args: ['-c', 'exit 7'] } }).done;
    expect(a.state).toBe('failed');
    expect(a.exitCode).toBe(7);
    const b = await q.submit({ kind: 'process', spec: { command: '/nonexistent/binary' } }).done;
    expect(b.state).toBe('failed');
    expect(b.error?.message).toMatch(/ENOENT/);
  });

  it('timeout: TERM to the whole group, SIGKILL after grace for members that ignore it; nothing survives', async () => {
    const m = marker();
    // leader and a grandchild both ignore TERM; the grandchild would hold the pipes open
    const h = q.submit({
      kind: 'process',
      spec: { command: `trap '' TERM; sh -c "trap '' TERM; sleep ${m}" & sleep ${m}`, shell: true },
      timeoutMs: 300,
      killAfterMs: 300,
    });
    await sleep(150);
    expect(pidsWithMarker(m).length).toBeGreaterThanOrEqual(3); // sh, inner sh, 2 sleeps (some may be starting)
    const t0 = Date.now();
    const r = await h.done;
    expect(r.state).toBe('timed_out');
    expect(r.signal).toBe('SIGKILL');
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await readFile(r.logs!.system, 'utf8')).toMatch(/SIGKILL after grace/);
    expect(pidsWithMarker(m)).toEqual([]);
    expect(pgrep(m)).toEqual([]);
  });

  it('cancel of a polite process: TERM suffices, background members are cleaned up', async () => {
    const m = marker();
    const h = q.submit({ kind: 'process', spec: { command: `sleep ${m} & sleep ${m}`, shell: true } });
    while (q.get(h.id)?.state !== 'running') await sleep(5);
    await sleep(100);
    expect(pidsWithMarker(m).length).toBeGreaterThanOrEqual(2);
    await h.cancel('user');
    const r = await h.done;
    expect(r.state).toBe('cancelled');
    expect(r.signal).toBe('SIGTERM');
    expect(pidsWithMarker(m)).toEqual([]);
  });

  it('a leader that exits on its own takes its leftover group members with it', async () => {
    const m = marker();
    const r = await q.submit({ kind: 'process', spec: { command: `(sleep ${m}) & sleep 0.2; echo started`, shell: true } }).done;
    expect(r.state).toBe('succeeded');
    await sleep(50);
    expect(pidsWithMarker(m)).toEqual([]);
  });

  it('leases: declared resources reach the process env and come back on every ending', async () => {
    const r = await q.submit({
      kind: 'process',
      spec: { command: 'echo "$CUDA_VISIBLE_DEVICES|$SMOOTHTASK_LEASE_PORT|$SMOOTHTASK_LEASE_MEMORY"', shell: true },
      resources: [{ resource: 'gpu', count: 2 }, { resource: 'port' }, { resource: 'memory', amount: 600 }],
    }).done;
    expect(await readFile(r.logs!.stdout, 'utf8')).toBe('0,1|21000|600\n');
    expect(r.leases.every((l) => l.releasedAt !== undefined)).toBe(true);
    expect(leases.leases()).toEqual([]);
    // two tasks wanting 600 of 1000 memory never run together
    const running = new Set<string>();
    let overlap = false;
    const off = q.onTransition((e) => {
      if (e.to === 'running') {
        if (running.size) overlap = true;
        running.add(e.task.id);
      }
      if (e.from === 'running') running.delete(e.task.id);
    });
    const hs = [0, 1, 2].map(() =>
      q.submit({ kind: 'process', spec: { command: 'sleep 0.1', shell: true }, resources: [{ resource: 'memory', amount: 600 }], timeoutMs: 50 + 10_000 }),
    );
    const ends = await Promise.all(hs.map((h) => h.done));
    off();
    expect(ends.map((e) => e.state)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(overlap).toBe(false);
    expect(leases.available('memory')).toEqual({ amount: 1000 });
  });
});

describe('ResourceLeaseManager', () => {
  it('never double-holds, waits FIFO, rejects impossible requests', async () => {
    const m = new ResourceLeaseManager({ resources: { gpu: { ids: ['a', 'b'] }, mem: { capacity: 10 } } });
    const a = m.tryAcquire('t1', { resource: 'gpu' })!;
    const b = m.tryAcquire('t2', { resource: 'gpu', ids: ['b'] })!;
    expect([a.ids, b.ids]).toEqual([['a'], ['b']]);
    expect(m.tryAcquire('t3', { resource: 'gpu' })).toBeUndefined();
    expect(m.tryAcquire('t3', { resource: 'gpu', ids: ['a'] })).toBeUndefined();
    const waiting = m.acquire('t3', { resource: 'gpu' });
    const waiting2 = m.acquire('t4', { resource: 'gpu' });
    m.release(b.id);
    m.release(b.id); // idempotent
    expect((await waiting).ids).toEqual(['b']);
    expect(m.releaseHolder('t1')).toBe(1);
    expect((await waiting2).ids).toEqual(['a']);
    await expect(m.acquire('t5', { resource: 'gpu' }, { timeoutMs: 30 })).rejects.toThrow(LeaseError);
    const ac = new AbortController();
    const aborted = m.acquire('t6', { resource: 'gpu' }, { signal: ac.signal });
    ac.abort(new Error('nope'));
    await expect(aborted).rejects.toThrow('nope');
    expect(() => m.tryAcquire('x', { resource: 'gpu', count: 3 })).toThrow(LeaseError);
    expect(() => m.tryAcquire('x', { resource: 'nope' })).toThrow(/Unknown resource/);
    expect(() => m.tryAcquire('x', { resource: 'mem', amount: 11 })).toThrow(LeaseError);
    const x = m.tryAcquire('x', { resource: 'mem', amount: 6 })!;
    expect(m.tryAcquire('y', { resource: 'mem', amount: 5 })).toBeUndefined();
    expect(m.tryAcquire('y', { resource: 'mem', amount: 4 })).toBeDefined();
    m.release(x.id);
    expect(m.available('mem')).toEqual({ amount: 6 });
  });
});
