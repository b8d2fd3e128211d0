/**
 * Queue overhead: no-op tasks and `true` child processes through TaskQueue (concurrency 8)
 * against the same work with a plain Promise pool / plain child_process.spawn pool.
 *   npm run bench -- queue [noopTasks=20000] [childTasks=300]
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessExecutor } from '../lib/process/index.js';
import { JsonStore, StoreTaskPersistence } from '../lib/store/index.js';
import { TaskQueue } from '../lib/task/index.js';
import type { BenchResult } from './run.js';

const CONC = 8;

async function pool(n: number, fn: () => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONC }, async () => {
      while (next++ < n) await fn();
    }),
  );
  return performance.now() - t0;
}

async function viaQueue(n: number, kind: string, spec: unknown, opts: ConstructorParameters<typeof TaskQueue>[0]): Promise<number> {
  const q = new TaskQueue({ concurrency: CONC, ...opts });
  q.registerExecutor('noop', { run: async () => ({}) });
  q.registerExecutor('process', new ProcessExecutor());
  await q.ready;
  const t0 = performance.now();
  const hs = Array.from({ length: n }, () => q.submit({ kind, spec }));
  const recs = await Promise.all(hs.map((h) => h.done));
  const ms = performance.now() - t0;
  if (recs.some((r) => r.state !== 'succeeded')) throw new Error('a bench task did not succeed');
  await q.close();
  return ms;
}

const spawnTrue = () =>
  new Promise<void>((resolve, reject) => {
    const c = spawn('true', [], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    c.once('error', reject);
    c.once('close', () => resolve());
  });

export default async function bench(args: string[]): Promise<BenchResult> {
  const nNoop = Number(args[0] ?? 20_000);
  const nChild = Number(args[1] ?? 300);
  const nPersist = Math.min(nNoop, 1000);
  const dir = await mkdtemp(join(tmpdir(), 'st-bench-queue-'));
  try {
    await pool(1000, async () => {}); // warm-up
    const plainNoopMs = await pool(nNoop, async () => {});
    const queueNoopMs = await viaQueue(nNoop, 'noop', null, { dataDir: join(dir, 'noop'), keepFinished: 0 });
    const store = await JsonStore.open({ dir: join(dir, 'store') });
    const queuePersistMs = await viaQueue(nPersist, 'noop', null, { dataDir: join(dir, 'p'), persistence: new StoreTaskPersistence(store), keepFinished: 0 });
    const plainChildMs = await pool(nChild, spawnTrue);
    const queueChildMs = await viaQueue(nChild, 'process', { command: 'true' }, { dataDir: join(dir, 'child'), keepFinished: 0 });
    return {
      figures: {
        noopTasks: nNoop,
        plainNoopPerSec: (nNoop / plainNoopMs) * 1000,
        queueNoopPerSec: (nNoop / queueNoopMs) * 1000,
        queueNoopUsPerTask: (queueNoopMs * 1000) / nNoop,
        persistedNoopTasks: nPersist,
        queuePersistedNoopPerSec: (nPersist / queuePersistMs) * 1000,
        childTasks: nChild,
        plainSpawnTruePerSec: (nChild / plainChildMs) * 1000,
        queueProcessTruePerSec: (nChild / queueChildMs) * 1000,
        queueProcessTrueMsPerTask: queueChildMs / nChild,
      },
      ratios: {
        queueNoopOverPlainPromise: queueNoopMs / plainNoopMs,
        queueTrueOverPlainSpawn: queueChildMs / plainChildMs,
        persistedNoopOverInMemoryQueue: queuePersistMs / nPersist / (queueNoopMs / nNoop),
      },
      targets: {
        'process tasks within 2x of plain spawn': queueChildMs / plainChildMs <= 2,
      },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
