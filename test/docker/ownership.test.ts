// Cleanup touches only our own: resources carry the owner's id, and the cleanup trigger, the
// reaper and compose teardown leave another owner's resources, other tasks' projects and
// projects started outside the library alone. Adversarial cases from issue 12 item 3.
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TaskQueue, type TaskRecord } from '../../lib/task/index.js';
import {
  ComposeError,
  composeProjectName,
  connectDocker,
  dockerCleanupTrigger,
  LABELS,
  reapLeftovers,
  registerDockerExecutors,
  runCompose,
  type DockerEngine,
  type RunningContainer,
} from '../../lib/docker/index.js';
import { engineGate, IMAGE, probeEngine, tempDir, dockerOf } from './helpers.js';

const probe = await probeEngine();
const PREFIX = `own-${process.pid}-`;
const composeFile = resolve(import.meta.dirname, 'fixtures/owner-compose.yml');

/** Polls until `fn` returns a truthy value (generous deadline: the host is busy). */
async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function running(engine: DockerEngine, id: string): Promise<boolean> {
  const info = await dockerOf(engine).getContainer(id).inspect().catch(() => undefined);
  return info?.State.Running === true;
}

/** `docker-compose` v1 (this host) or the v2 plugin, whichever answers. */
function composeCli(): string[] {
  for (const argv of [['docker', 'compose'], ['docker-compose']]) {
    if (spawnSync(argv[0]!, [...argv.slice(1), 'version'], { stdio: 'ignore' }).status === 0) return argv;
  }
  throw new Error('no compose CLI');
}

