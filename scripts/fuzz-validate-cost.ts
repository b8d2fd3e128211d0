/**
 * Cost of the in-process validator (lib/ebpf/validate) against the load it guards:
 * `node --import tsx scripts/fuzz-validate-cost.ts`. For each bundled and test object, the
 * median time of `validateObject` (warm, 50 runs) and of `loadObject` (no cache, 3 runs).
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { loadObject } from '../lib/ebpf/load.js';
import { validateObject } from '../lib/ebpf/validate/index.js';
import { defaultSourcePaths } from './fuzz-child.js';

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const rows: string[] = ['| object | size (KiB) | BTF types | validate (ms) | load (ms) | validate / load |', '|---|---:|---:|---:|---:|---:|'];
let sumV = 0;
let sumL = 0;
for (const p of defaultSourcePaths()) {
  const bytes = new Uint8Array(readFileSync(p));
  const info = validateObject(bytes);
  for (let i = 0; i < 10; i++) validateObject(bytes); // warm up the JIT
  const v: number[] = [];
  for (let i = 0; i < 50; i++) {
    const t = performance.now();
    validateObject(bytes);
    v.push(performance.now() - t);
  }
  const l: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    try {
      (await loadObject(bytes, { cache: false, name: 'cost' })).close();
    } catch {
      /* objects that do not load here (verifier, unsupported) still cost their attempt */
    }
    l.push(performance.now() - t);
  }
  const mv = median(v);
  const ml = median(l);
  sumV += mv;
  sumL += ml;
  rows.push(`| ${basename(p)} | ${(bytes.byteLength / 1024).toFixed(0)} | ${info.btfTypes} | ${mv.toFixed(2)} | ${ml.toFixed(1)} | ${((100 * mv) / ml).toFixed(2)}% |`);
}
rows.push(`| **all** | | | ${sumV.toFixed(2)} | ${sumL.toFixed(1)} | ${((100 * sumV) / sumL).toFixed(2)}% |`);
process.stdout.write(`${rows.join('\n')}\n`);
