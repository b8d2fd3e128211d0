/**
 * /proc and /sys parsers used by the procfs backends (and by tests as ground truth).
 * Every function tolerates processes that exit while being read (returns null).
 * @module
 */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readlinkSync, readSync } from 'node:fs';

let clk: number | undefined;
let page: number | undefined;

function getconf(name: string, fallback: number): number {
  try {
    const v = Number(execFileSync('getconf', [name], { encoding: 'utf8', timeout: 2000 }).trim());
    return Number.isFinite(v) && v > 0 ? v : fallback;
  } catch {
    return fallback;
  }
}

/** Clock ticks per second (USER_HZ) of /proc times. */
export function clockTicks(): number {
  clk ??= getconf('CLK_TCK', 100);
  return clk;
}

/** Page size in bytes. */
export function pageSize(): number {
  page ??= getconf('PAGESIZE', 4096);
  return page;
}

/** readText's limit: a file beyond it is cut there (these are files of a few KiB). */
const MAX_TEXT = 16 * 1024 * 1024;
// One buffer for every small read (grown when a file fills it, e.g. /proc/stat on a big host).
let scratch = Buffer.allocUnsafe(16 * 1024);

/**
 * Reads a small file, or null if it (or its process) is gone or unreadable: open, read until
 * end of file, close, into a reused buffer (readFileSync adds an fstat and a buffer per call,
 * which made it about three times as expensive on the per-second read path). A short read is
 * not the end: a procfs seq_file hands out at most a page per read.
 */
export function readText(path: string): string | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    return readToEnd(fd, null);
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads `fd` to its end into the shared buffer: from where it stands (`at` null) or from
 * offset `at` (pread; a seq_file read at 0 generates the file anew). Throws what read throws.
 */
function readToEnd(fd: number, at: number | null): string {
  let len = 0;
  for (;;) {
    const n = readSync(fd, scratch, len, scratch.length - len, at === null ? null : at + len);
    len += n;
    if (n === 0) break;
    if (len < scratch.length) continue;
    if (scratch.length >= MAX_TEXT) break;
    const grown = Buffer.allocUnsafe(scratch.length * 2);
    scratch.copy(grown, 0, 0, len);
    scratch = grown;
  }
  return scratch.toString('latin1', 0, len);
}

/**
 * procfs and sysfs files read again at every tick (a running thread's `schedstat`,
 * `/proc/stat`), each kept open and read from offset 0 (`pread`) rather than opened, read and
 * closed each time: two system calls instead of four, and no path walk. Reading at offset 0
 * makes the kernel generate the file anew, as an open would. A file that fails to read (its
 * thread exited, and a descriptor of `/proc/<pid>/...` then refers to the gone task, never to
 * a new task that reuses the number) is closed and opened again once by its path.
 * Files not read in the last `keepRounds` rounds are closed at `endRound()`, and at most
 * `maxOpen` are kept (the least recently read is closed first).
 * @internal
 */
export class KeptFiles {
  readonly #open = new Map<string, { fd: number; round: number }>();
  #round = 0;
  #closed = false;
  /** @param maxOpen most descriptors kept at once. @param keepRounds rounds a file stays open unread. */
  constructor(
    readonly maxOpen = 16,
    readonly keepRounds = 4,
  ) {}

  /** The file's text, or null when it (or its process) is gone or unreadable. */
  read(path: string): string | null {
    if (this.#closed) return readText(path);
    const kept = this.#open.get(path);
    if (kept !== undefined) {
      try {
        const t = readToEnd(kept.fd, 0);
        kept.round = this.#round;
        return t;
      } catch {
        this.#drop(path, kept.fd);
      }
    }
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      return null;
    }
    let text: string;
    try {
      text = readToEnd(fd, 0);
    } catch {
      closeSync(fd);
      return null;
    }
    if (this.#open.size >= this.maxOpen) {
      let oldest: string | undefined;
      let at = Infinity;
      this.#open.forEach((f, p) => {
        if (f.round < at) (at = f.round), (oldest = p);
      });
      if (oldest !== undefined) this.#drop(oldest, this.#open.get(oldest)!.fd);
    }
    this.#open.set(path, { fd, round: this.#round });
    return text;
  }

  /** Ends a round of reads: closes the files not read in the last `keepRounds` rounds. */
  endRound(): void {
    const r = ++this.#round;
    this.#open.forEach((f, p) => {
      if (r - f.round > this.keepRounds) this.#drop(p, f.fd);
    });
  }

  /** Descriptors open now. */
  get size(): number {
    return this.#open.size;
  }

  /** Closes every kept file; later reads open and close their file each time. */
  close(): void {
    this.#closed = true;
    this.#open.forEach((f, p) => this.#drop(p, f.fd));
  }

  #drop(path: string, fd: number): void {
    this.#open.delete(path);
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
  }
}

