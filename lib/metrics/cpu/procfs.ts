/**
 * The procfs backend of the `cpu` family.
 * @internal
 */
import { join } from 'node:path';
import { cgroup2Mount } from '../cgroup.js';
import { listPids, readCtxSwitches, readSchedstat, readText } from '../procfs.js';
import { ReaderBase } from '../reader-base.js';
import type { CpuProcess, CpuSnapshot, CpuThread } from '../schemas.js';
import { matchingProcesses } from '../readers-shared.js';

/** procfs `cpu` reader: process CPU from stat, threads (schedstat + status) when the filter names tgids. */
export class ProcfsCpuReader extends ReaderBase<CpuSnapshot> {
  readonly family = 'cpu';
  readonly backend = 'procfs' as const;

  protected collect(): CpuSnapshot {
    const procs = matchingProcesses(this.filter);
    const processes: CpuProcess[] = [];
    const threads: CpuThread[] = [];
    // Per-thread files cost one read each: only for an explicit, short list of processes.
    const perThread = this.filter.tgids.length > 0 && procs.length <= 256;
    for (const p of procs) {
      let voluntary = 0;
      let involuntary = 0;
      let runqNs: number | null = null;
      let runqCount: number | null = null;
      if (perThread) {
        runqNs = 0;
        runqCount = 0;
        for (const tid of listPids(`/proc/${p.pid}/task`)) {
          const ss = readSchedstat(p.pid, tid);
          const cs = readCtxSwitches(p.pid, tid);
          if (!ss || !cs) continue;
          threads.push({ tid, tgid: p.pid, cpuNs: ss.cpuNs, voluntary: cs.voluntary, involuntary: cs.involuntary, runqNs: ss.runqNs, runqCount: ss.slices });
          voluntary += cs.voluntary;
          involuntary += cs.involuntary;
          runqNs += ss.runqNs;
          runqCount += ss.slices;
        }
      } else {
        const cs = readCtxSwitches(p.pid);
        voluntary = cs?.voluntary ?? 0;
        involuntary = cs?.involuntary ?? 0;
      }
      processes.push({ tgid: p.pid, comm: p.comm, threads: p.threads, cpuNs: p.userNs + p.systemNs, voluntary, involuntary, runqNs, runqCount });
    }
    const cgroups: CpuSnapshot['cgroups'] = [];
    const mount = cgroup2Mount();
    if (mount) {
      this.filter.cgroupIds.forEach((id, i) => {
        const rel = this.filter.cgroupPaths?.[i];
        if (!rel) return;
        const t = readText(join(mount, rel, 'cpu.stat'));
        const m = t ? /^usage_usec (\d+)/m.exec(t) : null;
        if (m) cgroups.push({ cgroupId: id.toString(), path: rel, cpuNs: Number(m[1]) * 1000 });
      });
    }
    return { family: 'cpu', backend: 'procfs', timestamp: Date.now(), processes, threads, cgroups, runqLatency: null };
  }
}
