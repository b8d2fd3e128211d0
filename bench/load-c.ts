/**
 * Loader against plain C libbpf on objects that are not the bundled ones (the third-party
 * style objects of test/bpf: bcc libbpf-tools look-alikes and the data-path test objects),
 * loaded one after the other with the programs that load on this host.
 *
 *   npm run bench -- load-c [rounds=15]
 *
 * Each round writes fresh copies of the objects (a 4-byte tail differs per round, so every
 * copy is an ELF this process has never seen: the first-load path, validator and isolated pre-check included), then
 * loads them sequentially with `loadObject(path, { cache: false, programs })` and with
 * bench/c/loader.c (read, open_mem, autoload off for the other programs, load, close), in
 * alternating order. A second figure loads the same copies again in JS (ELF already seen).
 * Target: JS first loads <= 1.15x C (median of rounds).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { BenchResult } from './run.js';
import { buildC } from './_dp-common.js';
import { loadObject } from '../lib/ebpf/index.js';
import { bpfObjectDir } from '../lib/native/addon.js';

/** Test objects and the programs of each that load on a host without kprobes and fentry. */
const OBJECTS: [string, string[]][] = [
  ['runqlat_like', ['rql_switch']],
  ['opensnoop_like', ['osl_enter_openat', 'osl_exit_openat']],
  ['dp_ringbuf', []],
  ['dp_perfbuf', []],
  ['dp_attach', []],
  ['user_sized', []],
];

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};

export default async function bench(args: string[]): Promise<BenchResult> {
  const rounds = Math.max(1, Number(args[0] ?? 15));
  const bin = buildC('loader');
  const src = join(bpfObjectDir(), 'test');
  const work = mkdtempSync(join(tmpdir(), 'st-bench-loadc-'));
  // keep the objects that load here both ways
  const objs: { name: string; bytes: Buffer; programs: string[] }[] = [];
  for (const [name, programs] of OBJECTS) {
    const bytes = readFileSync(join(src, `${name}.bpf.o`));
    const spec = `${join(src, `${name}.bpf.o`)}${programs.length ? `:${programs.join(',')}` : ''}`;
    try {
      execFileSync(bin, ['1', spec], { stdio: 'pipe' });
      (await loadObject(join(src, `${name}.bpf.o`), { cache: false, ...(programs.length ? { programs } : {}) })).close();
      objs.push({ name, bytes, programs });
    } catch (e) {
      console.error(`skipping ${name}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  if (objs.length < 2) throw new Error('need at least 2 loadable test objects (build them with npm run build)');

  const c: number[] = [];
  const js: number[] = [];
  const jsSeen: number[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      const tail = Buffer.alloc(4);
      tail.writeUInt32LE(r + 1);
      const files = objs.map((o) => {
        const p = join(work, `${o.name}-${r}.bpf.o`);
        writeFileSync(p, Buffer.concat([o.bytes, tail]));
        return { path: p, programs: o.programs };
      });
      const runC = (): void => {
        const specs = files.map((f) => `${f.path}${f.programs.length ? `:${f.programs.join(',')}` : ''}`);
        const [, ns] = execFileSync(bin, ['1', ...specs], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
        c.push((ns ?? NaN) / 1e6);
      };
      const runJs = async (into: number[]): Promise<void> => {
        const t0 = performance.now();
        for (const f of files) (await loadObject(f.path, { cache: false, name: basename(f.path, '.bpf.o').replace(/-\d+$/, ''), ...(f.programs.length ? { programs: f.programs } : {}) })).close();
        into.push(performance.now() - t0);
      };
      if (r % 2 === 0) {
        runC();
        await runJs(js);
      } else {
        await runJs(js);
        runC();
      }
      await runJs(jsSeen);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const cMs = median(c);
  const jsMs = median(js);
  const seenMs = median(jsSeen);
  return {
    figures: {
      objects: objs.map((o) => o.name).join(','),
      rounds,
      cSequentialMs: cMs,
      cSequentialMinMs: Math.min(...c),
      jsFirstLoadMs: jsMs,
      jsFirstLoadMinMs: Math.min(...js),
      jsSeenLoadMs: seenMs,
      rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20),
    },
    ratios: {
      jsFirstLoadOverC: jsMs / cMs,
      jsFirstLoadOverCMin: Math.min(...js) / Math.min(...c),
      jsSeenLoadOverC: seenMs / cMs,
    },
    targets: { firstLoadsAtMost1_15xC: jsMs / cMs <= 1.15 },
  };
}