describe.skipIf(engineGate(probe))('cleanup touches only resources of our owner and task', () => {
  const engines: DockerEngine[] = [];
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    // Never leave the test's resources behind (every owner this file used).
    for (const e of engines) await reapLeftovers(e, { scope: 'all' }).catch(() => undefined);
  }, 400_000);

  it('two queues (two owners) with the same task id: cancelling one leaves the other running', async () => {
    const a = await connectDocker({ ownerId: `${PREFIX}owner-a` });
    const b = await connectDocker({ ownerId: `${PREFIX}owner-b` });
    engines.push(a, b);
    const dir = await tempDir('owner');
    cleanups.push(dir.cleanup);
    const mk = (engine: DockerEngine, name: string): TaskQueue => {
      const q = new TaskQueue({ concurrency: 1, dataDir: join(dir.dir, name), killAfterMs: 500, triggers: [dockerCleanupTrigger(engine)] });
      registerDockerExecutors(q, { engine });
      cleanups.push(() => q.close());
      return q;
    };
    const qa = mk(a, 'a');
    const qb = mk(b, 'b');
    await Promise.all([qa.ready, qb.ready]);
    const id = `${PREFIX}same`;
    const alive = new Set<string>();
    qa.onLog((e) => e.chunk.includes('alive') && alive.add('a'));
    qb.onLog((e) => e.chunk.includes('alive') && alive.add('b'));
    const spec = { image: IMAGE, command: ['sh', '-c', 'echo alive; sleep 600'] };
    qa.submit({ id, kind: 'container', spec });
    qb.submit({ id, kind: 'container', spec });
    await until('both containers to print', () => alive.size === 2);
    // Each owner's container, found by its own labels.
    const cid = async (e: DockerEngine): Promise<string | undefined> =>
      (await dockerOf(e).listContainers({ filters: { label: [`${LABELS.owner}=${e.ownerId}`, `${LABELS.taskId}=${id}`] } }))[0]?.Id;
    const ca = await until('A\'s container', () => cid(a));
    const cb = await until('B\'s container', () => cid(b));
    expect(ca).not.toBe(cb);
    // The labels carry each owner.
    const lb = (await dockerOf(b).getContainer(cb).inspect()).Config.Labels;
    expect(lb[LABELS.owner]).toBe(`${PREFIX}owner-b`);
    expect(lb[LABELS.taskId]).toBe(id);

    await qa.cancel(id, 'test');
    const ra: TaskRecord = await qa.wait(id);
    expect(ra.state).toBe('cancelled');
    // The cleanup trigger of queue A ran (it removes by task id) and found nothing to fail on.
    expect(ra.triggers.find((t) => t.name === 'docker-cleanup')?.ok).toBe(true);
    expect(await running(a, ca)).toBe(false);
    // B's container with the same task id is untouched, and B's task still runs.
    expect(await running(b, cb)).toBe(true);
    expect(qb.get(id)!.state).toBe('running');

    // The reaper of owner A, asked for everything of that task id, leaves B's container too.
    const rep = await reapLeftovers(a, { scope: 'all', taskIds: [id] });
    expect(rep.containers).not.toContain(cb);
    expect(await running(b, cb)).toBe(true);

    await qb.cancel(id, 'test');
    expect((await qb.wait(id)).state).toBe('cancelled');
    expect(await running(b, cb)).toBe(false);
  }, 240_000);

  it('colliding task ids get distinct compose projects; one task\'s cleanup leaves the others', async () => {
    const engine = await connectDocker({ ownerId: `${PREFIX}owner-c` });
    engines.push(engine);
    const long = 'x'.repeat(70);
    const ids = ['a.b', 'a-b', 'A_B', 'a_b', `${PREFIX}${long}-1`, `${PREFIX}${long}-2`].map((s, i) => (i < 4 ? `${PREFIX}${s}` : s));
    const names = ids.map((id) => composeProjectName(id, engine.ownerId));
    expect(new Set(names).size).toBe(ids.length);
    for (const n of names) expect(n).toMatch(/^[a-z0-9][a-z0-9_-]*$/);
    // The same task id under another owner is another project.
    expect(composeProjectName(ids[0]!, 'someone-else')).not.toBe(names[0]);

    const dir = await tempDir('owner-compose');
    cleanups.push(dir.cleanup);
    const started = new Map<string, RunningContainer>();
    const runs = ids.map((id, i) => {
      const ac = new AbortController();
      const ws = join(dir.dir, String(i));
      const p = runCompose(engine, { files: [composeFile] }, {
        taskId: id,
        workspaceDir: join(ws, 'work'),
        logsDir: join(ws, 'logs'),
        archivePath: join(ws, 'outputs.zip'),
        signal: ac.signal,
        defaultStopGraceMs: 500,
        onStarted: (info) => started.set(id, info),
      });
      p.catch(() => undefined);
      cleanups.push(async () => {
        ac.abort();
        await p.catch(() => undefined);
      });
      return { id, ac, p };
    });
    await until('every project to run', async () => {
      for (const r of runs) {
        const s = started.get(r.id);
        if (!s || !(await running(engine, s.containerId))) {
          // A run that already failed will never start: fail fast with its error.
          await Promise.race([r.p.then((x) => { throw new Error(`${r.id} ended early: ${x.outcome}`); }), Promise.resolve()]);
          return false;
        }
      }
      return true;
    }, 540_000);
    const containers = new Set(runs.map((r) => started.get(r.id)!.containerId));
    expect(containers.size).toBe(ids.length);

    for (const victim of [runs[0]!, runs[4]!]) {
      victim.ac.abort();
      const res = await victim.p;
      expect(res.outcome).toBe('cancelled');
      expect(await running(engine, started.get(victim.id)!.containerId)).toBe(false);
    }
    for (const r of runs.filter((_, i) => i !== 0 && i !== 4)) {
      expect(await running(engine, started.get(r.id)!.containerId), r.id).toBe(true);
    }
    for (const r of runs) r.ac.abort();
    for (const r of runs) expect((await r.p).outcome).toBe('cancelled');
  }, 800_000);

  it('leaves a compose project started outside the library under the name a task would use', async () => {
    const engine = await connectDocker({ ownerId: `${PREFIX}owner-d` });
    engines.push(engine);
    const id = `${PREFIX}foreign`;
    const project = composeProjectName(id, engine.ownerId);
    const cli = composeCli();
    const up = spawnSync(cli[0]!, [...cli.slice(1), '-p', project, '-f', composeFile, 'up', '-d'], { encoding: 'utf8' });
    const down = async (): Promise<void> => void spawnSync(cli[0]!, [...cli.slice(1), '-p', project, '-f', composeFile, 'down', '-t', '0'], { stdio: 'ignore' });
    cleanups.push(down);
    expect(up.status, up.stderr).toBe(0);
    const foreign = await dockerOf(engine).listContainers({ filters: { label: [`com.docker.compose.project=${project}`] } });
    expect(foreign.length).toBe(1);
    const fid = foreign[0]!.Id;

    const dir = await tempDir('owner-foreign');
    cleanups.push(dir.cleanup);
    const run = runCompose(engine, { files: [composeFile] }, {
      taskId: id,
      workspaceDir: join(dir.dir, 'work'),
      logsDir: join(dir.dir, 'logs'),
      archivePath: join(dir.dir, 'outputs.zip'),
      defaultStopGraceMs: 500,
      signal: AbortSignal.timeout(60_000),
    });
    await expect(run).rejects.toThrow(ComposeError);
    await expect(run).rejects.toThrow(/not created by/);
    // The foreign project's container is the same one, still running.
    expect(await running(engine, fid)).toBe(true);
    // Neither the cleanup trigger nor the reaper of this owner touch it.
    await dockerCleanupTrigger(engine).run({ id } as TaskRecord, { outcome: 'failed', signal: new AbortController().signal } as never);
    await reapLeftovers(engine, { scope: 'all' });
    expect(await running(engine, fid)).toBe(true);
  }, 240_000);
});
