import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessExecutor, cgroupSupport, reapStaleCgroups } from 'smoothtask/process';
import { TaskQueue } from 'smoothtask/task';
import { until } from '../metrics/helpers.js';
import { bundleChild, exited, startChild } from '../store/helpers.js';
import { pgrep, pidsWithMarker } from './helpers.js';

// Containment of process tasks in their own cgroup (needs root and a writable cgroup
// hierarchy, as on the test machines: cgroup v1 controllers plus cgroup2 mounted beside them).
let dataDir: string;
let q: TaskQueue;
const ex = new ProcessExecutor();
beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'st-cg-'));
  q = new TaskQueue({ concurrency: 4, dataDir, killAfterMs: 300 });
  q.registerExecutor('process', ex);
});
afterAll(async () => {
  await q.close();
  await rm(dataDir, { recursive: true, force: true });
});

// A unique sleep duration marks every process of a test in /proc.
const marker = () => `3${String(randomBytes(2).readUInt16BE() % 100).padStart(2, '0')}.${String(randomBytes(4).readUInt32BE()).padStart(10, '0')}`;
const gone = (m: string) => until(() => pidsWithMarker(m).length === 0 && pgrep(m).length === 0, 10_000);

describe('process tasks in a cgroup', () => {
  it('the machine offers a writable cgroup (else these tests say why)', () => {
    const s = cgroupSupport();
    expect(s.reason ?? '').toBe('');
    expect(s.mode).not.toBe('process-group');
  });

  it('timeout: a setsid escapee that holds the pipes is killed and the task ends promptly', async () => {
    const m = marker();
    const t0 = Date.now();
    const r = await q.submit({ kind: 'process', spec: { command: `setsid sleep ${m} & sleep 1${m}`, shell: true }, timeoutMs: 1000, killAfterMs: 300 }).done;
    expect(r.state).toBe('timed_out');
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(await gone(m)).toBe(true);
    expect(r.info.containment).toMatch(/^cgroup/);
  }, 30_000);

  it('cancel: the same escapee is killed with the rest', async () => {
    const m = marker();
    const h = q.submit({ kind: 'process', spec: { command: `setsid sleep ${m} & sleep 1${m}`, shell: true }, killAfterMs: 300 });
    await until(() => pidsWithMarker(m).length >= 2, 10_000);
    const t0 = Date.now();
    await h.cancel('user');
    const r = await h.done;
    expect(r.state).toBe('cancelled');
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(await gone(m)).toBe(true);
  }, 30_000);

  it('escapees that closed their pipes and double-forked daemons die when the leader exits', async () => {
    const m = marker();
    const r = await q.submit({
      kind: 'process',
      spec: { command: `setsid sh -c 'exec >/dev/null 2>&1; sleep ${m}' & (setsid sleep 1${m} </dev/null >/dev/null 2>&1 &); sleep 0.3; echo started`, shell: true },
      timeoutMs: 20_000,
    }).done;
    expect(r.state).toBe('succeeded');
    expect(await readFile(r.logs!.stdout, 'utf8')).toBe('started\n');
    expect(await gone(m)).toBe(true);
  }, 30_000);

  it('a memory limit kills a process that allocates beyond it, and the verdict says OOM', async () => {
    const r = await q.submit({
      kind: 'process',
      // dash builds the 400 MB string in memory
      spec: { command: 'x=$(head -c 400000000 /dev/zero | tr "\\0" a); echo ${#x}', shell: true, limits: { memoryBytes: 64 * 1024 * 1024 } },
      timeoutMs: 40_000,
    }).done;
    expect(r.state).toBe('failed');
    expect(r.error?.message).toMatch(/OOM/);
    expect(await readFile(r.logs!.stdout, 'utf8').catch(() => '')).toBe('');
    expect(await readFile(r.logs!.system, 'utf8')).toMatch(/OOM-killed/);
  }, 60_000);

  it('a CPU limit of 0.2 holds a busy loop near 20%, usage read from the cgroup', async () => {
    const h = q.submit({ kind: 'process', spec: { command: 'while :; do :; done', shell: true, limits: { cpus: 0.2 } }, timeoutMs: 4000, killAfterMs: 100 });
    await until(() => q.get(h.id)?.state === 'running', 10_000);
    const u0 = await until(() => ex.usage(h.id), 10_000);
    expect(u0).toBeDefined();
    const t0 = Date.now();
    await sleep(2500);
    const u1 = ex.usage(h.id)!;
    const wall = (Date.now() - t0) * 1e6;
    const share = (u1.cpuNs - u0!.cpuNs) / wall;
    expect(share).toBeGreaterThan(0.02);
    expect(share).toBeLessThan(0.4);
    expect(u1.memoryBytes).toBeGreaterThan(0);
    const r = await h.done;
    expect(r.state).toBe('timed_out');
    expect((r.info.usage as { cpuNs: number }).cpuNs).toBeGreaterThanOrEqual(u1.cpuNs);
    expect(ex.usage(h.id)).toBeUndefined();
  }, 30_000);

  it('a pids limit stops a fork storm', async () => {
    const r = await q.submit({
      kind: 'process',
      spec: { command: 'n=0; for i in $(seq 20); do sleep 2 & n=$((n+1)); done; wait', shell: true, limits: { pids: 4 } },
      timeoutMs: 20_000,
    }).done;
    expect(await readFile(r.logs!.stderr, 'utf8')).toMatch(/fork/i);
  }, 30_000);

  it('removes its cgroups after the task', async () => {
    const r = await q.submit({ kind: 'process', spec: { command: 'cat /proc/self/cgroup', shell: true } }).done;
    expect(r.state).toBe('succeeded');
    const dirs = r.info.cgroups as string[];
    expect(dirs.length).toBeGreaterThan(0);
    const own = await readFile(r.logs!.stdout, 'utf8');
    expect(own).toContain('smoothtask'); // the child ran inside them
    for (const d of dirs) expect(existsSync(d)).toBe(false);
  });

  it('leftovers of a crashed owner are killed and removed on start', async () => {
    const bundle = await bundleChild('cgroup-child', new URL('./cgroup-child.ts', import.meta.url));
    const m = marker();
    const child = await startChild(bundle, [m], 'running', 30_000);
    await until(() => pidsWithMarker(m).length >= 1, 10_000);
    child.kill('SIGKILL');
    await exited(child);
    await sleep(200);
    expect(pidsWithMarker(m).length).toBe(1); // the crashed owner left its task running
    const owner = `o${child.pid}.`;
    const base = cgroupSupport().dirs;
    expect(base.some((b) => readdirSync(b).some((d) => d.startsWith(owner)))).toBe(true);
    const n = await reapStaleCgroups();
    expect(n).toBeGreaterThanOrEqual(1);
    expect(await gone(m)).toBe(true);
    for (const b of base) expect(readdirSync(b).some((d) => d.startsWith(owner))).toBe(false);
    // and our own running tasks are untouched by a reap
    const m2 = marker();
    const h = q.submit({ kind: 'process', spec: { command: 'sleep', args: [m2] } });
    await until(() => pidsWithMarker(m2).length >= 1, 10_000);
    await reapStaleCgroups();
    expect(pidsWithMarker(m2).length).toBe(1);
    await h.cancel();
    await h.done;
    expect(await gone(m2)).toBe(true);
  }, 60_000);

  it('the process-group fallback is reported, and limits are refused there rather than ignored', async () => {
    const q2 = new TaskQueue({ dataDir: join(dataDir, 'pg'), killAfterMs: 300 });
    const pg = new ProcessExecutor({ cgroups: 'off' });
    q2.registerExecutor('process', pg);
    expect(pg.containment.mode).toBe('process-group');
    const r = await q2.submit({ kind: 'process', spec: { command: 'echo hi', shell: true } }).done;
    expect(r.state).toBe('succeeded');
    expect(r.info.containment).toBe('process-group');
    expect(await readFile(r.logs!.system, 'utf8')).toMatch(/no cgroup .*process group/);
    const l = await q2.submit({ kind: 'process', spec: { command: 'true', limits: { memoryBytes: 64 * 1024 * 1024 } } }).done;
    expect(l.state).toBe('failed');
    expect(l.error?.code).toBe('ERR_PROCESS_CGROUP');
    await q2.close();
  });
});
