/**
 * Queue overhead: no-op tasks and `true` child processes through TaskQueue (concurrency 8)
 * against the same work with a plain Promise pool / plain child_process.spawn pool; and no-op
 * tasks persisted by StoreTaskPersistence (group-committed journal) against the in-memory
 * queue, in rounds (median and best of each).
 *   npm run bench -- queue [noopTasks=20000] [childTasks=300] [rounds=5]
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

/** Time to run `n` tasks (submit to last outcome); `closeMs` is the queue's close() after (a persisted queue's last checkpoint). */
async function viaQueueTimed(n: number, kind: string, spec: unknown, opts: ConstructorParameters<typeof TaskQueue>[0]): Promise<{ ms: number; closeMs: number }> {
  const q = new TaskQueue({ concurrency: CONC, ...opts });
  q.registerExecutor('noop', { run: async () => ({}) });
  q.registerExecutor('process', new ProcessExecutor());
  await q.ready;
  const t0 = performance.now();
  const hs = Array.from({ length: n }, () => q.submit({ kind, spec }));
  const recs = await Promise.all(hs.map((h) => h.done));
  const ms = performance.now() - t0;
  if (recs.some((r) => r.state !== 'succeeded')) throw new Error('a bench task did not succeed');
  const t1 = performance.now();
  await q.close();
  return { ms, closeMs: performance.now() - t1 };
}
const viaQueue = async (...a: Parameters<typeof viaQueueTimed>) => (await viaQueueTimed(...a)).ms;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const spawnTrue = () =>
  new Promise<void>((resolve, reject) => {
    const c = spawn('true', [], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    c.once('error', reject);
    c.once('close', () => resolve());
  });

export default async function bench(args: string[]): Promise<BenchResult> {
  const nNoop = Number(args[0] ?? 20_000);
  const nChild = Number(args[1] ?? 300);
  const rounds = Number(args[2] ?? 5);
  const nPersist = Math.min(nNoop, 5000);
  const dir = await mkdtemp(join(tmpdir(), 'st-bench-queue-'));
  try {
    await pool(1000, async () => {}); // warm-up
    await viaQueue(1000, 'noop', null, { dataDir: join(dir, 'warm'), keepFinished: 0 });
    const plainNoopMs = await pool(nNoop, async () => {});
    const queueNoopMs = await viaQueue(nNoop, 'noop', null, { dataDir: join(dir, 'noop'), keepFinished: 0 });
    // Persisted against in-memory, alternating, the same task count, several rounds (each persisted round on a fresh store).
    const mem: number[] = [];
    const per: number[] = [];
    const closes: number[] = [];
    for (let r = 0; r < rounds; r++) {
      mem.push(await viaQueue(nPersist, 'noop', null, { dataDir: join(dir, `m${r}`), keepFinished: 0 }));
      const store = await JsonStore.open({ dir: join(dir, `store${r}`) });
      const t = await viaQueueTimed(nPersist, 'noop', null, { dataDir: join(dir, `p${r}`), persistence: new StoreTaskPersistence(store), keepFinished: 0 });
      per.push(t.ms);
      closes.push(t.closeMs);
    }
    const queuePersistMs = median(per);
    const memMs = median(mem);
    const plainChildMs = await pool(nChild, spawnTrue);
    const queueChildMs = await viaQueue(nChild, 'process', { command: 'true' }, { dataDir: join(dir, 'child'), keepFinished: 0 });
    return {
      figures: {
        noopTasks: nNoop,
        plainNoopPerSec: (nNoop / plainNoopMs) * 1000,
        queueNoopPerSec: (nNoop / queueNoopMs) * 1000,
        queueNoopUsPerTask: (queueNoopMs * 1000) / nNoop,
        persistedNoopTasks: nPersist,
        rounds,
        inMemoryNoopPerSecMedian: (nPersist / memMs) * 1000,
        inMemoryNoopPerSecBest: (nPersist / Math.min(...mem)) * 1000,
        queuePersistedNoopPerSecMedian: (nPersist / queuePersistMs) * 1000,
        queuePersistedNoopPerSecBest: (nPersist / Math.min(...per)) * 1000,
        persistedCloseMsMedian: median(closes),
        childTasks: nChild,
        plainSpawnTruePerSec: (nChild / plainChildMs) * 1000,
        queueProcessTruePerSec: (nChild / queueChildMs) * 1000,
        queueProcessTrueMsPerTask: queueChildMs / nChild,
      },
      ratios: {
        queueNoopOverPlainPromise: queueNoopMs / plainNoopMs,
        queueTrueOverPlainSpawn: queueChildMs / plainChildMs,
        persistedThroughputOverInMemory: memMs / queuePersistMs,
        persistedThroughputOverInMemoryBestRounds: Math.min(...mem) / Math.min(...per),
      },
      targets: {
        'process tasks within 2x of plain spawn': queueChildMs / plainChildMs <= 2,
        'persisted no-op tasks >= 0.25x the in-memory queue (medians)': memMs / queuePersistMs >= 0.25,
      },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
