// The engine may see the wait request after the container has already exited: the wait is
// its own HTTP request on its own socket, and under load nothing orders it before `start`.
// A `next-exit` wait registered after the exit waits for an exit that never comes, and the
// task stayed `running` for good (seen in the agent's end-to-end test under load: the
// container had exited 0, the task never ended). Here the wait request is held back on
// purpose until the container has exited.
import Docker from 'dockerode';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runContainer, taskPaths } from '../../lib/docker/index.js';
import { engineGate, IMAGE, probeEngine, tempDir } from './helpers.js';

const probe = await probeEngine();

describe.skipIf(engineGate(probe))('a container task whose wait reaches the engine late', () => {
  const engine = probe.engine!;
  let data: { dir: string; cleanup: () => Promise<void> };
  const proto = (Docker as unknown as { Container: { prototype: { wait: (...a: unknown[]) => Promise<unknown> } } }).Container.prototype;
  const original = proto.wait;

  beforeAll(async () => {
    data = await tempDir('waitrace');
    // Every wait is sent only once the container is no longer running.
    proto.wait = async function (this: Docker.Container, ...args: unknown[]) {
      for (let i = 0; i < 200; i++) {
        const s = await this.inspect();
        if (s.State.Status === 'exited' || s.State.Status === 'dead') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      return original.apply(this, args);
    };
  });
  afterAll(async () => {
    proto.wait = original;
    await data?.cleanup();
  });

  it('still ends, with the exit code and the output of the container', async () => {
    const r = await Promise.race([
      runContainer(engine, { image: IMAGE, command: ['sh', '-c', 'echo quick; exit 3'] }, { taskId: `waitrace-${process.pid}`, ...taskPaths(data.dir, 'a') }),
      new Promise<never>((_, j) => setTimeout(() => j(new Error('the task never ended')), 20_000)),
    ]);
    expect(r.exitCode).toBe(3);
    expect(r.outcome).toBe('failed');
    expect(await readFile(r.logs.stdout, 'utf8')).toBe('quick\n');
  }, 40_000);
});
