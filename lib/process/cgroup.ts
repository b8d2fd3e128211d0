/**
 * One cgroup per process task: every process of the task (setsid escapees and double-forked
 * daemons included) is placed in it before the task's command runs, limited by it, measured
 * through it and killed with it.
 *
 * Layouts:
 * - **cgroup v2** (`/sys/fs/cgroup` unified): one directory; `memory.max`, `cpu.max`,
 *   `pids.max`; `cgroup.kill` kills everything at once; `cgroup.events` says when it is empty.
 * - **cgroup v1** (a hierarchy per controller under `/sys/fs/cgroup/<controller>`): one
 *   directory per hierarchy used (`memory`, `cpu`, `cpuacct`, `pids`, `freezer`);
 *   `memory.limit_in_bytes`, `cpu.cfs_quota_us`, `pids.max`; killing freezes the group
 *   (`freezer.state` FROZEN), SIGKILLs every pid in `cgroup.procs`, then thaws it, so nothing
 *   forks in between.
 * - **hybrid** (v1 controllers with a cgroup2 hierarchy mounted beside them, e.g.
 *   `/sys/fs/cgroup/unified`): limits in v1, membership, `cgroup.kill` and `populated` from the
 *   cgroup2 directory.
 *
 * Directories live under `<own cgroup>/smoothtask/o<pid>.<starttime>/t-<task>-<n>` in each
 * hierarchy (nested under the cgroup of the process that runs the queue, so its own limits and
 * accounting still cover its tasks); the owner directory names this process, so leftovers of
 * an owner that crashed are found and removed by {@link reapStaleCgroups}.
 *
 * The mounts and the usage files are read by the shared reader in `lib/docker/cgroup.ts`.
 * @module
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cgroupMounts, cgroupUsage, processCgroups, type CgroupUsage, type ProcessCgroups } from '../docker/cgroup.js';
import { CgroupError } from './errors.js';

/** How process tasks are contained on this host. */
export type ContainmentMode = 'cgroup-v2' | 'cgroup-v1' | 'cgroup-hybrid' | 'process-group';

/** Resource limits of a process task (the names of the container spec's `limits`). */
export interface CgroupLimits {
  /** Memory limit in bytes (the kernel OOM-kills above it; swap is not allowed beyond it). */
  memoryBytes?: number | undefined;
  /** CPU quota in cores (e.g. 0.5 = half a core, CFS bandwidth control). */
  cpus?: number | undefined;
  /** Maximum number of processes/threads. */
  pids?: number | undefined;
}

/** One hierarchy used for task cgroups. */
interface Hierarchy {
  kind: 'v1' | 'v2';
  /** Mount point. */
  mount: string;
  /** Controllers of this hierarchy we use (v1), or those enabled for our cgroups (v2). */
  controllers: string[];
  /** Our base directory, relative to the mount (`/…/smoothtask`). */
  relBase: string;
}

/** What {@link cgroupSupport} found. */
export interface CgroupSupport {
  /** How tasks are contained. */
  mode: ContainmentMode;
  /** Why cgroups are not used (set with mode `process-group`), or why a controller is missing. */
  reason?: string;
  /** Controllers available for limits (`memory`, `cpu`, `pids`). */
  limits: string[];
  /** Base directories (`…/smoothtask`), one per hierarchy used. */
  dirs: string[];
}

interface Resolved extends CgroupSupport {
  hierarchies: Hierarchy[];
}

const V1_CONTROLLERS = ['memory', 'cpu', 'cpuacct', 'pids', 'freezer'] as const;
const LIMIT_CONTROLLERS = ['memory', 'cpu', 'pids'] as const;

let resolved: Resolved | undefined;

const read = (p: string): string | undefined => {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return undefined;
  }
};

const tryWrite = (p: string, v: string): boolean => {
  try {
    writeFileSync(p, v);
    return true;
  } catch {
    return false;
  }
};

