import { spawnSync } from 'node:child_process';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../lib/native/addon.js';
import { describe, expect, it } from 'vitest';
import { programCache } from '../../lib/ebpf/cache.js';
import { BpfError, InvalidObjectError, VerifierError } from '../../lib/ebpf/errors.js';
import { loadObject } from '../../lib/ebpf/load.js';
import { bundled, fdCount, rssBytes, testObject } from './helpers-loader.js';

/** Deterministic PRNG (mulberry32) so a failing input can be reproduced from its index. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('resource use', () => {
  it('load/close cycles leave no fds behind and RSS does not keep growing', async () => {
    const path = bundled('counter');
    const cycles = async (n: number) => {
      for (let i = 0; i < n; i++) (await loadObject(path, { cache: false })).close();
    };
    // warm-up: first-use allocations (threads, libbpf probes, V8 code, the allocator's pools,
    // ASan's quarantine) are not leaks
    await cycles(1000);
    // Measured after a full GC: JS garbage of the loads is not a leak of the loader.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const settled = () => (gc(), rssBytes());
    const fds = fdCount();
    const growth: number[] = [];
    for (let b = 0; b < 3; b++) {
      const before = settled();
      await cycles(1000);
      growth.push(settled() - before);
    }
    expect(fdCount()).toBe(fds);
    const mib = growth.map((g) => g / 1048576);
    console.log(`RSS growth per 1,000 cycles after warm-up: ${mib.map((m) => m.toFixed(1)).join(', ')} MiB`);
    // Measured here (2 cores): 0.8-8.3 MiB per batch, 13-17 MiB for the three (under ASan beside
    // other test files, 8-12 MiB): the native allocator grows in steps of several MiB, so one
    // batch says little. A leak grows every batch alike: 32 MiB over 3,000 cycles is about 11 KiB
    // a cycle, more than the allocator's steps and less than any leak of a kernel BTF parse or a
    // program's instructions per load (a leaked ELF copy, 6.4 KiB, would stay under it: the
    // LeakSanitizer phase of scripts/sanitize.sh is what catches such native leaks).
    // Under ASan the bound means nothing: freed chunks wait in ASan's quarantine (256 MiB by
    // default) before they are reused, so RSS grows with every byte freed until the quarantine is
    // full (a CI run saw 13.5, 4.1 and 19.6 MiB). There LeakSanitizer alone judges leaks.
    const underAsan = /libasan/.test(process.env.LD_PRELOAD ?? '');
    if (!underAsan) expect(mib.reduce((a, b) => a + b, 0)).toBeLessThan(32);
  }, 120_000);

  it('1,000 cache hits and closes hold one object', async () => {
    programCache.clear({ resetStats: true });
    const fds0 = fdCount();
    for (let i = 0; i < 1000; i++) (await loadObject(bundled('counter'))).close();
    expect(programCache.stats()).toMatchObject({ misses: 1, hits: 999, entries: 1 });
    programCache.clear();
    expect(fdCount()).toBe(fds0);
  }, 60_000);
});

describe('environments', () => {
  it('a worker thread that exits while its load runs does not crash the process', async () => {
    const addon = process.env.SMOOTHTASK_ADDON ?? join(packageRoot(), 'build-native', 'Release', 'smoothtask.node');
    // the worker loads the addon itself (the main thread never does), starts a slow load and
    // exits at once: Node would unload the addon and free the worker's thread-safe function
    const script = `
      const { Worker } = require('node:worker_threads');
      const code = \`
        const a = require(\${JSON.stringify(${JSON.stringify(addon)})});
        const elf = require('node:fs').readFileSync(\${JSON.stringify(${JSON.stringify(testObject('slow_verify'))})});
        a.loader.load(elf, { name: 'w', trusted: true }).then((o) => o.close());
        require('node:worker_threads').parentPort.postMessage('started');
        setTimeout(() => process.exit(0), 20);
      \`;
      (async () => {
        let started = 0;
        for (let i = 0; i < 3; i++) {
          const w = new Worker(code, { eval: true });
          w.on('message', () => started++);
          await new Promise((r) => w.on('exit', r));
        }
        await new Promise((r) => setTimeout(r, 2500)); // the loads finish after their workers are gone
        console.log('alive ' + started);
      })();`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('alive 3');
  }, 90_000);
});

describe('malformed objects', () => {
  const sources = [bundled('counter'), testObject('consts')].map((p) => new Uint8Array(readFileSync(p)));

  async function expectTyped(bytes: Uint8Array, what: string): Promise<string> {
    try {
      const o = await loadObject(bytes, { cache: false, name: 'fuzz' });
      o.close(); // a mutation in bytes nobody reads can still load
      return 'loaded';
    } catch (e) {
      if (!(e instanceof InvalidObjectError || e instanceof VerifierError)) {
        throw new Error(`${what}: expected InvalidObjectError or VerifierError, got ${(e as Error).name} ${(e as BpfError).code}: ${(e as Error).message}`);
      }
      // libbpf 1.1 crashes on some inputs; the addon's fork-isolated pre-check turns that into an error
      return /crashed libbpf/.test((e as Error).message) ? 'crashIsolated' : (e as Error).name;
    }
  }

  it('truncated ELF files give typed errors, never a crash', async () => {
    const rand = rng(1);
    const seen: Record<string, number> = {};
    for (let i = 0; i < 150; i++) {
      const src = sources[i % sources.length] as Uint8Array;
      const len = i < 20 ? i * 3 : Math.floor(rand() * src.length);
      const r = await expectTyped(src.slice(0, len), `truncation #${i} to ${len} bytes`);
      seen[r] = (seen[r] ?? 0) + 1;
    }
    expect(seen.InvalidObjectError).toBeGreaterThan(100);
  }, 120_000);

  it('byte-flipped ELF files give typed errors or load, never a crash', async () => {
    const rand = rng(2);
    const seen: Record<string, number> = {};
    for (let i = 0; i < 300; i++) {
      const src = sources[i % sources.length] as Uint8Array;
      const b = src.slice();
      const flips = 1 + Math.floor(rand() * 8);
      // half the inputs hit the first 512 bytes (ELF and section headers), half anywhere
      const span = i % 2 === 0 ? Math.min(512, b.length) : b.length;
      for (let f = 0; f < flips; f++) b[Math.floor(rand() * span)] = Math.floor(rand() * 256);
      const r = await expectTyped(b, `mutation #${i}`);
      seen[r] = (seen[r] ?? 0) + 1;
    }
    expect(seen.InvalidObjectError).toBeGreaterThan(20);
    // Some inputs crash libbpf 1.1.2 when opened in-process; which ones depends on the exact
    // bytes of the build (BTF strings hold the source path), so the count is reported, not fixed.
    console.info(`byte flips: ${JSON.stringify(seen)} (crashIsolated: libbpf crashed in the fork-isolated pre-check)`);
  }, 120_000);

  it('random bytes and empty input', async () => {
    const rand = rng(3);
    await expect(loadObject(new Uint8Array(0), { cache: false })).rejects.toThrow(InvalidObjectError);
    for (let i = 0; i < 20; i++) {
      const b = new Uint8Array(64 + Math.floor(rand() * 4096)).map(() => Math.floor(rand() * 256));
      if (i % 2) b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]); // plausible ELF header start
      await expect(loadObject(b, { cache: false })).rejects.toThrow(InvalidObjectError);
    }
  });
});
