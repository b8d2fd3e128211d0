/**
 * Store write latency: JsonStore.write (validated, locked, temp+fsync+rename+dir fsync),
 * JsonStore without the inter-process lock, writeFileDurable alone, against fs.writeFile
 * (no fsync) and fs.writeFile + fsync of the file.
 *   npm run bench -- store [writes=300] [rounds=5]
 *
 * The durable write, the locked store write and the unlocked one run in alternating rounds
 * (the disk's speed drifts): target, a store write p50 <= 1.2x the bare durable write p50.
 */
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { JsonStore, writeFileDurable } from '../lib/store/index.js';
import type { BenchResult } from './run.js';

const Doc = z.object({ id: z.string(), n: z.number(), items: z.array(z.object({ k: z.string(), v: z.number() })) });
const doc = (n: number) => ({ id: 'bench', n, items: Array.from({ length: 20 }, (_, i) => ({ k: `key-${i}`, v: i * n })) });

interface Summary {
  p50: number;
  p99: number;
  mean: number;
  all: number[];
}
function summary(t: number[]): Summary {
  const s = [...t].sort((a, b) => a - b);
  const n = s.length;
  return { p50: s[Math.floor(n * 0.5)]!, p99: s[Math.min(n - 1, Math.floor(n * 0.99))]!, mean: s.reduce((a, b) => a + b, 0) / n, all: t };
}
async function measure(n: number, fn: (i: number) => Promise<unknown>): Promise<Summary> {
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    t.push(performance.now() - t0);
  }
  return summary(t);
}

export default async function bench(args: string[]): Promise<BenchResult> {
  const n = Number(args[0] ?? 300);
  const rounds = Math.max(1, Number(args[1] ?? 5));
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
    // Alternating rounds, order rotated each round; percentiles over all rounds' samples.
    const samples = { durable: [] as number[], nolock: [] as number[], store: [] as number[] };
    const per = Math.max(10, Math.ceil(n / rounds));
    const steps: [keyof typeof samples, (i: number) => Promise<unknown>][] = [
      ['durable', (i) => writeFileDurable(durablePath, body(i))],
      ['store', (i) => locked.write('doc', Doc, doc(i))],
      ['nolock', (i) => unlocked.write('doc', Doc, doc(i))],
    ];
    for (let i = 0; i < 20; i++) for (const [, fn] of steps) await fn(i); // warm-up
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < steps.length; k++) {
        const [name, fn] = steps[(k + r) % steps.length]!;
        samples[name].push(...(await measure(per, fn)).all);
      }
    }
    const durable = summary(samples.durable);
    const store = summary(samples.store);
    const nolock = summary(samples.nolock);
    const update = await measure(n, () => locked.update('counter', z.object({ n: z.number() }), (c) => ({ n: (c?.n ?? 0) + 1 })));
    return {
      figures: {
        writes: n,
        rounds,
        docBytes: Buffer.byteLength(body(1)),
        writeFileP50Ms: plain.p50,
        writeFileP99Ms: plain.p99,
        writeFileFsyncP50Ms: fsynced.p50,
        writeFileDurableP50Ms: durable.p50,
        writeFileDurableP99Ms: durable.p99,
        storeNoLockP50Ms: nolock.p50,
        storeWriteP50Ms: store.p50,
        storeNoLockP99Ms: nolock.p99,
        storeWriteP99Ms: store.p99,
        storeUpdateP50Ms: update.p50,
      },
      ratios: {
        storeWriteP50OverDurableP50: store.p50 / durable.p50,
        storeNoLockP50OverDurableP50: nolock.p50 / durable.p50,
        storeWriteOverWriteFile: store.mean / plain.mean,
        storeWriteOverWriteFileFsync: store.mean / fsynced.mean,
        durableOverWriteFileFsync: durable.mean / fsynced.mean,
        lockCostStoreOverNoLock: store.mean / nolock.mean,
      },
      targets: { storeWriteP50AtMost1_2xDurable: store.p50 / durable.p50 <= 1.2 },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
