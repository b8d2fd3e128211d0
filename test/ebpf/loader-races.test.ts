// Races of the loader: the feature-probe warm-up shared by concurrent timed loads, and the
// single-flight contract (each caller's own timeout governs its own wait).
// This file must be the first to load in its fork with a timeout: vitest isolates modules per
// file, so load.ts's warm-up state starts fresh here.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { programCache } from '../../lib/ebpf/cache.js';
import { LoadTimeoutError } from '../../lib/ebpf/errors.js';
import { loadObject } from '../../lib/ebpf/load.js';
import { loadAddon } from '../../lib/native/addon.js';
import { bundled, testObject } from './helpers-loader.js';

interface Call {
  name: string;
  timed: boolean;
  start: number;
  end?: number;
}

describe('loader races', () => {
  it('concurrent timed loads all wait for the one feature-probe warm-up in progress', async () => {
    const loader = loadAddon().loader;
    const original = loader.load;
    const calls: Call[] = [];
    loader.load = (async (elf: Uint8Array, opts: { name?: string; timeoutMs?: number }) => {
      const c: Call = { name: opts.name ?? '', timed: typeof opts.timeoutMs === 'number', start: performance.now() };
      calls.push(c);
      try {
        return await original.call(loader, elf, opts as never);
      } finally {
        c.end = performance.now();
      }
    }) as typeof loader.load;
    try {
      const objs = await Promise.all(
        ['counter', 'counter', 'counter', 'counter'].map((n, i) => loadObject(bundled(n), { timeoutMs: 60_000, cache: false, name: `warm_${i}` })),
      );
      for (const o of objs) o.close();
    } finally {
      loader.load = original;
    }
    const warm = calls.filter((c) => !c.timed);
    const timed = calls.filter((c) => c.timed);
    expect(timed.length).toBe(4);
    // one warm-up for the process (the bundled counter plus the first object with no program)
    expect(warm.length).toBeGreaterThanOrEqual(1);
    expect(warm.length).toBeLessThanOrEqual(2);
    const warmEnd = Math.max(...warm.map((c) => c.end ?? Infinity));
    for (const t of timed) expect(t.start).toBeGreaterThanOrEqual(warmEnd);
  });

  it('a joiner that allowed longer than the owner is not failed by the owner timeout', async () => {
    programCache.clear();
    // bytes, not a path: no file read reorders the three calls, so the first one owns the load
    const src = readFileSync(testObject('slow_verify'));
    // the owner gives up almost at once; the joiner (same key) allows a minute
    const owner = loadObject(src, { timeoutMs: 5 }).then(
      (o) => o,
      (e: unknown) => e,
    );
    const joiner = loadObject(src, { timeoutMs: 60_000 }).then(
      (o) => o,
      (e: unknown) => e,
    );
    const noLimit = loadObject(src).then(
      (o) => o,
      (e: unknown) => e,
    );
    const [a, b, c] = await Promise.all([owner, joiner, noLimit]);
    expect(a).toBeInstanceOf(LoadTimeoutError);
    expect((a as LoadTimeoutError).timeoutMs).toBe(5);
    expect(b).not.toBeInstanceOf(Error);
    expect(c).not.toBeInstanceOf(Error);
    const bo = b as Awaited<ReturnType<typeof loadObject>>;
    const co = c as Awaited<ReturnType<typeof loadObject>>;
    expect(bo.program('slow_verify').loaded).toBe(true);
    // still single-flight among the survivors: one kernel program for both
    expect(co.program('slow_verify').id).toBe(bo.program('slow_verify').id);
    bo.close();
    co.close();
    programCache.clear();
  });

  it('a joiner with a shorter timeout gets its own timeout, not the owner result', async () => {
    programCache.clear();
    const src = readFileSync(testObject('slow_verify'));
    const owner = loadObject(src, { timeoutMs: 60_000, name: 'slow_short_joiner' });
    const joiner = await loadObject(src, { timeoutMs: 5, name: 'slow_short_joiner' }).catch((e: unknown) => e);
    expect(joiner).toBeInstanceOf(LoadTimeoutError);
    expect((joiner as LoadTimeoutError).timeoutMs).toBe(5);
    (await owner).close();
    programCache.clear();
  });
});
