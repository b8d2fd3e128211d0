/**
 * Benchmark runner: `npm run bench -- <name> [args...]` runs bench/<name>.ts and writes
 * bench/out/<name>.json as `{ name, figures, ratios, host }`.
 *
 * A benchmark module default-exports `async (args: string[]) => BenchResult`. Ratios are
 * always against a baseline measured in the same run, never against a stored number.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** What a benchmark returns. */
export interface BenchResult {
  /** Measured values, with units in the key names (e.g. `parallelMs`, `recordsPerSec`). */
  figures: Record<string, number | string>;
  /** Ratios against a baseline measured in the same run (e.g. `parallelOverSequential`). */
  ratios: Record<string, number>;
  /** Targets checked, name -> whether met. */
  targets?: Record<string, boolean>;
}

const here = dirname(fileURLToPath(import.meta.url));
const [name, ...args] = process.argv.slice(2);
const available = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_'))
  .map((f) => f.slice(0, -3));
if (!name || !available.includes(name)) {
  console.error(`usage: npm run bench -- <name>\navailable: ${available.join(', ')}`);
  process.exit(2);
}
const mod = (await import(pathToFileURL(join(here, `${name}.ts`)).href)) as { default: (a: string[]) => Promise<BenchResult> };
const result = await mod.default(args);
const host = {
  cores: cpus().length,
  cpuModel: cpus()[0]?.model ?? 'unknown',
  kernel: release(),
  node: process.version,
  memoryBytes: totalmem(),
  date: new Date().toISOString(),
};
const out = { name, figures: result.figures, ratios: result.ratios, targets: result.targets ?? {}, host };
mkdirSync(join(here, 'out'), { recursive: true });
writeFileSync(join(here, 'out', `${name}.json`), JSON.stringify(out, null, 2) + '\n');
console.log(`\n${name} on ${host.cores} cores, kernel ${host.kernel}, ${host.node}`);
for (const [k, v] of Object.entries(out.figures)) console.log(`  ${k.padEnd(36)} ${typeof v === 'number' ? +v.toFixed(3) : v}`);
for (const [k, v] of Object.entries(out.ratios)) console.log(`  ratio ${k.padEnd(30)} ${v.toFixed(3)}x`);
for (const [k, v] of Object.entries(out.targets)) console.log(`  target ${k.padEnd(29)} ${v ? 'met' : 'NOT met'}`);
console.log(`wrote bench/out/${name}.json`);
