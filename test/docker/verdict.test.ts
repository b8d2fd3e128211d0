// A task's verdict depends neither on timing nor on what else the engine is doing (issue 12
// item 12): many containers OOM-killed at once, while other work keeps the engine busy, are
// each reported as OOM-killed; a container killed from outside (SIGKILL, no memory pressure)
// is not; a plain non-zero exit keeps its own code.
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connectDocker, reapLeftovers, runContainer, type ContainerRunResult, type DockerEngine } from '../../lib/docker/index.js';
import { engineGate, IMAGE, probeEngine, tempDir, dockerOf } from './helpers.js';

const probe = await probeEngine();
const PREFIX = `verdict-${process.pid}-`;

describe.skipIf(engineGate(probe))('container verdicts on a busy engine', () => {
  let engine: DockerEngine;
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    if (engine) await reapLeftovers(engine, { scope: 'all' }).catch(() => undefined);
    for (const c of cleanups) await c();
  }, 120_000);

  it('reports every OOM kill as such, and only those, while the engine is busy', async () => {
    engine = await connectDocker({ ownerId: `${PREFIX}owner` });
    const t = await tempDir('verdict');
    cleanups.push(t.cleanup);
    const run = (name: string, spec: Record<string, unknown>, signal?: AbortSignal, onStarted?: (id: string) => void): Promise<ContainerRunResult> =>
      runContainer(engine, { image: IMAGE, ...spec }, {
        taskId: `${PREFIX}${name}`,
        workspaceDir: join(t.dir, name, 'work'),
        logsDir: join(t.dir, name, 'logs'),
        archivePath: join(t.dir, name, 'outputs.zip'),
        ...(signal ? { signal } : {}),
        ...(onStarted ? { onStarted: (info: { containerId: string }) => onStarted(info.containerId) } : {}),
      });
    // Busy engine: a stream of API calls (list, inspect, short-lived containers) while the tasks run.
    let busy = true;
    const noise = (async () => {
      let i = 0;
      while (busy) {
        await Promise.all([
          dockerOf(engine).listContainers({ all: true }),
          dockerOf(engine).getImage(IMAGE).inspect(),
          run(`noise-${i++}`, { command: ['true'] }),
        ]).catch(() => undefined);
      }
    })();
    const oom = { limits: { memoryBytes: 16 * 1024 * 1024 }, command: ['sh', '-c', 'echo filling; exec dd if=/dev/zero of=/dev/shm/fill bs=1M count=48'] };
    const ooms = Array.from({ length: 8 }, (_, i) => run(`oom-${i}`, oom));
    // Killed from outside with SIGKILL under a memory limit but without memory pressure: exit 137, not an OOM.
    const killed = run('killed', { limits: { memoryBytes: 64 * 1024 * 1024 }, command: ['sleep', '600'] }, undefined, (id) => {
      void dockerOf(engine).getContainer(id).kill({ signal: 'SIGKILL' });
    });
    const exit3 = run('exit3', { limits: { memoryBytes: 64 * 1024 * 1024 }, command: ['sh', '-c', 'exit 3'] });
    const results = await Promise.all(ooms);
    const [k, e3] = await Promise.all([killed, exit3]);
    busy = false;
    await noise;
    for (const r of results) {
      expect(r.outcome).toBe('failed');
      expect(r.exitCode).toBe(137);
      expect(r.oomKilled).toBe(true);
    }
    expect(k.exitCode).toBe(137);
    expect(k.oomKilled).toBe(false);
    expect(e3.exitCode).toBe(3);
    expect(e3.oomKilled).toBe(false);
  }, 300_000);
});
