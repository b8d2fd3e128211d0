/**
 * Loader benchmark: the same set of objects loaded
 *  - cold, one after the other (verifier every time)            = baseline
 *  - cold, in parallel with loadObjects (loader thread pool)
 *  - from the program cache (a hit skips the verifier)
 *  - from bpffs pins, as a restarted process would (fresh handles, no verifier)
 * plus what parsing the kernel BTF costs once (libbpf 1.1 pays it in every load that needs it).
 *
 *   npm run bench -- load [rounds]
 *
 * Uses every bundled object in the BPF dir (SMOOTHTASK_BPF_DIR) that loads on this host.
 * Targets: parallel <= 0.6x sequential (2+ cores), cache hit and pinned start >= 100x faster,
 * a cache hit (load + close of one object, all 8 in a round) <= 50 us per object.
 */
import { readdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import type { BenchResult } from './run.js';
import { kernelBtfParseCost, loadObject, loadObjects, programCache, unpin } from '../lib/ebpf/index.js';
import { bpfObjectDir } from '../lib/native/addon.js';

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};

/** Untimed rounds of cache hits before the timed ones (JIT warm-up). */
const HIT_WARMUP_ROUNDS = 50;
/** Untimed rounds of pinned starts (the first reopen builds the BTF and pin lookups). */
const PIN_WARMUP_ROUNDS = 3;

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export default async function bench(args: string[]): Promise<BenchResult> {
  const rounds = Math.max(1, Number(args[0] ?? 3));
  const dir = bpfObjectDir();
  const candidates = readdirSync(dir)
    .filter((f) => f.endsWith('.bpf.o'))
    .map((f) => join(dir, f));
  // keep the objects that load here (and warm up threads, probes and the pre-check)
  const paths: string[] = [];
  for (const p of candidates) {
    try {
      (await loadObject(p, { cache: false })).close();
      paths.push(p);
    } catch (e) {
      console.error(`skipping ${p}: ${(e as Error).message}`);
    }
  }
  if (paths.length < 2) throw new Error(`need at least 2 loadable objects in ${dir}`);
  const closeAll = (objs: { close(): void }[]): void => objs.forEach((o) => o.close());

  const seq: number[] = [];
  const par: number[] = [];
  let overlap = 0; // sum of the parallel loads' own durations over the phase's wall time
  // CPU the process got per wall-clock ms in each phase (the verifier runs as our system time):
  // parallel loading can only win when the host gives the process more than one core.
  const cpu = { seq: 0, par: 0 };
  for (let r = 0; r < rounds; r++) {
    let c0 = process.cpuUsage();
    seq.push(
      await time(async () => {
        const objs = [];
        for (const p of paths) objs.push(await loadObject(p, { cache: false }));
        closeAll(objs);
      }),
    );
    let c = process.cpuUsage(c0);
    cpu.seq += (c.user + c.system) / 1000;
    c0 = process.cpuUsage();
    let own = 0;
    const wall = await time(async () => {
      const res = await loadObjects(paths, { cache: false });
      const objs = res.flatMap((x) => (x.status === 'fulfilled' ? [x.value] : []));
      own = objs.reduce((a, o) => a + o.loadTimeMs, 0);
      closeAll(objs);
    });
    par.push(wall);
    overlap += own / wall / rounds;
    c = process.cpuUsage(c0);
    cpu.par += (c.user + c.system) / 1000;
  }
  const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

  // cache: one miss per object, then hits
  programCache.clear({ resetStats: true });
  closeAll(await Promise.all(paths.map((p) => loadObject(p))));
  // A hit is a few tens of microseconds: the first rounds run while V8 still compiles the
  // path, so they are not timed, and enough rounds are timed to give a stable median and min.
  const hit: number[] = [];
  for (let r = 0; r < HIT_WARMUP_ROUNDS + rounds * 40; r++) {
    if (r === HIT_WARMUP_ROUNDS) hit.length = 0;
    hit.push(
      await time(async () => {
        const objs = [];
        for (const p of paths) objs.push(await loadObject(p));
        closeAll(objs);
      }),
    );
  }
  const cacheStats = programCache.stats();
  programCache.clear();

  // pins: pin once, then reopen as a restarted process would (no cache, fresh handles)
  const namespace = `st_bench_load_${process.pid}`;
  const pinned: number[] = [];
  try {
    closeAll(await Promise.all(paths.map((p) => loadObject(p, { cache: false, pin: { namespace } }))));
    for (let r = 0; r < PIN_WARMUP_ROUNDS + rounds * 5; r++) {
      if (r === PIN_WARMUP_ROUNDS) pinned.length = 0;
      pinned.push(
        await time(async () => {
          const objs = [];
          for (const p of paths) {
            const o = await loadObject(p, { cache: false, pin: { namespace } });
            if (!o.fromPins) throw new Error(`${p} was not reopened from pins`);
            objs.push(o);
          }
          closeAll(objs);
        }),
      );
    }
  } finally {
    unpin({ namespace });
  }

  const btf = kernelBtfParseCost();
  const seqMs = median(seq);
  const parMs = median(par);
  const hitMs = median(hit);
  const pinMs = median(pinned);
  return {
    figures: {
      objects: paths.length,
      objectNames: paths.map((p) => p.split('/').pop()).join(','),
      cores: cpus().length,
      rounds,
      coldSequentialMs: seqMs,
      coldParallelMs: parMs,
      cacheHitMs: hitMs,
      cacheHitUsPerObject: (hitMs * 1000) / paths.length,
      cacheHitUsPerObjectMin: (Math.min(...hit) * 1000) / paths.length,
      cacheHitTimedRounds: hit.length,
      pinnedWarmStartMs: pinMs,
      cacheHits: cacheStats.hits,
      cacheLoadTimeSavedMs: cacheStats.loadTimeSavedMs,
      sequentialCpuMsPerWallMs: cpu.seq / sum(seq),
      parallelCpuMsPerWallMs: cpu.par / sum(par),
      hostLoadAverage1m: loadavg()[0] ?? 0,
      parallelLoadsOverlap: overlap,
      kernelBtfParseMs: btf.ms,
      kernelBtfTypes: btf.types,
    },
    ratios: {
      parallelOverSequential: parMs / seqMs,
      coldOverCacheHit: seqMs / hitMs,
      coldOverPinned: seqMs / pinMs,
    },
    targets: {
      parallelAtMost0_6xSequential: parMs / seqMs <= 0.6,
      cacheHitAtLeast100xFaster: seqMs / hitMs >= 100,
      cacheHitAtMost50usPerObject: (hitMs * 1000) / paths.length <= 50,
      pinnedAtLeast100xFaster: seqMs / pinMs >= 100,
    },
  };
}
