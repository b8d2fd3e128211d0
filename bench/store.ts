/**
 * Store write latency: JsonStore.write (validated, locked, temp+fsync+rename+dir fsync),
 * JsonStore without the inter-process lock, writeFileDurable alone, against fs.writeFile
 * (no fsync) and fs.writeFile + fsync of the file.
 *   npm run bench -- store [writes=300]
 */
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { JsonStore, writeFileDurable } from '../lib/store/index.js';
import type { BenchResult } from './run.js';

const Doc = z.object({ id: z.string(), n: z.number(), items: z.array(z.object({ k: z.string(), v: z.number() })) });
const doc = (n: number) => ({ id: 'bench', n, items: Array.from({ length: 20 }, (_, i) => ({ k: `key-${i}`, v: i * n })) });

async function measure(n: number, fn: (i: number) => Promise<unknown>): Promise<{ p50: number; p99: number; mean: number }> {
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  return { p50: t[Math.floor(n * 0.5)]!, p99: t[Math.min(n - 1, Math.floor(n * 0.99))]!, mean: t.reduce((a, b) => a + b, 0) / n };
}

export default async function bench(args: string[]): Promise<BenchResult> {
  const n = Number(args[0] ?? 300);
  const dir = await mkdtemp(join(tmpdir(), 'st-bench-store-'));
  try {
    const locked = await JsonStore.open({ dir: join(dir, 'locked') });
    const unlocked = await JsonStore.open({ dir: join(dir, 'unlocked'), lock: false });
    const plainPath = join(dir, 'plain.json');
    const syncPath = join(dir, 'sync.json');
    const durablePath = join(dir, 'durable.json');
    const body = (i: number) => JSON.stringify(doc(i), null, 2) + '\n';
    const plain = await measure(n, (i) => writeFile(plainPath, body(i)));
    const fsynced = await measure(n, async (i) => {
      const fh = await open(syncPath, 'w');
      await fh.writeFile(body(i));
      await fh.sync();
      await fh.close();
    });
    const durable = await measure(n, (i) => writeFileDurable(durablePath, body(i)));
    const nolock = await measure(n, (i) => unlocked.write('doc', Doc, doc(i)));
    const store = await measure(n, (i) => locked.write('doc', Doc, doc(i)));
    const update = await measure(n, () => locked.update('counter', z.object({ n: z.number() }), (c) => ({ n: (c?.n ?? 0) + 1 })));
    return {
      figures: {
        writes: n,
        docBytes: Buffer.byteLength(body(1)),
        writeFileP50Ms: plain.p50,
        writeFileP99Ms: plain.p99,
        writeFileFsyncP50Ms: fsynced.p50,
        writeFileDurableP50Ms: durable.p50,
        writeFileDurableP99Ms: durable.p99,
        storeNoLockP50Ms: nolock.p50,
        storeWriteP50Ms: store.p50,
        storeWriteP99Ms: store.p99,
        storeUpdateP50Ms: update.p50,
      },
      ratios: {
        storeWriteOverWriteFile: store.mean / plain.mean,
        storeWriteOverWriteFileFsync: store.mean / fsynced.mean,
        durableOverWriteFileFsync: durable.mean / fsynced.mean,
        lockCostStoreOverNoLock: store.mean / nolock.mean,
      },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
