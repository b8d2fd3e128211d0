/**
 * Seeded mutation fuzzer of the eBPF loader: `npm run fuzz -- --count N [--seed S]
 * [--concurrency C] [--batch B] [--out DIR] [--raw] [--files F...]`.
 *
 * Inputs (scripts/fuzz-mutate.ts: generic, ELF-aware and BTF-aware mutations of the bundled
 * and test objects) run through open and load (scripts/fuzz-child.ts) in child processes,
 * `--batch` inputs per child. A child that dies (a signal, or an exit without its end line)
 * names the input it was running by its last `S` line; that input is written to `--out`
 * (default bench/out/fuzz-crashes/) with what was done to it, run again alone to confirm it,
 * and the batch goes on in a new child from the next input. Prints a summary: inputs,
 * BTF-aware share, outcome classes of open and load, loads that succeeded, deaths, hangs,
 * untyped errors and wall time. Exits 1 when any input killed a child, hung, or failed untyped.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultSourcePaths } from './fuzz-child.js';
import { loadSources, mutant } from './fuzz-mutate.js';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const childScript = join(root, 'scripts', 'fuzz-child.ts');

/** Options of {@link fuzz}. */
export interface FuzzOptions {
  /** Seed of the mutants (ignored with `files`). */
  seed?: number;
  /** Mutants 0..count-1 (ignored with `files`). */
  count?: number;
  /** Replay these files instead of mutants. */
  files?: string[];
  /** Inputs per child process. */
  batch?: number;
  /** Children at once. */
  concurrency?: number;
  /** Where crashing and hanging inputs are written. */
  outDir?: string;
  /** Skip the validator (as the loader was before it): finds inputs the validator must catch. */
  raw?: boolean;
  /** A child that prints nothing for this long is killed and its input counted as a hang. */
  stallMs?: number;
  /** Progress lines on stderr. */
  verbose?: boolean;
}

/** A crash (or hang) found by {@link fuzz}. */
export interface FuzzDeath {
  /** Index of the mutant (or of the file in `files`). */
  index: number;
  /** Signal or exit status that ended the child, or `hang`. */
  how: string;
  /** Where the input was written. */
  file?: string;
  /** Whether the input alone killed a fresh child again. */
  reproduced?: boolean;
}

/** Summary of {@link fuzz}. */
export interface FuzzSummary {
  inputs: number;
  btfAware: number;
  /** Outcome classes of the load stage (`ok` = loaded). */
  load: Record<string, number>;
  /** Outcome classes of the in-process open stage (`-` = not opened: the validator rejected it). */
  open: Record<string, number>;
  loaded: number;
  deaths: FuzzDeath[];
  hangs: FuzzDeath[];
  /** Inputs whose error was not a typed smoothtask error. */
  untyped: { index: number; line: string }[];
  wallMs: number;
}

interface ChildResult {
  lines: string[];
  how?: string; // set when the child did not end normally
  lastStarted?: number;
}

function runChild(args: string[], stallMs: number): Promise<ChildResult> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--import', 'tsx', childScript, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    let buf = '';
    let lastStarted: number | undefined;
    let ended = false;
    let hung = false;
    let timer = setTimeout(() => stall(), stallMs);
    const stall = (): void => {
      hung = true;
      child.kill('SIGKILL');
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      clearTimeout(timer);
      timer = setTimeout(() => stall(), stallMs);
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith('S ')) lastStarted = Number(line.slice(2));
        else if (line.startsWith('R ')) {
          lines.push(line);
          lastStarted = undefined;
        } else if (line === 'E') ended = true;
      }
    });
    child.stderr.resume();
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const r: ChildResult = { lines, lastStarted };
      if (hung) r.how = 'hang';
      else if (signal) r.how = signal;
      else if (code !== 0 || !ended) r.how = `exit ${code}`;
      done(r);
    });
  });
}

