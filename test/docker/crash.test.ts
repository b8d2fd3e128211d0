// Kill the Node process mid-task (SIGKILL, no cleanup code runs), then restart as the same
// owner (its id kept beside the store): the reaper removes what the dead process of that owner
// left (containers, networks, volumes) and nothing of another owner, and the store resolves the
// interrupted tasks (policy `fail`), so nothing is left running or recorded as running.
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { JsonStore, StoreTaskPersistence } from '../../lib/store/index.js';
import { TaskQueue } from '../../lib/task/index.js';
import { connectDocker, instanceAlive, LABELS, persistentOwnerId, reapLeftovers } from '../../lib/docker/index.js';
import { engineGate, probeEngine, tempDir, dockerOf } from './helpers.js';

const probe = await probeEngine();
const PREFIX = `crash-${process.pid}-`;
const child = resolve(import.meta.dirname, '../fixtures/docker-crash/child.ts');

describe.skipIf(engineGate(probe))('crash of the Node process mid-task', () => {
  const engine = probe.engine!;
  const cleanups: (() => Promise<unknown>)[] = [];
  let childOwner: string | undefined;
  afterAll(async () => {
    // Never leave the test's resources behind, even when an assertion failed.
    if (childOwner) await reapLeftovers(engine, { scope: 'all', owner: childOwner, taskIds: [`${PREFIX}container`, `${PREFIX}compose`] });
    for (const c of cleanups) await c();
  });

  it('reaper and store resolve the leftover tasks after a SIGKILL', async () => {
    const t = await tempDir('crash');
    cleanups.push(t.cleanup);
    const storeDir = join(t.dir, 'store');
    const dataDir = join(t.dir, 'data');
    const p = spawn(process.execPath, ['--import', 'tsx', child, storeDir, dataDir, PREFIX], { stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(async () => void (p.exitCode === null && p.kill('SIGKILL')));
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [owner, instance] = await new Promise<[string, string]>((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`child did not start its tasks in time; stderr: ${stderr}`)), 300_000);
      createInterface({ input: p.stdout }).on('line', (l) => {
        if (l.startsWith('RUNNING ')) {
          clearTimeout(timer);
          res(l.slice(8).split(' ') as [string, string]);
        }
      });
      p.on('exit', (code) => rej(new Error(`child exited early (${code}): ${stderr}`)));
    });
    childOwner = owner;
    expect(instance).toContain(`:${p.pid}:`);
    // The owner id is the one kept beside the store, not tied to the process.
    expect(await persistentOwnerId(storeDir)).toBe(owner);

    p.kill('SIGKILL');
    await new Promise((r) => p.once('exit', r));
    expect(instanceAlive(instance)).toBe(false);

    // The crash left resources behind, labeled with the dead owner.
    const filters = { label: [`${LABELS.owner}=${owner}`] };
    const left = await dockerOf(engine).listContainers({ all: true, filters });
    expect(left.map((c) => c.Labels[LABELS.taskId]).sort()).toEqual([`${PREFIX}compose`, `${PREFIX}container`]);
    expect((await dockerOf(engine).listNetworks({ filters })).length).toBeGreaterThanOrEqual(1);
    expect((await dockerOf(engine).listVolumes({ filters })).Volumes?.length).toBe(1);

    // Another owner (this test process's engine) reaping everything of those task ids touches none of it.
    const other = await reapLeftovers(engine, { scope: 'all', taskIds: [`${PREFIX}container`, `${PREFIX}compose`] });
    expect([...other.containers, ...other.networks, ...other.volumes]).toEqual([]);
    expect((await dockerOf(engine).listContainers({ all: true, filters })).length).toBe(2);

    // "Restart" as the same owner: reap first (what dead processes of this owner left), then
    // open the store and the queue.
    const restarted = await connectDocker({ ownerId: await persistentOwnerId(storeDir) });
    expect(restarted.ownerId).toBe(owner);
    const report = await reapLeftovers(restarted);
    expect(report.errors).toEqual([]);
    expect(report.containers.length).toBeGreaterThanOrEqual(2);
    expect(report.taskIds).toEqual(expect.arrayContaining([`${PREFIX}container`, `${PREFIX}compose`]));
    expect(report.networks.some((n) => n.includes('inner'))).toBe(true);
    expect(report.volumes.some((n) => n.includes('state'))).toBe(true);

    const store = await JsonStore.open({ dir: storeDir, lock: { staleMs: 2000, updateMs: 1000, waitMs: 10_000 } });
    const queue = new TaskQueue({ persistence: new StoreTaskPersistence(store), dataDir, recovery: 'fail' });
    await queue.ready;
    for (const id of [`${PREFIX}container`, `${PREFIX}compose`]) {
      const rec = queue.get(id);
      expect(rec?.state, id).toBe('failed');
      expect(rec?.error?.code).toBe('ERR_TASK_INTERRUPTED');
      expect(rec?.history.at(-1)?.from).toBe('running');
    }
    await queue.close();
    store.close();

    // Nothing of the dead owner remains in the engine.
    const [c2, n2, v2] = await Promise.all([dockerOf(engine).listContainers({ all: true, filters }), dockerOf(engine).listNetworks({ filters }), dockerOf(engine).listVolumes({ filters })]);
    expect([...c2.map((x) => x.Id), ...n2.map((x) => x.Name), ...(v2.Volumes ?? []).map((x) => x.Name)]).toEqual([]);
  }, 480_000);
});
