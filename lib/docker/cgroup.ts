/**
 * The one reader of cgroup mounts, memberships and usage files, shared by container tasks
 * (`smoothtask/docker`), process tasks (`smoothtask/process`) and metric filters.
 * @module
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readText as readSmallFile } from '../metrics/procfs.js';

/** Where the cgroup hierarchies are mounted (parsed from /proc/self/mountinfo). */
export interface CgroupMounts {
  /** Mount point of the first cgroup2 (unified) hierarchy, if any. */
  v2?: string;
  /** Mount point of each v1 controller (`memory`, `cpu`, `freezer`, `name=systemd`, …). */
  v1: Map<string, string>;
}

let mountsCache: CgroupMounts | undefined;

/** The cgroup mounts of this host (read once from /proc/self/mountinfo; empty without /proc). */
export function cgroupMounts(): CgroupMounts {
  if (mountsCache) return mountsCache;
  const m: CgroupMounts = { v1: new Map() };
  let text = '';
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    /* no /proc: no cgroups */
  }
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(' ');
    const post = line.slice(sep + 3).split(' ');
    const mountPoint = pre[4];
    if (!mountPoint) continue;
    if (post[0] === 'cgroup2') m.v2 ??= mountPoint;
    else if (post[0] === 'cgroup') for (const opt of (post[2] ?? '').split(',')) if (!m.v1.has(opt)) m.v1.set(opt, mountPoint);
  }
  mountsCache = m;
  return m;
}

/** The cgroup membership of a process: its v2 path and its v1 path per controller. */
export interface ProcessCgroups {
  /** Path in the unified (v2) hierarchy, e.g. `/docker/<id>`. */
  v2?: string;
  /** Paths in v1 hierarchies by controller name (`memory`, `cpuacct`, `blkio`, …). */
  v1: Map<string, string>;
}

/** Parses /proc/<pid>/cgroup. */
export function processCgroups(pid: number): ProcessCgroups {
  const out: ProcessCgroups = { v1: new Map() };
  for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '0' && m[2] === '') out.v2 = m[3] ?? '/';
    else for (const c of (m[2] ?? '').split(',')) out.v1.set(c, m[3] ?? '/');
  }
  return out;
}

/**
 * The cgroup id of a process's unified-hierarchy cgroup: the inode number of its directory in
 * the cgroup2 mount. This is the value `bpf_get_current_cgroup_id()` returns in BPF programs,
 * so metric readers can filter on it. `undefined` when no cgroup2 hierarchy is mounted.
 */
export function cgroupIdOfPid(pid: number): bigint | undefined {
  const m = cgroupMounts();
  const cg = processCgroups(pid);
  if (!m.v2 || cg.v2 === undefined) return undefined;
  return statSync(join(m.v2, cg.v2), { bigint: true }).ino;
}

/** CPU, memory and I/O of a cgroup, read from cgroup files. */
export interface CgroupUsage {
  /** Total CPU time consumed, nanoseconds. */
  cpuNs: number;
  /** Current memory charged to the cgroup, bytes (undefined when no memory controller is visible). */
  memoryBytes?: number;
  /** Peak memory, bytes, when the kernel reports it. */
  memoryPeakBytes?: number;
  /** Bytes read from block devices. */
  ioReadBytes: number;
  /** Bytes written to block devices. */
  ioWriteBytes: number;
  /** Number of tasks (threads) in the cgroup, when the pids controller is visible. */
  pids?: number;
  /** Which files the figures came from. */
  source: 'cgroup-v2' | 'cgroup-v1' | 'mixed';
}

function readText(path: string): string | undefined {
  return readSmallFile(path) ?? undefined;
}

