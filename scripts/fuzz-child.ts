/**
 * Child process of the loader fuzzer (run with `node --import tsx`). It runs inputs through
 * open and load and prints one line per input; the parent (scripts/fuzz.ts or
 * test/ebpf/fuzz.test.ts) owns the process so that a crash costs this child only.
 *
 *   fuzz-child.ts --seed S --from A --to B [--raw]   mutants A..B-1 of seed S
 *   fuzz-child.ts --files f1 f2 ... [--raw]          the given files
 *
 * Lines (stdout is a pipe, so each write is synchronous on Linux: after a crash, the last
 * `S` line names the input that was running):
 *   S <index>                                       starting input <index>
 *   R <index> <btfAware 0|1> <open class> <load class> <message>
 *
 * Stages: `open` is libbpf's `bpf_object__open` in this process, without the fork-isolated
 * pre-check, for inputs the validator accepts (the validator alone must make it safe);
 * `load` is `loadObject` (validator, then the addon's fork pre-check, then
 * `bpf_object__load`). `--raw` skips the validator: load goes straight to the addon (as
 * before the validator existed) and open is skipped; it finds what the validator must catch.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SmoothtaskError } from '../lib/errors/index.js';
import { fromNative, InvalidObjectError } from '../lib/ebpf/errors.js';
import { bundledObjects, loadObject } from '../lib/ebpf/load.js';
import { validateObject } from '../lib/ebpf/validate/index.js';
import { bpfObjectDir, loadAddon } from '../lib/native/addon.js';
import { loadSources, mutant } from './fuzz-mutate.js';

/** The objects mutated by default: the bundled objects and the test objects (slow_verify left out: it is slow by design). */
export function defaultSourcePaths(): string[] {
  const testDir = join(bpfObjectDir(), 'test');
  let tests: string[] = [];
  try {
    tests = readdirSync(testDir)
      .filter((f) => f.endsWith('.bpf.o') && f !== 'slow_verify.bpf.o')
      .sort()
      .map((f) => join(testDir, f));
  } catch {
    /* not built */
  }
  return [...bundledObjects(), ...tests];
}

/** Class of an outcome: `ok`, the typed error's class (validator rejections apart), or `UNTYPED:<name>`. */
export function classify(e: unknown): string {
  if (!(e instanceof SmoothtaskError)) return `UNTYPED:${(e as Error)?.name ?? typeof e}`;
  if (e instanceof InvalidObjectError) {
    if (/is not a valid BPF object: malformed/.test(e.message)) return 'InvalidObjectError(validator)';
    // a JS exception inside the validator (a read past a bound it did not check first)
    if (/is not a valid BPF object: validator fault/.test(e.message)) return 'InvalidObjectError(validator-gap)';
    if (/crashed libbpf/.test(e.message)) return 'InvalidObjectError(crash-isolated)';
    return 'InvalidObjectError(libbpf)';
  }
  return e.name;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function runOne(index: number, bytes: Uint8Array, btfAware: boolean, raw: boolean): Promise<void> {
  process.stdout.write(`S ${index}\n`);
  let open = '-';
  let load: string;
  let message = '';
  const addon = loadAddon();
  let valid = false;
  if (!raw) {
    try {
      validateObject(bytes, 'fuzz');
      valid = true;
    } catch {
      /* loadObject reports it below */
    }
  }
  if (valid) {
    try {
      addon.loader.inspect(bytes, 'fuzz');
      open = 'ok';
    } catch (e) {
      open = classify(fromNative(e));
    }
  }
  try {
    if (raw) {
      const o = await addon.loader.load(bytes, { name: 'fuzz', trusted: false, logLevel: 0, timeoutMs: 20_000 });
      o.close();
    } else {
      const o = await loadObject(bytes, { name: 'fuzz', cache: false, timeoutMs: 20_000 });
      o.close();
    }
    load = 'ok';
  } catch (e) {
    const err = raw ? fromNative(e) : e;
    load = classify(err);
    message = ((err as Error)?.message ?? String(err)).replace(/\s+/g, ' ').slice(0, 300);
  }
  process.stdout.write(`R ${index} ${btfAware ? 1 : 0} ${open} ${load} ${message}\n`);
}

async function main(): Promise<void> {
  const raw = process.argv.includes('--raw');
  const filesAt = process.argv.indexOf('--files');
  if (filesAt >= 0) {
    const rest = process.argv.slice(filesAt + 1);
    const files = rest.slice(0, rest.findIndex((f) => f.startsWith('--')) >>> 0);
    for (const [i, f] of files.entries()) await runOne(i, new Uint8Array(readFileSync(f)), /btf/i.test(f), raw);
    return;
  }
  const seed = Number(arg('--seed') ?? 1);
  const from = Number(arg('--from') ?? 0);
  const to = Number(arg('--to') ?? from + 1);
  const sources = loadSources((arg('--sources') ?? defaultSourcePaths().join(',')).split(','));
  for (let i = from; i < to; i++) {
    const m = mutant(sources, seed, i);
    await runOne(i, m.bytes, m.btfAware, raw);
  }
}

if (process.argv[1] && /fuzz-child\.ts$/.test(process.argv[1])) {
  await main();
  process.stdout.write('E\n');
  process.exit(0);
}
