// How a container is stopped, made deterministic: the stop is requested only once the task's
// own output says its TERM handler is installed (a timeout racing the container's start cannot
// promise that: a SIGTERM that reaches the container's init before it installs a handler is
// dropped by the kernel, and only the SIGKILL after the grace ends it).
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runContainer, taskPaths } from '../../lib/docker/index.js';
import { engineGate, IMAGE, probeEngine, tempDir } from './helpers.js';

const probe = await probeEngine();
const PREFIX = `grace-${process.pid}-`;

describe.skipIf(engineGate(probe))('stopping a container: SIGTERM first, SIGKILL only after the grace', () => {
  const engine = probe.engine!;
  let data: { dir: string; cleanup: () => Promise<void> };

  beforeAll(async () => {
    data = await tempDir('grace');
  });
  afterAll(async () => {
    await data?.cleanup();
  });

  /** Runs `script`, aborts (with `reason`) as soon as its output contains `ready`. */
  async function stopWhenReady(id: string, script: string, stopGraceMs: number, reason: unknown) {
    const ac = new AbortController();
    let out = '';
    let abortedAt = 0;
    const r = await runContainer(
      engine,
      { image: IMAGE, command: ['sh', '-c', script], stopGraceMs },
      {
        taskId: `${PREFIX}${id}`,
        ...taskPaths(data.dir, id),
        signal: ac.signal,
        onLog: (c) => {
          out += c.data.toString();
          if (!abortedAt && out.includes('ready')) {
            abortedAt = performance.now();
            ac.abort(reason);
          }
        },
      },
    );
    return { r, stopMs: performance.now() - abortedAt, log: await readFile(r.logs.stdout, 'utf8') };
  }

  it('a task whose handler is installed gets SIGTERM, runs its handler and exits by itself', async () => {
    const { r, log } = await stopWhenReady('term', "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done", 20_000, new Error('stop'));
    expect(log).toContain('got-term');
    expect(r.exitCode).toBe(0);
    expect(r.outcome).toBe('cancelled');
  }, 60_000);

  it('a timeout reason is recorded as timed_out, the handler still runs', async () => {
    const reason = Object.assign(new Error('too slow'), { name: 'TimeoutError' });
    const { r, log } = await stopWhenReady('timeout', "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done", 20_000, reason);
    expect(log).toContain('got-term');
    expect(r.outcome).toBe('timed_out');
  }, 60_000);

  it('a task that ignores SIGTERM is killed after the grace, not before', async () => {
    const { r, stopMs, log } = await stopWhenReady('ignore', "trap '' TERM; echo ready; while true; do sleep 0.1; done", 1_500, new Error('stop'));
    expect(log).toBe('ready\n');
    expect(r.exitCode).toBe(137);
    expect(stopMs).toBeGreaterThanOrEqual(1_500);
  }, 60_000);
});