function readNum(path: string): number | undefined {
  const t = readText(path)?.trim();
  if (t === undefined || t === 'max') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * Reads CPU, memory and I/O of the cgroup a process is in, from the cgroup v2 files where the
 * controllers are enabled there and from the v1 hierarchies otherwise (hybrid hosts such as
 * Docker with the cgroupfs driver on cgroup v1 keep memory and blkio in v1). A few syscalls,
 * tens of microseconds; dockerode's `stats({stream:false})` takes ~2 s for the same.
 */
export function cgroupUsageOfPid(pid: number): CgroupUsage {
  return cgroupUsage(processCgroups(pid));
}

/**
 * Reads CPU, memory and I/O of one cgroup given by its paths (v2 path and v1 path per
 * controller, relative to the mounts, as in /proc/<pid>/cgroup), with the same rules as
 * {@link cgroupUsageOfPid}.
 */
export function cgroupUsage(cg: ProcessCgroups): CgroupUsage {
  const m = cgroupMounts();
  const used = new Set<'v1' | 'v2'>();
  const v2dir = m.v2 && cg.v2 !== undefined ? join(m.v2, cg.v2) : undefined;
  const v1dir = (ctrl: string): string | undefined => {
    const mp = m.v1.get(ctrl);
    const p = cg.v1.get(ctrl);
    return mp && p !== undefined ? join(mp, p) : undefined;
  };

  let cpuNs: number | undefined;
  const cpuacct = v1dir('cpuacct');
  if (cpuacct) {
    cpuNs = readNum(join(cpuacct, 'cpuacct.usage'));
    if (cpuNs !== undefined) used.add('v1');
  }
  if (cpuNs === undefined && v2dir) {
    const stat = readText(join(v2dir, 'cpu.stat'));
    const usec = stat && /^usage_usec (\d+)/m.exec(stat)?.[1];
    if (usec) {
      cpuNs = Number(usec) * 1000;
      used.add('v2');
    }
  }

  let memoryBytes: number | undefined;
  let memoryPeakBytes: number | undefined;
  if (v2dir) {
    memoryBytes = readNum(join(v2dir, 'memory.current'));
    memoryPeakBytes = readNum(join(v2dir, 'memory.peak'));
    if (memoryBytes !== undefined) used.add('v2');
  }
  const mem1 = v1dir('memory');
  if (memoryBytes === undefined && mem1) {
    memoryBytes = readNum(join(mem1, 'memory.usage_in_bytes'));
    memoryPeakBytes = readNum(join(mem1, 'memory.max_usage_in_bytes'));
    if (memoryBytes !== undefined) used.add('v1');
  }

  let ioRead = 0;
  let ioWrite = 0;
  let ioFound = false;
  const io2 = v2dir ? readText(join(v2dir, 'io.stat')) : undefined;
  if (io2 !== undefined && io2.trim() !== '') {
    for (const l of io2.split('\n')) {
      ioRead += Number(/rbytes=(\d+)/.exec(l)?.[1] ?? 0);
      ioWrite += Number(/wbytes=(\d+)/.exec(l)?.[1] ?? 0);
    }
    ioFound = true;
    used.add('v2');
  }
  const blkio = v1dir('blkio');
  if (!ioFound && blkio) {
    const t = readText(join(blkio, 'blkio.throttle.io_service_bytes')) ?? '';
    for (const l of t.split('\n')) {
      const f = l.trim().split(/\s+/);
      if (f.length !== 3) continue;
      if (f[1] === 'Read') ioRead += Number(f[2]);
      else if (f[1] === 'Write') ioWrite += Number(f[2]);
    }
    used.add('v1');
  }

  const pidsDir = v1dir('pids') ?? v2dir;
  const pids = pidsDir ? readNum(join(pidsDir, 'pids.current')) : undefined;

  const out: CgroupUsage = {
    cpuNs: cpuNs ?? 0,
    ioReadBytes: ioRead,
    ioWriteBytes: ioWrite,
    source: used.size === 2 ? 'mixed' : used.has('v1') ? 'cgroup-v1' : 'cgroup-v2',
  };
  if (memoryBytes !== undefined) out.memoryBytes = memoryBytes;
  if (memoryPeakBytes !== undefined) out.memoryPeakBytes = memoryPeakBytes;
  if (pids !== undefined) out.pids = pids;
  return out;
}