/** Numeric entries of /proc (every process) or /proc/<pid>/task (its threads). */
export function listPids(dir = '/proc'): number[] {
  const r: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return r;
  }
  for (const e of entries) {
    const c = e.charCodeAt(0);
    if (c >= 48 && c <= 57) r.push(Number(e));
  }
  return r;
}

/** Parsed /proc/<pid>/stat (or /proc/<pid>/task/<tid>/stat). Times in ns, memory in bytes. */
export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  minorFaults: number;
  majorFaults: number;
  userNs: number;
  systemNs: number;
  threads: number;
  /** Since boot, ns (tick resolution). */
  startSinceBootNs: number;
  vmBytes: number;
  rssBytes: number;
}

/** Parses a stat line. */
export function parseStat(text: string): ProcStat | null {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  const f = text.slice(close + 2).split(' ');
  // f[0] is field 3 (state) of proc(5).
  const tick = 1e9 / clockTicks();
  return {
    pid: Number(text.slice(0, open).trim()),
    comm: text.slice(open + 1, close),
    state: f[0] ?? '?',
    ppid: Number(f[1]),
    minorFaults: Number(f[7]),
    majorFaults: Number(f[9]),
    userNs: Number(f[11]) * tick,
    systemNs: Number(f[12]) * tick,
    threads: Number(f[17]),
    startSinceBootNs: Number(f[19]) * tick,
    vmBytes: Number(f[20]),
    rssBytes: Number(f[21]) * pageSize(),
  };
}