/** `o<pid>.<starttime>`: the owner directory of a process (start time tells a reused pid apart). */
function ownerName(pid: number): string | undefined {
  const stat = read(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  return start ? `o${pid}.${start}` : undefined;
}

/**
 * Finds the cgroup layout and makes sure our base directories can be created. Cached; with
 * no writable hierarchy (not root, read-only mount) the mode is `process-group` and `reason`
 * says why.
 */
export function cgroupSupport(): CgroupSupport {
  const r = resolve();
  return { mode: r.mode, ...(r.reason ? { reason: r.reason } : {}), limits: [...r.limits], dirs: [...r.dirs] };
}

function resolve(): Resolved {
  if (resolved) return resolved;
  const m = cgroupMounts();
  let own: ProcessCgroups;
  try {
    own = processCgroups(process.pid);
  } catch (e) {
    return (resolved = { mode: 'process-group', reason: `cannot read /proc/self/cgroup: ${(e as Error).message}`, limits: [], dirs: [], hierarchies: [] });
  }
  const hs: Hierarchy[] = [];
  const problems: string[] = [];
  const mk = (dir: string): boolean => {
    try {
      mkdirSync(dir, { recursive: true });
      return true;
    } catch (e) {
      problems.push(`${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return false;
    }
  };
  // v1 hierarchies, one entry per mount point (co-mounted controllers share one).
  const byMount = new Map<string, Hierarchy>();
  for (const c of V1_CONTROLLERS) {
    const mount = m.v1.get(c);
    const rel = own.v1.get(c);
    if (!mount || rel === undefined) continue;
    const h = byMount.get(mount);
    if (h) h.controllers.push(c);
    else byMount.set(mount, { kind: 'v1', mount, controllers: [c], relBase: join(rel, 'smoothtask') });
  }
  for (const h of byMount.values()) if (mk(join(h.mount, h.relBase))) hs.push(h);
  // The cgroup2 hierarchy: membership, kill and populated; and the controllers v1 does not hold.
  if (m.v2 && own.v2 !== undefined) {
    const v1Has = new Set(hs.flatMap((h) => h.controllers));
    const wanted = LIMIT_CONTROLLERS.filter((c) => !v1Has.has(c));
    const rootCtl = (read(join(m.v2, 'cgroup.controllers')) ?? '').split(/\s+/);
    const want = wanted.filter((c) => rootCtl.includes(c));
    // Nested under our own cgroup when the controllers can be delegated there; a cgroup that
    // holds processes cannot hand controllers to children (v2's no-internal-process rule), so
    // the hierarchy root is the fallback (what Docker's cgroupfs driver does).
    const candidates = [...new Set([join(own.v2, 'smoothtask'), '/smoothtask'])];
    let chosen: Hierarchy | undefined;
    for (const relBase of candidates) {
      if (!mk(join(m.v2, relBase))) continue;
      const enabled = want.length ? enableControllers(m.v2, relBase, want) : [];
      const h: Hierarchy = { kind: 'v2', mount: m.v2, controllers: enabled, relBase };
      chosen ??= h;
      if (enabled.length === want.length) {
        chosen = h;
        break;
      }
    }
    if (chosen) hs.push(chosen);
  }
  const dirs = hs.map((h) => join(h.mount, h.relBase));
  if (!hs.length) {
    return (resolved = { mode: 'process-group', reason: problems.length ? `no writable cgroup hierarchy (${problems.join('; ')})` : 'no cgroup hierarchy is mounted', limits: [], dirs: [], hierarchies: [] });
  }
  const v1 = hs.some((h) => h.kind === 'v1');
  const v2 = hs.some((h) => h.kind === 'v2');
  const limits = LIMIT_CONTROLLERS.filter((c) => hs.some((h) => h.controllers.includes(c)));
  const missing = LIMIT_CONTROLLERS.filter((c) => !limits.includes(c));
  const reason = missing.length ? `controllers not available for limits: ${missing.join(', ')}${problems.length ? ` (${problems.join('; ')})` : ''}` : undefined;
  resolved = { mode: v1 && v2 ? 'cgroup-hybrid' : v2 ? 'cgroup-v2' : 'cgroup-v1', limits, dirs, hierarchies: hs, ...(reason ? { reason } : {}) };
  return resolved;
}

/** Enables `want` in `cgroup.subtree_control` from the top of `relBase` down; returns those enabled at its level. */
function enableControllers(mount: string, relBase: string, want: string[]): string[] {
  const parts = relBase.split('/').filter(Boolean);
  let dir = mount;
  // Every ancestor of the base, the base itself: each must delegate to the next level.
  for (let i = 0; i <= parts.length; i++) {
    for (const c of want) tryWrite(join(dir, 'cgroup.subtree_control'), `+${c}`);
    if (i < parts.length) dir = join(dir, parts[i]!);
  }
  const st = (read(join(mount, relBase, 'cgroup.subtree_control')) ?? '').split(/\s+/);
  return want.filter((c) => st.includes(c));
}

/** The cgroup of one task attempt (a directory in each hierarchy used). */
export class TaskCgroup {
  /** Absolute directories, one per hierarchy. */
  readonly dirs: readonly string[];
  readonly #h: Array<{ h: Hierarchy; dir: string; rel: string }>;
  readonly #authority: { h: Hierarchy; dir: string; rel: string };

  /** @internal Use {@link createTaskCgroup}. */
  constructor(parts: Array<{ h: Hierarchy; dir: string; rel: string }>) {
    this.#h = parts;
    this.dirs = parts.map((p) => p.dir);
    // Where membership is read: cgroup2 if used, else the freezer hierarchy, else the first.
    this.#authority = parts.find((p) => p.h.kind === 'v2') ?? parts.find((p) => p.h.controllers.includes('freezer')) ?? parts[0]!;
  }

  /** The `cgroup.procs` files a process writes its pid to, to join every hierarchy. */
  get procsFiles(): string[] {
    return this.#h.map((p) => join(p.dir, 'cgroup.procs'));
  }

  /** Pids of the processes in the cgroup now. */
  pids(): number[] {
    const t = read(join(this.#authority.dir, 'cgroup.procs'));
    if (t === undefined) return [];
    return t.split('\n').filter(Boolean).map(Number);
  }

  /** Whether any process is in the cgroup. */
  populated(): boolean {
    if (this.#authority.h.kind === 'v2') {
      const ev = read(join(this.#authority.dir, 'cgroup.events'));
      if (ev !== undefined) return /^populated 1$/m.test(ev);
    }
    return this.pids().length > 0;
  }

  /** Sends `signal` to every process in the cgroup; returns how many got it. */
  signal(signal: NodeJS.Signals): number {
    let n = 0;
    for (const pid of this.pids()) {
      try {
        process.kill(pid, signal);
        n++;
      } catch {
        /* exited meanwhile */
      }
    }
    return n;
  }

  /**
   * SIGKILLs every process of the cgroup at once: `cgroup.kill` on cgroup v2; on v1 the
   * freezer (freeze, SIGKILL each pid, thaw) so that no process forks between the listing and
   * the kill; without either, SIGKILL to each listed pid (repeated by {@link waitEmpty}).
   */
  kill(): void {
    const v2 = this.#h.find((p) => p.h.kind === 'v2');
    if (v2 && tryWrite(join(v2.dir, 'cgroup.kill'), '1')) return;
    const fz = this.#h.find((p) => p.h.controllers.includes('freezer'));
    if (fz && tryWrite(join(fz.dir, 'freezer.state'), 'FROZEN')) {
      // Freezing is asynchronous (FREEZING until every task stopped); a short bounded wait.
      const until = Date.now() + 1000;
      while (Date.now() < until && !/FROZEN/.test(read(join(fz.dir, 'freezer.state')) ?? 'FROZEN')) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
      }
      this.signal('SIGKILL');
      tryWrite(join(fz.dir, 'freezer.state'), 'THAWED');
      return;
    }
    this.signal('SIGKILL');
  }

  /**
   * Waits until no process is left; kills again (every 500 ms) when `kill` is set. Resolves
   * `true` when empty, `false` at the deadline.
   */
  async waitEmpty(options: { kill?: boolean; timeoutMs?: number } = {}): Promise<boolean> {
    const end = Date.now() + (options.timeoutMs ?? 30_000);
    let step = 5;
    let lastKill = Date.now();
    while (this.populated()) {
      if (Date.now() > end) return false;
      if (options.kill && Date.now() - lastKill >= 500) {
        this.kill();
        lastKill = Date.now();
      }
      await sleep(step);
      step = Math.min(step * 2, 50);
    }
    return true;
  }

  /** CPU, memory and I/O charged to the cgroup (shared reader of `lib/docker/cgroup.ts`). */
  usage(): CgroupUsage {
    const cg: ProcessCgroups = { v1: new Map() };
    for (const p of this.#h) {
      if (p.h.kind === 'v2') cg.v2 = p.rel;
      else for (const c of p.h.controllers) cg.v1.set(c, p.rel);
    }
    return cgroupUsage(cg);
  }

  /** Processes the kernel OOM-killed in this cgroup (`oom_kill` of memory.events / memory.oom_control). */
  oomKills(): number {
    let n = 0;
    for (const p of this.#h) {
      if (!p.h.controllers.includes('memory')) continue;
      const t = read(join(p.dir, p.h.kind === 'v2' ? 'memory.events' : 'memory.oom_control')) ?? '';
      n += Number(/^oom_kill (\d+)$/m.exec(t)?.[1] ?? 0);
    }
    return n;
  }

  /** Removes the directories (once empty); `false` if one could not be removed. */
  async remove(): Promise<boolean> {
    let ok = true;
    for (const d of this.dirs) ok = (await rmdirRetry(d)) && ok;
    return ok;
  }
}

async function rmdirRetry(dir: string): Promise<boolean> {
  for (let i = 0; i < 20; i++) {
    try {
      rmdirSync(dir);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return true;
      if (code !== 'EBUSY') return false;
      await sleep(25 * (i + 1));
    }
  }
  return false;
}

let seq = 0;
const ownerDirs = new Set<string>();
function removeOwnerDirs(): void {
  for (const d of ownerDirs) {
    try {
      rmdirSync(d);
    } catch {
      /* still holds a task cgroup, or already gone */
    }
  }
}

/**
 * Creates the cgroup of one task attempt and applies its limits. Throws {@link CgroupError}
 * when a directory cannot be created or a requested limit cannot be enforced here.
 */
export function createTaskCgroup(taskId: string, limits: CgroupLimits = {}): TaskCgroup {
  const r = resolve();
  if (r.mode === 'process-group') throw new CgroupError(`cgroups are not available: ${r.reason ?? 'unknown'}`);
  const owner = ownerName(process.pid);
  if (!owner) throw new CgroupError('cannot read /proc/self/stat');
  const name = `t-${taskId.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 120)}-${++seq}-${process.hrtime.bigint() % 100000n}`;
  const parts: Array<{ h: Hierarchy; dir: string; rel: string }> = [];
  const wanted: Record<string, boolean> = { memory: limits.memoryBytes !== undefined, cpu: limits.cpus !== undefined, pids: limits.pids !== undefined };
  for (const [c, w] of Object.entries(wanted)) {
    if (w && !r.limits.includes(c)) throw new CgroupError(`a ${c} limit was asked for but the ${c} controller is not available here (${r.reason ?? r.mode})`);
  }
  const cg = (): TaskCgroup => new TaskCgroup(parts);
  try {
    for (const h of r.hierarchies) {
      const ownerRel = join(h.relBase, owner);
      const ownerDir = join(h.mount, ownerRel);
      mkdirSync(ownerDir, { recursive: true });
      if (!ownerDirs.has(ownerDir)) {
        ownerDirs.add(ownerDir);
        // Removed at exit when empty; a crashed owner's are removed by reapStaleCgroups.
        if (ownerDirs.size === 1) process.once('exit', removeOwnerDirs);
      }
      if (h.kind === 'v2' && h.controllers.length) for (const c of h.controllers) tryWrite(join(ownerDir, 'cgroup.subtree_control'), `+${c}`);
      const rel = join(ownerRel, name);
      const dir = join(h.mount, rel);
      mkdirSync(dir);
      parts.push({ h, dir, rel });
    }
    for (const p of parts) applyLimits(p.h, p.dir, limits);
  } catch (e) {
    void cg().remove();
    throw e instanceof CgroupError ? e : new CgroupError(`cannot create the task cgroup: ${(e as Error).message}`, { cause: e });
  }
  return cg();
}

function applyLimits(h: Hierarchy, dir: string, l: CgroupLimits): void {
  const w = (file: string, v: string): void => {
    try {
      writeFileSync(join(dir, file), v);
    } catch (e) {
      throw new CgroupError(`cannot set ${file} = ${v} in ${dir}: ${(e as Error).message}`, { cause: e });
    }
  };
  const has = (c: string) => h.controllers.includes(c);
  if (l.memoryBytes !== undefined && has('memory')) {
    const n = String(Math.floor(l.memoryBytes));
    if (h.kind === 'v2') {
      w('memory.max', n);
      tryWrite(join(dir, 'memory.swap.max'), '0');
    } else {
      w('memory.limit_in_bytes', n);
      // memory+swap to the same value: no swapping past the limit (absent without swap accounting).
      if (existsSync(join(dir, 'memory.memsw.limit_in_bytes'))) tryWrite(join(dir, 'memory.memsw.limit_in_bytes'), n);
    }
  }
  if (l.cpus !== undefined && has('cpu')) {
    const period = 100_000;
    const quota = String(Math.max(1000, Math.round(l.cpus * period)));
    if (h.kind === 'v2') w('cpu.max', `${quota} ${period}`);
    else {
      w('cpu.cfs_period_us', String(period));
      w('cpu.cfs_quota_us', quota);
    }
  }
  if (l.pids !== undefined && has('pids')) w('pids.max', String(l.pids));
}

/**
 * Kills and removes the task cgroups left by owners that are gone (a crashed or killed process
 * that ran a queue): owner directories whose pid is dead or reused (start time differs). Our
 * own and other live owners' cgroups are left alone. Resolves with the number of task cgroups
 * removed. Run by `ProcessExecutor` before its first task; safe to call at any time.
 */
export async function reapStaleCgroups(): Promise<number> {
  const r = resolve();
  if (r.mode === 'process-group') return 0;
  const owners = new Set<string>();
  for (const h of r.hierarchies) {
    let entries: string[] = [];
    try {
      entries = readdirSync(join(h.mount, h.relBase));
    } catch {
      continue;
    }
    for (const e of entries) if (/^o\d+\.\d+$/.test(e)) owners.add(e);
  }
  let reaped = 0;
  for (const o of owners) {
    const pid = Number(o.slice(1, o.indexOf('.')));
    if (ownerName(pid) === o) continue; // alive
    const tasks = new Set<string>();
    for (const h of r.hierarchies) {
      try {
        for (const t of readdirSync(join(h.mount, h.relBase, o))) if (t.startsWith('t-')) tasks.add(t);
      } catch {
        /* not in this hierarchy */
      }
    }
    for (const t of tasks) {
      const parts = r.hierarchies
        .map((h) => ({ h, rel: join(h.relBase, o, t), dir: join(h.mount, h.relBase, o, t) }))
        .filter((p) => existsSync(p.dir));
      const cg = new TaskCgroup(parts);
      cg.kill();
      await cg.waitEmpty({ kill: true, timeoutMs: 10_000 });
      if (await cg.remove()) reaped++;
    }
    for (const h of r.hierarchies) await rmdirRetry(join(h.mount, h.relBase, o));
  }
  return reaped;
}
