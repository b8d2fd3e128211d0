/**
 * Overhead of the CUDA driver API uprobes (bpf/gpu.bpf.c), per call:
 *  - in the kernel, from bpf_stats (run_time_ns / run_cnt of each program);
 *  - end to end, timing the stub libcuda.so.1's calls (test/fixtures/cuda-stub) in a C driver
 *    without probes, then with the reader's probes attached, in the same run.
 * Entry-only probes: cuLaunchKernel, cuMemcpyHtoD_v2. Entry + return: cuCtxSynchronize.
 *   npm run bench -- cuda-uprobe [calls]
 */
import { execFileSync } from 'node:child_process';
import type { BenchResult } from './run.js';
import { enableBpfStats } from '../lib/ebpf/index.js';
import { openGpuReader } from '../lib/metrics/gpu/index.js';
import { buildCudaStubs } from '../test/fixtures/cuda-stub/build.js';

interface DriverTimes {
  launchNsPerCall: number;
  copyNsPerCall: number;
  syncNsPerCall: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function runDriver(driver: string, calls: number, rounds: number): DriverTimes {
  const rs: DriverTimes[] = [];
  for (let i = 0; i < rounds; i++) {
    const out = execFileSync(driver, ['bench', String(calls)], { encoding: 'utf8', env: { ...process.env, SMOOTHTASK_STUB_SYNC_US: '0' }, timeout: 120_000 });
    rs.push(JSON.parse(out) as DriverTimes);
  }
  return {
    launchNsPerCall: median(rs.map((r) => r.launchNsPerCall)),
    copyNsPerCall: median(rs.map((r) => r.copyNsPerCall)),
    syncNsPerCall: median(rs.map((r) => r.syncNsPerCall)),
  };
}

export default async function cudaUprobe(args: string[]): Promise<BenchResult> {
  const calls = Number(args[0] ?? 200_000);
  const rounds = 3;
  const stubs = buildCudaStubs();
  try {
    const base = runDriver(stubs.driver, calls, rounds);
    const reader = await openGpuReader({ libcuda: stubs.libcuda, nvml: false, fences: false });
    const stats = enableBpfStats();
    let probed: DriverTimes;
    const kernel: Record<string, { runTimeNs: number; runCount: number }> = {};
    try {
      probed = runDriver(stubs.driver, calls, rounds);
      for (const p of ['cu_launch_kernel', 'cu_memcpy_htod', 'cu_sync', 'cu_sync_ret']) kernel[p] = reader.object!.program(p).stats();
      const snap = await reader.read();
      const counted = snap.processes.reduce((s, p) => s + p.launches, 0);
      if (counted !== calls * rounds) throw new Error(`probes counted ${counted} launches, expected ${calls * rounds}`);
    } finally {
      stats.close();
      reader.close();
    }
    const perRun = (p: string) => (kernel[p]!.runCount ? kernel[p]!.runTimeNs / kernel[p]!.runCount : 0);
    const figures = {
      callsPerRound: calls,
      rounds,
      baselineLaunchNsPerCall: base.launchNsPerCall,
      probedLaunchNsPerCall: probed.launchNsPerCall,
      launchOverheadNsPerCall: probed.launchNsPerCall - base.launchNsPerCall,
      baselineCopyNsPerCall: base.copyNsPerCall,
      probedCopyNsPerCall: probed.copyNsPerCall,
      copyOverheadNsPerCall: probed.copyNsPerCall - base.copyNsPerCall,
      baselineSyncNsPerCall: base.syncNsPerCall,
      probedSyncNsPerCall: probed.syncNsPerCall,
      syncOverheadNsPerCall: probed.syncNsPerCall - base.syncNsPerCall,
      bpfLaunchProgramNsPerRun: perRun('cu_launch_kernel'),
      bpfCopyProgramNsPerRun: perRun('cu_memcpy_htod'),
      bpfSyncEntryProgramNsPerRun: perRun('cu_sync'),
      bpfSyncReturnProgramNsPerRun: perRun('cu_sync_ret'),
      bpfLaunchProgramRuns: kernel.cu_launch_kernel!.runCount,
    };
    return {
      figures,
      ratios: {
        probedOverBaselineLaunch: probed.launchNsPerCall / base.launchNsPerCall,
        probedOverBaselineCopy: probed.copyNsPerCall / base.copyNsPerCall,
        probedOverBaselineSync: probed.syncNsPerCall / base.syncNsPerCall,
        bpfProgramShareOfLaunchOverhead: perRun('cu_launch_kernel') / Math.max(1e-9, probed.launchNsPerCall - base.launchNsPerCall),
      },
    };
  } finally {
    stubs.close();
  }
}
