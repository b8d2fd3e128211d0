/**
 * Per-event cost of every bundled metrics program, from the kernel's own BPF statistics
 * (BPF_ENABLE_STATS: run_time_ns / run_cnt per program), while a pipe workload drives
 * context switches, syscalls and wakeups.
 *
 *   npm run bench -- overhead [seconds=2] [rounds=5]
 *
 * Baselines, same run, on the same tracepoint (compiled here with clang): an empty program on
 * tp_btf/sched_switch, whose run_time_ns is the cost of the trampoline and of the statistics
 * themselves, and a bare hash increment (a count per prev pid in a BPF hash map: what the
 * simplest useful switch program does). Both see exactly the events st_sched_switch sees.
 * The monitor stays loaded across rounds (warm maps and caches); each round's figures come
 * from that round's events; min and median over rounds are given. Target: st_sched_switch at
 * most 1.5x the bare hash increment (median of the per-round ratios). Also: each program
 * filtered-out (a tgid filter that matches nothing) over unfiltered, each taken relative to
 * the hash-increment baseline of its own phase.
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

let nop: { obj: BpfObject; links: Link[] } | undefined;

function collect(readers: Iterable<unknown>): Stats {
  const all: Stats = {};
  for (const r of readers) Object.assign(all, (r as BpfReaderBase<never>).programStats());
  if (nop) {
    all.nop_sched_switch = nop.obj.program('nop_sched_switch').stats();
    all.hash_sched_switch = nop.obj.program('hash_sched_switch').stats();
  }
  return all;
}

async function loadNop(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'st-bench-nop-'));
  try {
    writeFileSync(
      join(dir, 'nop.bpf.c'),
      [
        'typedef unsigned int __u32;',
        'typedef unsigned long long __u64;',
        'enum { BPF_MAP_TYPE_HASH = 1, BPF_NOEXIST = 1 };',
        '#define SEC(n) __attribute__((section(n), used))',
        'static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;',
        'static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;',
        'struct { int (*type)[BPF_MAP_TYPE_HASH]; int (*max_entries)[16384]; __u32 *key; __u64 *value; } counts SEC(".maps");',
        'static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;',
        'SEC("tp_btf/sched_switch") int nop_sched_switch(void *ctx) { return 0; }',
        // tp_btf args: (bool preempt, struct task_struct *prev, ...): prev's pid read as the bare program would
        'SEC("tp_btf/sched_switch") int hash_sched_switch(__u64 *ctx) {',
        '  __u32 pid = (__u32)bpf_get_current_pid_tgid();',
        '  __u64 one = 1, *c = bpf_map_lookup_elem(&counts, &pid);',
        '  if (c) __sync_fetch_and_add(c, 1); else bpf_map_update_elem(&counts, &pid, &one, BPF_NOEXIST);',
        '  return 0;',
        '}',
        'char LICENSE[] SEC("license") = "GPL";',
        '',
      ].join('\n'),
    );
    execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-c', join(dir, 'nop.bpf.c'), '-o', join(dir, 'nop.bpf.o')]);
    const obj = await loadObject(join(dir, 'nop.bpf.o'), { cache: false });
    nop = { obj, links: obj.attach() };
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

type Round = Record<string, { ns: number; events: number }>;

async function measure(seconds: number, rounds: number, filtered: boolean): Promise<Round[]> {
  // A tgid no process has (pid_max is at most 2^22): everything takes the filtered-out path.
  const m = await createMonitor({ families: ['cpu', 'process', 'network', 'disk', 'syscalls'], backend: 'ebpf', required: true, ...(filtered ? { filter: { tgids: [4194304 + 1] } } : {}) });
  try {
    const stats = enableBpfStats();
    try {
      await workload(1); // warm-up: maps populated, caches warm
      const out: Round[] = [];
      for (let r = 0; r < rounds; r++) {
        const a = collect(m.readers.values());
        await workload(seconds);
        out.push(diff(a, collect(m.readers.values())));
      }
      return out;
    } finally {
      stats.close();
    }
  } finally {
    m.close();
  }
}

const median = (xs: number[]): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};
const min = (xs: number[]): number => Math.min(...xs.filter((x) => Number.isFinite(x)));
/** Median over rounds of one program's ns per event (NaN when it saw no event). */
const med = (rs: Round[], name: string): number => median(rs.map((r) => r[name]?.ns ?? Number.NaN));

export default async function overhead(args: string[]): Promise<BenchResult> {
  const seconds = Number(args[0] ?? 2);
  const rounds = Math.max(1, Number(args[1] ?? 5));
  await loadNop();
  let open: Round[];
  let filtered: Round[];
  try {
    open = await measure(seconds, rounds, false);
    filtered = await measure(seconds, rounds, true);
  } finally {
    for (const l of nop?.links ?? []) l.close();
    nop?.obj.close();
  }
  const base = med(open, 'nop_sched_switch');
  const hash = med(open, 'hash_sched_switch');
  const figures: BenchResult['figures'] = { rounds, secondsPerRound: seconds, baselineEmptyProgramNs: base, baselineHashIncrementNs: hash };
  const ratios: BenchResult['ratios'] = {};
  const names = new Set(open.flatMap((r) => Object.keys(r)));
  for (const name of names) {
    if (name === 'nop_sched_switch' || name === 'hash_sched_switch') continue;
    const ns = med(open, name);
    figures[`${name}NsPerEvent`] = ns;
    figures[`${name}NsPerEventMin`] = min(open.map((r) => r[name]?.ns ?? Number.NaN));
    figures[`${name}NetNsPerEvent`] = ns - base;
    figures[`${name}Events`] = open.reduce((n, r) => n + (r[name]?.events ?? 0), 0);
    const f = med(filtered, name);
    if (Number.isFinite(f)) {
      figures[`${name}FilteredOutNsPerEvent`] = f;
      // each against the hash-increment baseline of its own phase: the host drifts between phases
      ratios[`${name}FilteredOverOpen`] = f / med(filtered, 'hash_sched_switch') / (ns / hash);
    }
  }
  // The same events ran both programs in each round: the per-round ratio cancels the host's drift.
  const perRound = open.map((r) => (r.st_sched_switch?.ns ?? Number.NaN) / (r.hash_sched_switch?.ns ?? Number.NaN));
  figures.schedSwitchOverHashPerRound = perRound.map((x) => x.toFixed(2)).join(' ');
  ratios.schedSwitchOverHashIncrement = median(perRound);
  ratios.schedSwitchOverHashIncrementMin = min(perRound);
  const sw = med(open, 'st_sched_switch');
  ratios.schedSwitchOverEmptyProgram = sw / base;
  return { figures, ratios, targets: { schedSwitchAtMost1_5xHashIncrement: median(perRound) <= 1.5 } };
}
