/**
 * Whole-map reads of a 100,000-entry hash map, in one run:
 *   npm run bench -- maps [entries=100000] [rounds=5]
 * BpfMap.readAllRaw (one native call, BPF_MAP_LOOKUP_BATCH), readAll (same + decoding into a
 * Map), per-key get() for every key (one N-API call and syscall per key), and a C program doing
 * the batch lookup on the same map (by id). Best round of each.
 */
import { cpus, release } from 'node:os';
import { u32, u64 } from '../lib/ebpf/codec.js';
import { createMap } from '../lib/ebpf/map.js';
import type { BenchResult } from './run.js';
import { buildC, runC } from './_dp-common.js';

function best(rounds: number, fn: () => void): number {
  let b = Infinity;
  for (let i = 0; i < rounds; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    b = Math.min(b, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return b;
}

export default async function bench(args: string[]): Promise<BenchResult> {
  const entries = Number(args[0] ?? 100_000);
  const rounds = Number(args[1] ?? 5);
  const bin = buildC('map-batch');
  using m = createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: entries }, { key: u32, value: u64 });
  const keys = Array.from({ length: entries }, (_, i) => i * 3 + 1);
  m.setMany(keys.map((k) => [k, BigInt(k) * 10n] as const));
  let n = 0;
  const rawMs = best(rounds, () => {
    n = m.readAllRaw('batch').count;
  });
  if (n !== entries) throw new Error(`batch read ${n} of ${entries}`);
  const decodedMs = best(rounds, () => {
    n = m.readAll('batch').size;
  });
  const perKeyMs = best(Math.min(rounds, 3), () => {
    let s = 0n;
    for (const k of keys) s += m.get(k) ?? 0n;
    if (s === 0n) throw new Error('empty');
  });
  const c = runC(bin, [String(m.metadata().id), String(rounds)]);
  if (c.count !== entries) throw new Error(`C batch read ${c.count} of ${entries}`);
  const cMs = c.ns / 1e6;
  return {
    figures: { cores: cpus().length, kernel: release(), entries, batchRawMs: rawMs, batchDecodedMs: decodedMs, perKeyMs, cBatchMs: cMs },
    ratios: { batchRawOverC: rawMs / cMs, batchDecodedOverC: decodedMs / cMs, perKeyOverBatchRaw: perKeyMs / rawMs },
    targets: { 'batch within 2x of C': rawMs <= 2 * cMs },
  };
}
