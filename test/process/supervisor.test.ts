import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Supervisor, type SupervisorEvent } from 'smoothtask/process';
import { pidsWithMarker } from './helpers.js';
import { bundleChild, exited, startChild } from '../store/helpers.js';

let dir: string;
const sups: Supervisor[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'st-sup-'));
});
afterAll(async () => {
  await Promise.all(sups.map((s) => s.stopAll()));
  await rm(dir, { recursive: true, force: true });
});
const marker = () => `28.${String(randomBytes(4).readUInt32BE()).padStart(10, '0')}`;
const until = async (cond: () => boolean, ms = 15_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(10);
  }
};

describe('Supervisor', () => {
  it('restarts a crashing process with growing delays, then gives up when the budget is spent', async () => {
    const sup = new Supervisor();
    sups.push(sup);
    const events: SupervisorEvent[] = [];
    sup.onEvent((e) => events.push(e));
    const p = sup.add({
      name: 'crasher',
      command: 'echo up; exit 3',
      shell: true,
      logDir: dir,
      backoff: { baseMs: 40, maxMs: 1000, factor: 2, jitter: 'none' },
      budget: { maxRestarts: 4, windowMs: 60_000 },
    });
    await p.finished;
    expect(p.state).toBe('failed');
    const delays = events.filter((e) => e.type === 'restart-scheduled').map((e) => e.delayMs!);
    expect(delays).toEqual([40, 80, 160, 320]);
    const starts = events.filter((e) => e.type === 'start').map((e) => e.at);
    expect(starts).toHaveLength(5);
    // the real gaps between starts grow too
    const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
    for (let i = 0; i < gaps.length; i++) expect(gaps[i]!).toBeGreaterThanOrEqual(delays[i]! - 5);
    // (gaps[3] > gaps[0] is not asserted: on a loaded host one spawn can take longer than 280 ms)
    expect(events.filter((e) => e.type === 'exit').every((e) => e.code === 3)).toBe(true);
    expect(events.at(-1)?.type).toBe('budget-exhausted');
    expect(await readFile(join(dir, 'crasher.stdout.log'), 'utf8')).toBe('up\n'.repeat(5));
  });

  it('a process failing its health check (command) is replaced; HTTP and fn checks keep healthy ones', async () => {
    const sup = new Supervisor();
    sups.push(sup);
    const events: SupervisorEvent[] = [];
    sup.onEvent((e) => events.push(e));
    const m = marker();
    const flag = join(dir, 'healthy');
    await writeFile(flag, '');
    const p = sup.add({
      name: 'sick',
      command: `sleep ${m}`,
      shell: true,
      health: { type: 'command', command: 'test', args: ['-e', flag], intervalMs: 50, timeoutMs: 1000, failureThreshold: 2 },
      backoff: { baseMs: 10, maxMs: 10, jitter: 'none' },
      graceMs: 500,
    });
    await until(() => p.pid !== undefined);
    const firstPid = p.pid!;
    await sleep(200);
    expect(p.pid).toBe(firstPid); // healthy: left alone
    await rm(flag);
    await until(() => p.pid !== undefined && p.pid !== firstPid);
    expect(events.filter((e) => e.type === 'health-fail').length).toBeGreaterThanOrEqual(2);
    expect(events.some((e) => e.type === 'unhealthy')).toBe(true);
    const exit = events.find((e) => e.type === 'exit' && e.pid === firstPid)!;
    expect(exit.signal).toBe('SIGTERM');
    await writeFile(flag, '');

    const srv = createServer((_q, res) => res.end('ok'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/health`;
    let fnCalls = 0;
    const web = sup.add({ name: 'web', command: `sleep ${m}`, shell: true, health: { type: 'http', url, intervalMs: 40, failureThreshold: 1 } });
    const fn = sup.add({
      name: 'fn',
      command: `sleep ${m}`,
      shell: true,
      health: { type: 'fn', check: () => void fnCalls++, intervalMs: 40, failureThreshold: 1 },
    });
    await until(() => web.pid !== undefined && fn.pid !== undefined);
    const [wp, fp] = [web.pid, fn.pid];
    // Healthy while checked at least three times (polled: a loaded host runs timers late).
    await until(() => fnCalls >= 3);
    expect([web.pid, fn.pid]).toEqual([wp, fp]);
    // HTTP health endpoint goes away -> replaced
    srv.closeAllConnections();
    await new Promise<void>((r) => srv.close(() => r()));
    await until(() => web.pid !== undefined && web.pid !== wp);

    await sup.stopAll();
    expect(sup.list().map((x) => x.state)).toEqual(['stopped', 'stopped', 'stopped']);
    expect(pidsWithMarker(m)).toEqual([]);
  });

  it('stopAll: TERM, then KILL after grace for a process that ignores TERM; no process left', async () => {
    const sup = new Supervisor();
    sups.push(sup);
    const m = marker();
    const a = sup.add({ name: 'stubborn', command: `trap '' TERM; sleep ${m} & sleep ${m}; wait`, shell: true, graceMs: 300 });
    const b = sup.add({ name: 'polite', command: `sleep ${m}`, shell: true, graceMs: 5000 });
    await until(() => a.pid !== undefined && b.pid !== undefined);
    await sleep(100);
    expect(pidsWithMarker(m).length).toBeGreaterThanOrEqual(3);
    const t0 = Date.now();
    await sup.stopAll();
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(4000); // the polite one did not need its 5 s grace
    expect(a.state).toBe('stopped');
    expect(b.state).toBe('stopped');
    expect(a.events.find((e) => e.type === 'exit')?.signal).toBe('SIGKILL');
    expect(pidsWithMarker(m)).toEqual([]);
    expect(() => sup.add({ name: 'late', command: 'true' })).toThrow(/stopped/);
  });

  it('installSignalHandlers: SIGTERM to the host service stops every supervised group, then the service exits by SIGTERM', async () => {
    const bundle = await bundleChild('sup-child', new URL('./sup-child.ts', import.meta.url));
    const m = marker();
    const child = await startChild(bundle, [m], 'supervised', 60_000);
    await until(() => pidsWithMarker(m).length >= 1);
    child.kill('SIGTERM');
    await exited(child);
    expect(child.signalCode).toBe('SIGTERM');
    expect(pidsWithMarker(m)).toEqual([]);
  }, 90_000);

  it('restart policies: on-failure leaves a clean exit alone; a stop during backoff ends at once', async () => {
    const sup = new Supervisor();
    sups.push(sup);
    const ok = sup.add({ name: 'ok', command: 'true', restart: 'on-failure' });
    await ok.finished;
    expect(ok.state).toBe('exited');
    expect(ok.restarts).toBe(0);
    const missing = sup.add({ name: 'missing', command: '/nonexistent/daemon', backoff: { baseMs: 5, maxMs: 5, jitter: 'none' }, budget: { maxRestarts: 2, windowMs: 60_000 } });
    await missing.finished;
    expect(missing.state).toBe('failed');
    expect(missing.events.filter((e) => e.type === 'spawn-error')).toHaveLength(3);
    const slow = sup.add({ name: 'slow', command: 'false', backoff: { baseMs: 60_000, maxMs: 60_000, jitter: 'none' } });
    await until(() => slow.state === 'backoff');
    const t0 = Date.now();
    await slow.stop();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(slow.state).toBe('stopped');
  });
});
