// An engine that does not answer must not hold a task for good past its timeout or its cancel.
// Each engine call before the container starts is made to hang here (create, attach, start);
// the task still ends with its timeout or cancel reason once the answer grace (300 ms here,
// 10 s by default) is over, and a container the engine creates after the task gave up is
// removed, not left running.
import Docker from 'dockerode';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { LABELS, runContainer, taskPaths } from '../../lib/docker/index.js';
import { engineGate, IMAGE, probeEngine, tempDir, dockerOf } from './helpers.js';

const probe = await probeEngine();
type Proto = Record<string, (...a: unknown[]) => Promise<unknown>>;

describe.skipIf(engineGate(probe))('a task whose engine calls hang before the start', () => {
  const engine = probe.engine!;
  const dockerProto = (Docker as unknown as { prototype: Proto }).prototype;
  const containerProto = (Docker as unknown as { Container: { prototype: Proto } }).Container.prototype;
  const saved = { create: dockerProto.createContainer!, attach: containerProto.attach!, start: containerProto.start! };
  let data: { dir: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    data = await tempDir('stall');
  });
  afterEach(() => {
    dockerProto.createContainer = saved.create;
    containerProto.attach = saved.attach;
    containerProto.start = saved.start;
  });
  afterAll(async () => {
    await data?.cleanup();
  });

  const never = () => new Promise<never>(() => undefined);
  const run = (id: string, spec: Record<string, unknown>, signal?: AbortSignal) =>
    runContainer(engine, { image: IMAGE, command: ['true'], ...spec } as never, { taskId: `stall-${process.pid}-${id}`, ...taskPaths(data.dir, id), engineAnswerGraceMs: 300, ...(signal ? { signal } : {}) });

  async function endsWithin<T>(p: Promise<T>, ms: number): Promise<{ error: unknown; ms: number }> {
    const t0 = performance.now();
    const error = await Promise.race([
      p.then(() => new Error('resolved'), (e: unknown) => e),
      new Promise((r) => setTimeout(() => r(new Error('still waiting')), ms)),
    ]);
    return { error, ms: performance.now() - t0 };
  }

  it('create never answers: the timeout ends the run', async () => {
    dockerProto.createContainer = never;
    const { error, ms } = await endsWithin(run('create', { timeoutMs: 300 }), 10_000);
    expect((error as Error).name).toBe('TimeoutError');
    expect(ms).toBeLessThan(5_000);
  });

  it('attach never answers: a cancel ends the run, and the created container is removed', async () => {
    containerProto.attach = never;
    const ac = new AbortController();
    const p = run('attach', {}, ac.signal);
    setTimeout(() => ac.abort(Object.assign(new Error('stop'), { name: 'TaskCancelledError' })), 500);
    const { error } = await endsWithin(p, 10_000);
    expect((error as Error).name).toBe('TaskCancelledError');
    const left = await dockerOf(engine).listContainers({ all: true, filters: { label: [`${LABELS.taskId}=stall-${process.pid}-attach`] } });
    expect(left).toEqual([]);
  });

  it('start never answers: the timeout ends the run, the container is removed', async () => {
    containerProto.start = never;
    const { error } = await endsWithin(run('start', { timeoutMs: 500 }), 10_000);
    expect((error as Error).name).toBe('TimeoutError');
    const left = await dockerOf(engine).listContainers({ all: true, filters: { label: [`${LABELS.taskId}=stall-${process.pid}-start`] } });
    expect(left).toEqual([]);
  });

  it('create answers only after the timeout: the late container is removed', async () => {
    dockerProto.createContainer = async function (this: unknown, ...a: unknown[]) {
      await new Promise((r) => setTimeout(r, 1_500)); // past the 300 ms timeout and the 300 ms grace
      return saved.create.apply(this, a);
    };
    const { error } = await endsWithin(run('late', { timeoutMs: 300 }), 10_000);
    expect((error as Error).name).toBe('TimeoutError');
    const filters = { label: [`${LABELS.taskId}=stall-${process.pid}-late`] };
    const end = Date.now() + 10_000;
    let left: unknown[] = [1];
    let seen = false;
    while (Date.now() < end) {
      left = await dockerOf(engine).listContainers({ all: true, filters });
      if (left.length) seen = true;
      if (seen && left.length === 0) break;
      if (!seen && Date.now() > end - 7_000) break; // created and removed between two looks
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(left).toEqual([]);
  });
});