/** Runs the fuzzer; see the module comment. */
export async function fuzz(opts: FuzzOptions = {}): Promise<FuzzSummary> {
  const started = performance.now();
  const seed = opts.seed ?? 1;
  const files = opts.files;
  const count = files ? files.length : (opts.count ?? 1000);
  const batch = opts.batch ?? 100;
  const concurrency = opts.concurrency ?? 2;
  const outDir = resolve(opts.outDir ?? join(root, 'bench', 'out', 'fuzz-crashes'));
  const stallMs = opts.stallMs ?? 120_000;
  const sources = files ? [] : loadSources(defaultSourcePaths());
  const extra = opts.raw ? ['--raw'] : [];
  const summary: FuzzSummary = { inputs: 0, btfAware: 0, load: {}, open: {}, loaded: 0, deaths: [], hangs: [], untyped: [], wallMs: 0 };

  const argsFor = (from: number, to: number): string[] =>
    files ? [...extra, '--files', ...files.slice(from, to)] : [...extra, '--seed', String(seed), '--from', String(from), '--to', String(to)];
  const inputBytes = (i: number): { bytes: Uint8Array; about: object } => {
    const m = mutant(sources, seed, i);
    return { bytes: m.bytes, about: { seed, index: i, source: m.source, btfAware: m.btfAware, ops: m.ops, raw: opts.raw ?? false } };
  };

  const record = (line: string, offset: number): void => {
    const [, idx, aware, open = '', load = ''] = line.split(' ');
    summary.inputs++;
    if (aware === '1') summary.btfAware++;
    summary.open[open] = (summary.open[open] ?? 0) + 1;
    summary.load[load] = (summary.load[load] ?? 0) + 1;
    if (load === 'ok') summary.loaded++;
    if (open.startsWith('UNTYPED') || load.startsWith('UNTYPED')) summary.untyped.push({ index: Number(idx) + offset, line });
    // libbpf crashed on it in the addon's fork-isolated pre-check: worth keeping as a regression input
    if (load === 'InvalidObjectError(crash-isolated)' && !files) {
      mkdirSync(outDir, { recursive: true });
      const { bytes, about } = inputBytes(Number(idx));
      const file = join(outDir, `${opts.raw ? 'raw-' : ''}isolated-seed${seed}-${idx}.o`);
      writeFileSync(file, bytes);
      writeFileSync(`${file}.json`, `${JSON.stringify({ ...about, how: 'crashed libbpf in the fork pre-check' }, null, 2)}\n`);
    }
  };

  const saveDeath = async (index: number, how: string): Promise<FuzzDeath> => {
    const d: FuzzDeath = { index, how };
    if (files) {
      d.file = files[index];
    } else {
      mkdirSync(outDir, { recursive: true });
      const { bytes, about } = inputBytes(index);
      d.file = join(outDir, `${opts.raw ? 'raw-' : ''}seed${seed}-${index}.o`);
      writeFileSync(d.file, bytes);
      writeFileSync(`${d.file}.json`, `${JSON.stringify({ ...about, how }, null, 2)}\n`);
    }
    // confirm: the input alone, in a fresh child
    const again = await runChild([...extra, '--files', d.file as string], stallMs);
    d.reproduced = again.how !== undefined;
    return d;
  };

  // the range [from, to) in children of `batch`, restarting after the input that killed one
  const runRange = async (from: number, to: number): Promise<void> => {
    let at = from;
    while (at < to) {
      const r = await runChild(argsFor(at, to), stallMs);
      // with --files, the child numbers its inputs from 0
      const offset = files ? at : 0;
      for (const line of r.lines) record(line, offset);
      if (!r.how) return;
      const dead = r.lastStarted === undefined ? undefined : r.lastStarted + offset;
      if (dead === undefined) {
        // died outside any input (start-up): count it against the next input and skip it
        summary.deaths.push({ index: at + r.lines.length, how: `${r.how} (outside an input)` });
        at = at + r.lines.length + 1;
        continue;
      }
      summary.inputs++;
      const d = await saveDeath(dead, r.how);
      (r.how === 'hang' ? summary.hangs : summary.deaths).push(d);
      if (opts.verbose) process.stderr.write(`fuzz: input ${dead} ${r.how === 'hang' ? 'hung' : `killed its child (${r.how})`}; saved ${d.file}\n`);
      at = dead + 1;
    }
  };

  const ranges: [number, number][] = [];
  for (let i = 0; i < count; i += batch) ranges.push([i, Math.min(count, i + batch)]);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const k = next++;
      if (k >= ranges.length) return;
      const [a, b] = ranges[k] as [number, number];
      await runRange(a, b);
      done += b - a;
      if (opts.verbose) process.stderr.write(`fuzz: ${done}/${count} inputs, ${summary.deaths.length} deaths, ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, ranges.length) }, worker));
  summary.wallMs = performance.now() - started;
  return summary;
}

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** Text summary of a run. */
export function formatSummary(s: FuzzSummary, seed?: number): string {
  const sort = (o: Record<string, number>): string =>
    Object.entries(o)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `  ${k}: ${v}`)
      .join('\n');
  return [
    `inputs: ${s.inputs}${seed !== undefined ? ` (seed ${seed})` : ''}`,
    `BTF-aware: ${s.btfAware} (${s.inputs ? ((100 * s.btfAware) / s.inputs).toFixed(1) : 0}%)`,
    `loads succeeded: ${s.loaded}`,
    `load outcomes:\n${sort(s.load)}`,
    `open outcomes (in-process bpf_object__open of validated inputs; '-' = rejected before open):\n${sort(s.open)}`,
    `deaths: ${s.deaths.length}${s.deaths.map((d) => `\n  #${d.index} ${d.how} ${d.file ?? ''} reproduced alone: ${d.reproduced}`).join('')}`,
    `hangs: ${s.hangs.length}${s.hangs.map((d) => `\n  #${d.index} ${d.file ?? ''}`).join('')}`,
    `untyped errors: ${s.untyped.length}${s.untyped.map((u) => `\n  ${u.line}`).join('')}`,
    `wall time: ${(s.wallMs / 1000).toFixed(1)} s`,
  ].join('\n');
}

if (process.argv[1] && /scripts\/fuzz\.ts$/.test(process.argv[1])) {
  const argv = process.argv.slice(2);
  const filesAt = argv.indexOf('--files');
  const rest = filesAt >= 0 ? argv.slice(filesAt + 1) : [];
  let files = filesAt >= 0 ? rest.slice(0, rest.findIndex((f) => f.startsWith('--')) >>> 0) : undefined;
  if (files?.length === 1 && !files[0]?.endsWith('.o') && files[0]) {
    const d = files[0];
    files = readdirSync(d)
      .filter((f) => f.endsWith('.o'))
      .sort()
      .map((f) => join(d, f));
  }
  const seed = Number(arg(argv, '--seed') ?? 1);
  const summary = await fuzz({
    seed,
    count: Number(arg(argv, '--count') ?? 1000),
    ...(files ? { files: files.map((f) => resolve(f)) } : {}),
    batch: Number(arg(argv, '--batch') ?? 100),
    concurrency: Number(arg(argv, '--concurrency') ?? 2),
    ...(arg(argv, '--out') ? { outDir: arg(argv, '--out') as string } : {}),
    raw: argv.includes('--raw'),
    verbose: true,
  });
  process.stdout.write(`${formatSummary(summary, files ? undefined : seed)}\n`);
  process.exit(summary.deaths.length || summary.hangs.length || summary.untyped.length ? 1 : 0);
}
