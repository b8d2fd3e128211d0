/**
 * The procfs backend of the cpu, process, network and disk families: same snapshot types as
 * the eBPF backend, from /proc and /sys, for hosts where BPF is not permitted. Fields procfs
 * cannot know are null (see the schemas).
 * @module
 */
import { join } from 'node:path';
import { cgroup2Mount, cgroupPathOfPid, filterMatches } from './cgroup.js';
import { isEmptyFilter, type ResolvedFilter } from './family.js';
import {
  listPids,
  readCtxSwitches,
  readDiskstats,
  readProcIo,
  readProcNetTcp,
  readSchedstat,
  readStat,
  readText,
  socketInodes,
  uptimeNs,
  type ProcStat,
} from './procfs.js';
import { ReaderBase } from './reader-base.js';
import {
  TCP_STATES,
  type CpuProcess,
  type CpuSnapshot,
  type CpuThread,
  type DiskProcess,
  type DiskSnapshot,
  type NetworkSnapshot,
  type ProcessInfo,
  type ProcessSnapshot,
  type TcpConnection,
} from './schemas.js';

/** Processes passing the filter, with their parsed stat. */
function matchingProcesses(filter: ResolvedFilter): ProcStat[] {
  const pids = filter.tgids.length && !filter.cgroupIds.length && filter.comm === undefined ? [...filter.tgids] : listPids();
  const out: ProcStat[] = [];
  const empty = isEmptyFilter(filter);
  for (const pid of pids) {
    const st = readStat(pid);
    if (!st) continue;
    if (!empty && !filterMatches(filter, { tgid: pid, comm: st.comm, cgroupPath: () => cgroupPathOfPid(pid) })) continue;
    out.push(st);
  }
  return out;
}

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

/** procfs `network` reader: /proc/net/tcp{,6} with owners from /proc/<pid>/fd socket inodes. No byte counts. */
export class ProcfsNetworkReader extends ReaderBase<NetworkSnapshot> {
  readonly family = 'network';
  readonly backend = 'procfs' as const;

  protected collect(): NetworkSnapshot {
    const owners = new Map<number, { tgid: number; comm: string }>();
    for (const p of matchingProcesses(this.filter)) for (const ino of socketInodes(p.pid)) owners.set(ino, { tgid: p.pid, comm: p.comm });
    const empty = isEmptyFilter(this.filter);
    const connections: TcpConnection[] = [];
    for (const r of readProcNetTcp()) {
      if (r.state === 10) continue; // listeners are not connections
      const owner = owners.get(r.inode);
      if (!empty && !owner) continue;
      connections.push({
        id: `${r.ipVersion}:${r.inode || `${r.localAddress}:${r.localPort}-${r.remoteAddress}:${r.remotePort}`}`,
        ipVersion: r.ipVersion,
        localAddress: r.localAddress,
        localPort: r.localPort,
        remoteAddress: r.remoteAddress,
        remotePort: r.remotePort,
        state: TCP_STATES[r.state] ?? String(r.state),
        direction: null,
        tgid: owner?.tgid ?? null,
        comm: owner?.comm ?? null,
        bytesSent: null,
        bytesReceived: null,
        retransmits: null,
        closed: false,
        durationNs: null,
      });
    }
    return { family: 'network', backend: 'procfs', timestamp: Date.now(), connections, processes: perProcess(connections) };
  }
}

/** Per-process totals over connections (shared with the eBPF reader). @internal */
export function perProcess(connections: readonly TcpConnection[]): NetworkSnapshot['processes'] {
  const m = new Map<number, NetworkSnapshot['processes'][number]>();
  for (const c of connections) {
    if (c.tgid === null) continue;
    let e = m.get(c.tgid);
    if (!e) {
      e = { tgid: c.tgid, comm: c.comm ?? '', connections: 0, bytesSent: c.bytesSent === null ? null : 0, bytesReceived: c.bytesReceived === null ? null : 0, retransmits: c.retransmits === null ? null : 0 };
      m.set(c.tgid, e);
    }
    e.connections++;
    if (e.bytesSent !== null && c.bytesSent !== null) e.bytesSent += c.bytesSent;
    if (e.bytesReceived !== null && c.bytesReceived !== null) e.bytesReceived += c.bytesReceived;
    if (e.retransmits !== null && c.retransmits !== null) e.retransmits += c.retransmits;
  }
  return [...m.values()];
}

/** procfs `disk` reader: /proc/diskstats per disk, /proc/<pid>/io per process (bytes only). */
export class ProcfsDiskReader extends ReaderBase<DiskSnapshot> {
  readonly family = 'disk';
  readonly backend = 'procfs' as const;

  protected collect(): DiskSnapshot {
    const devices: DiskSnapshot['devices'] = readDiskstats().map((d) => ({
      dev: `${d.major}:${d.minor}`,
      name: d.name,
      readOps: d.readOps,
      writeOps: d.writeOps,
      otherOps: null,
      readBytes: d.readBytes,
      writeBytes: d.writeBytes,
      totalLatencyNs: (d.readMs + d.writeMs) * 1e6,
      latency: null,
    }));
    const processes: DiskProcess[] = [];
    for (const p of matchingProcesses(this.filter)) {
      const io = readProcIo(p.pid);
      if (!io || (io.readBytes === 0 && io.writeBytes === 0)) continue;
      processes.push({ tgid: p.pid, comm: p.comm, dev: null, name: null, readOps: null, writeOps: null, readBytes: io.readBytes, writeBytes: io.writeBytes });
    }
    return { family: 'disk', backend: 'procfs', timestamp: Date.now(), devices, processes };
  }
}

/** Whole-disk `major:minor` of a (partition) device `major:minor`, via /sys/dev/block. */
export function wholeDisk(dev: string): string {
  const t = readText(`/sys/dev/block/${dev}/partition`);
  if (t === null) return dev;
  try {
    // /sys/dev/block/M:m is a link into .../<disk>/<part>: the parent directory's dev file.
    const parent = readText(`/sys/dev/block/${dev}/../dev`);
    if (parent) return parent.trim();
  } catch {
    /* fall through */
  }
  return dev;
}
