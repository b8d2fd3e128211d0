/**
 * Per-event cost of every bundled metrics program, from the kernel's own BPF statistics
 * (BPF_ENABLE_STATS: run_time_ns / run_cnt per program), while a pipe workload drives
 * context switches, syscalls and wakeups.
 *
 *   npm run bench -- overhead [seconds=3]
 *
 * Baseline, same run: an empty program on tp_btf/sched_switch (compiled here with clang),
 * whose run_time_ns is the cost of the trampoline and of the statistics themselves; each
 * figure is given raw and net of it. Ratios: each program filtered-out (a tgid filter that
 * matches nothing) over unfiltered, and sched_switch (net) over the 150 ns target.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchResult } from './run.js';
import { enableBpfStats, loadObject, type BpfObject, type Link } from '../lib/ebpf/index.js';
import { createMonitor, type BpfReaderBase } from '../lib/metrics/index.js';

type Stats = Record<string, { runTimeNs: number; runCount: number }>;

async function workload(seconds: number): Promise<void> {
  // Byte-sized pipe writes: a wakeup, two switches and a few syscalls per byte.
  const c = spawn('sh', ['-c', `timeout ${seconds} sh -c 'dd if=/dev/zero bs=1 count=100000000 status=none | dd of=/dev/null bs=1 status=none'`], { stdio: 'ignore' });
  await new Promise((res) => c.once('exit', res));
}

let nop: { obj: BpfObject; link: Link } | undefined;

function collect(readers: Iterable<unknown>): Stats {
  const all: Stats = {};
  for (const r of readers) Object.assign(all, (r as BpfReaderBase<never>).programStats());
  if (nop) all.nop_sched_switch = nop.obj.program('nop_sched_switch').stats();
  return all;
}

async function loadNop(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'st-bench-nop-'));
  try {
    writeFileSync(
      join(dir, 'nop.bpf.c'),
      '#define SEC(n) __attribute__((section(n), used))\n' +
        'SEC("tp_btf/sched_switch") int nop_sched_switch(void *ctx) { return 0; }\n' +
        'char LICENSE[] SEC("license") = "GPL";\n',
    );
    execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-c', join(dir, 'nop.bpf.c'), '-o', join(dir, 'nop.bpf.o')]);
    const obj = await loadObject(join(dir, 'nop.bpf.o'), { cache: false });
    nop = { obj, link: obj.program('nop_sched_switch').attach() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function diff(a: Stats, b: Stats): Record<string, { ns: number; events: number }> {
  const r: Record<string, { ns: number; events: number }> = {};
  for (const [k, v] of Object.entries(b)) {
    const events = v.runCount - (a[k]?.runCount ?? 0);
    const t = v.runTimeNs - (a[k]?.runTimeNs ?? 0);
    if (events > 0) r[k] = { ns: t / events, events };
  }
  return r;
}

async function measure(seconds: number, filtered: boolean): Promise<Record<string, { ns: number; events: number }>> {
  // A tgid no process has (pid_max is at most 2^22): everything takes the filtered-out path.
  const m = await createMonitor({ families: ['cpu', 'process', 'network', 'disk', 'syscalls'], backend: 'ebpf', required: true, ...(filtered ? { filter: { tgids: [4194304 + 1] } } : {}) });
  try {
    const stats = enableBpfStats();
    try {
      const a = collect(m.readers.values());
      await workload(seconds);
      return diff(a, collect(m.readers.values()));
    } finally {
      stats.close();
    }
  } finally {
    m.close();
  }
}

export default async function overhead(args: string[]): Promise<BenchResult> {
  const seconds = Number(args[0] ?? 3);
  await loadNop();
  let open: Awaited<ReturnType<typeof measure>>;
  let filtered: Awaited<ReturnType<typeof measure>>;
  try {
    open = await measure(seconds, false);
    filtered = await measure(seconds, true);
  } finally {
    nop?.link.close();
    nop?.obj.close();
  }
  const base = open.nop_sched_switch?.ns ?? 0;
  const figures: BenchResult['figures'] = { baselineEmptyProgramNs: base };
  const ratios: BenchResult['ratios'] = {};
  for (const [name, v] of Object.entries(open)) {
    if (name === 'nop_sched_switch') continue;
    figures[`${name}NsPerEvent`] = v.ns;
    figures[`${name}NetNsPerEvent`] = v.ns - base;
    figures[`${name}Events`] = v.events;
    const f = filtered[name];
    if (f) {
      figures[`${name}FilteredOutNsPerEvent`] = f.ns;
      ratios[`${name}FilteredOverOpen`] = f.ns / v.ns;
    }
  }
  const sw = open.st_sched_switch?.ns ?? Number.NaN;
  ratios.schedSwitchOverEmptyProgram = sw / base;
  ratios.schedSwitchNetOverTarget150ns = (sw - base) / 150;
  return { figures, ratios, targets: { schedSwitchNetAtMost150ns: sw - base <= 150, schedSwitchRawAtMost150ns: sw <= 150 } };
}