/** /proc/<pid>/stat parsed, or null. */
export function readStat(pid: number, tid?: number): ProcStat | null {
  const t = readText(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`);
  return t === null ? null : parseStat(t);
}

/** Voluntary and involuntary switch counts of /proc/<pid>[/task/<tid>]/status (that one thread). */
export function readCtxSwitches(pid: number, tid?: number): { voluntary: number; involuntary: number } | null {
  const t = readText(tid === undefined ? `/proc/${pid}/status` : `/proc/${pid}/task/${tid}/status`);
  if (t === null) return null;
  const v = /^voluntary_ctxt_switches:\s+(\d+)/m.exec(t);
  const n = /^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(t);
  return { voluntary: Number(v?.[1] ?? 0), involuntary: Number(n?.[1] ?? 0) };
}

/** /proc/<pid>/task/<tid>/schedstat: on-CPU ns, run-queue wait ns, timeslices (through `files` when given: kept open). */
export function readSchedstat(pid: number, tid: number, files?: KeptFiles): { cpuNs: number; runqNs: number; slices: number } | null {
  const path = `/proc/${pid}/task/${tid}/schedstat`;
  const t = files ? files.read(path) : readText(path);
  if (t === null) return null;
  const [a, b, c] = t.trim().split(' ').map(Number);
  return { cpuNs: a ?? 0, runqNs: b ?? 0, slices: c ?? 0 };
}

/** Seconds since boot of CLOCK_BOOTTIME, ns (for lifetimes from stat start times). */
export function uptimeNs(): number {
  const t = readText('/proc/uptime');
  return t === null ? 0 : Number(t.split(' ')[0]) * 1e9;
}

/** One row of /proc/net/tcp{,6}. */
export interface ProcTcpRow {
  ipVersion: 4 | 6;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  /** Kernel TCP state number. */
  state: number;
  inode: number;
}

function hexToIpv4(h: string): string {
  const n = parseInt(h, 16);
  return `${n & 0xff}.${(n >>> 8) & 0xff}.${(n >>> 16) & 0xff}.${n >>> 24}`;
}

function hexToIpv6(h: string): string {
  // Four little-endian 32-bit words.
  const b = Buffer.alloc(16);
  for (let w = 0; w < 4; w++) b.writeUInt32LE(parseInt(h.slice(w * 8, w * 8 + 8), 16), w * 4);
  return formatIpv6(b);
}

/** Formats 16 bytes as an IPv6 address (IPv4-mapped as ::ffff:a.b.c.d), zero runs compressed. */
export function formatIpv6(b: Uint8Array): string {
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((b[i] as number) << 8) | (b[i + 1] as number));
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** Rows of /proc/net/tcp and /proc/net/tcp6 (this network namespace). */
export function readProcNetTcp(): ProcTcpRow[] {
  const rows: ProcTcpRow[] = [];
  for (const [file, v] of [['/proc/net/tcp', 4], ['/proc/net/tcp6', 6]] as const) {
    const t = readText(file);
    if (t === null) continue;
    const lines = t.split('\n');
    for (let i = 1; i < lines.length; i++) {
      const f = (lines[i] as string).trim().split(/\s+/);
      if (f.length < 10) continue;
      const [la, lp] = (f[1] as string).split(':');
      const [ra, rp] = (f[2] as string).split(':');
      rows.push({
        ipVersion: v,
        localAddress: v === 4 ? hexToIpv4(la as string) : hexToIpv6(la as string),
        localPort: parseInt(lp as string, 16),
        remoteAddress: v === 4 ? hexToIpv4(ra as string) : hexToIpv6(ra as string),
        remotePort: parseInt(rp as string, 16),
        state: parseInt(f[3] as string, 16),
        inode: Number(f[9]),
      });
    }
  }
  return rows;
}

/** Socket inodes open in process `pid` (from /proc/<pid>/fd links `socket:[N]`). */
export function socketInodes(pid: number): number[] {
  const r: number[] = [];
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return r;
  }
  for (const fd of fds) {
    try {
      const l = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (l.startsWith('socket:[')) r.push(Number(l.slice(8, -1)));
    } catch {
      /* closed meanwhile */
    }
  }
  return r;
}

/** One whole disk of /proc/diskstats. */
export interface DiskStatsRow {
  major: number;
  minor: number;
  name: string;
  readOps: number;
  readBytes: number;
  readMs: number;
  writeOps: number;
  writeBytes: number;
  writeMs: number;
}

/** Whole disks of /proc/diskstats (partitions left out). */
export function readDiskstats(): DiskStatsRow[] {
  const t = readText('/proc/diskstats');
  if (t === null) return [];
  const rows: DiskStatsRow[] = [];
  for (const line of t.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 11) continue;
    const name = f[2] as string;
    if (!existsSync(`/sys/block/${name}`)) continue;
    rows.push({
      major: Number(f[0]),
      minor: Number(f[1]),
      name,
      readOps: Number(f[3]),
      readBytes: Number(f[5]) * 512,
      readMs: Number(f[6]),
      writeOps: Number(f[7]),
      writeBytes: Number(f[9]) * 512,
      writeMs: Number(f[10]),
    });
  }
  return rows;
}

/** Storage bytes of /proc/<pid>/io (needs root for other users' processes), or null. */
export function readProcIo(pid: number): { readBytes: number; writeBytes: number } | null {
  const t = readText(`/proc/${pid}/io`);
  if (t === null) return null;
  const r = /^read_bytes:\s+(\d+)/m.exec(t);
  const w = /^write_bytes:\s+(\d+)/m.exec(t);
  return { readBytes: Number(r?.[1] ?? 0), writeBytes: Number(w?.[1] ?? 0) };
}

const blockNames = new Map<string, string>();
/** Kernel name of block device `major:minor` (from /sys/dev/block), or ''. */
export function blockDeviceName(dev: string): string {
  const cached = blockNames.get(dev);
  if (cached !== undefined) return cached;
  let name = '';
  const t = readText(`/sys/dev/block/${dev}/uevent`);
  const m = t ? /^DEVNAME=(.*)$/m.exec(t) : null;
  if (m) name = m[1] as string;
  blockNames.set(dev, name);
  return name;
}
