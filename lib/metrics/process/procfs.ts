/**
 * The procfs backend of the `process` family.
 * @internal
 */
import { readCtxSwitches, uptimeNs } from '../procfs.js';
import { ReaderBase } from '../reader-base.js';
import type { ProcessInfo, ProcessSnapshot } from '../schemas.js';
import { matchingProcesses } from '../readers-shared.js';

/** procfs `process` reader: /proc/<pid>/stat and status of every (matching) process. */
export class ProcfsProcessReader extends ReaderBase<ProcessSnapshot> {
  readonly family = 'process';
  readonly backend = 'procfs' as const;

  protected collect(): ProcessSnapshot {
    const up = uptimeNs();
    // stat start times are since boot; expose CLOCK_MONOTONIC like the eBPF backend
    // (the two differ by time spent suspended, zero on servers).
    const monoNow = Number(process.hrtime.bigint());
    const processes: ProcessInfo[] = [];
    for (const p of matchingProcesses(this.filter)) {
      const cs = readCtxSwitches(p.pid);
      const lifetimeNs = Math.max(0, up - p.startSinceBootNs);
      processes.push({
        tgid: p.pid,
        ppid: p.ppid,
        comm: p.comm,
        state: p.state,
        threads: p.threads,
        startNs: Math.max(0, monoNow - lifetimeNs),
        lifetimeNs,
        cpuNs: p.userNs + p.systemNs,
        userNs: p.userNs,
        systemNs: p.systemNs,
        voluntary: cs?.voluntary ?? 0,
        involuntary: cs?.involuntary ?? 0,
        minorFaults: p.minorFaults,
        majorFaults: p.majorFaults,
        faultsTraced: null,
        rssBytes: p.rssBytes,
        vmBytes: p.vmBytes,
        cgroupId: '',
      });
    }
    return { family: 'process', backend: 'procfs', timestamp: Date.now(), processes };
  }
}
