/**
 * Cgroup v2 resolution: container ids and cgroup paths to cgroup ids (the inode number of
 * the cgroup directory, what `bpf_get_current_cgroup_id()` returns), and the filter
 * resolution every reader receives.
 * @module
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { cgroupMounts } from '../docker/cgroup.js';
import { SmoothtaskError } from '../errors/index.js';
import { validate } from '../errors/validate.js';
import { FilterSchema, type Filter, type ResolvedFilter } from './family.js';

/** Thrown when a container id or cgroup path cannot be resolved to a cgroup. */
export class CgroupNotFoundError extends SmoothtaskError {
  /** Says which container or cgroup was not found. */
  constructor(message: string) {
    super('ERR_CGROUP_NOT_FOUND', message);
  }
}

/**
 * Mount point of the cgroup v2 hierarchy (`/sys/fs/cgroup` on unified hosts,
 * `/sys/fs/cgroup/unified` on hybrid ones), or null when there is none.
 */
export function cgroup2Mount(): string | null {
  return cgroupMounts().v2 ?? null;
}

function requireMount(): string {
  const m = cgroup2Mount();
  if (!m) throw new CgroupNotFoundError('no cgroup v2 hierarchy is mounted (needed for cgroup and container filters)');
  return m;
}

/** A resolved cgroup. */
export interface CgroupRef {
  /** Absolute directory of the cgroup. */
  path: string;
  /** Path relative to the cgroup2 mount, starting with `/` (as in `/proc/<pid>/cgroup`). */
  relPath: string;
  /** Cgroup id (directory inode number). */
  id: bigint;
  /** Depth below the root (root = 0). */
  level: number;
}

/** Resolves a cgroup v2 path (absolute, or relative to the cgroup2 mount). */
export function resolveCgroupPath(path: string): CgroupRef {
  const mount = requireMount();
  const abs = isAbsolute(path) && path.startsWith(mount) ? path : join(mount, path);
  let st: import('node:fs').BigIntStats;
  try {
    st = statSync(abs, { bigint: true });
  } catch (e) {
    throw new CgroupNotFoundError(`cgroup ${path} not found under ${mount}: ${(e as Error).message}`);
  }
  if (!st.isDirectory()) throw new CgroupNotFoundError(`cgroup ${path} not found under ${mount}: not a directory`);
  const ino = st.ino;
  const rel = relative(mount, abs);
  const relPath = rel === '' ? '/' : `/${rel}`;
  return { path: abs, relPath, id: ino, level: rel === '' ? 0 : rel.split('/').length };
}

/**
 * Resolves a Docker container id (full, or an unambiguous prefix) to its cgroup: cgroupfs
 * driver `<mount>/docker/<id>`, systemd driver `<mount>/system.slice/docker-<id>.scope`.
 */
export function resolveContainer(id: string): CgroupRef {
  const mount = requireMount();
  const places: Array<{ dir: string; name: (full: string) => string; parse: (entry: string) => string | null }> = [
    { dir: join(mount, 'docker'), name: (f) => f, parse: (e) => (/^[0-9a-f]{64}$/.test(e) ? e : null) },
    {
      dir: join(mount, 'system.slice'),
      name: (f) => `docker-${f}.scope`,
      parse: (e) => /^docker-([0-9a-f]{64})\.scope$/.exec(e)?.[1] ?? null,
    },
  ];
  const found = new Map<string, string>();
  for (const p of places) {
    let entries: string[];
    try {
      entries = readdirSync(p.dir);
    } catch {
      continue;
    }
    for (const e of entries) {
      const full = p.parse(e);
      if (full && full.startsWith(id)) found.set(full, join(p.dir, p.name(full)));
    }
  }
  if (found.size === 0) throw new CgroupNotFoundError(`no cgroup found for container ${id} (is it running?)`);
  if (found.size > 1) throw new CgroupNotFoundError(`container id prefix ${id} is ambiguous (${found.size} containers)`);
  return resolveCgroupPath([...found.values()][0] as string);
}

/** The cgroup v2 path of a process, relative to the mount (`0::` line of /proc/<pid>/cgroup), or null. */
export function cgroupPathOfPid(pid: number): string | null {
  try {
    const text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    for (const line of text.split('\n')) if (line.startsWith('0::')) return line.slice(3);
  } catch {
    /* gone */
  }
  return null;
}

/**
 * Validates a user filter and resolves containers and cgroup paths to cgroup ids.
 * Throws `ConfigError` for a malformed filter, {@link CgroupNotFoundError} for a container or
 * cgroup that does not exist.
 */
export function resolveFilter(filter: Filter | undefined): ResolvedFilter {
  const f = validate(FilterSchema, filter ?? {}, 'metrics filter');
  const refs: CgroupRef[] = [];
  for (const p of f.cgroupPaths ?? []) refs.push(resolveCgroupPath(p));
  for (const c of f.containers ?? []) refs.push(resolveContainer(c));
  const ids: bigint[] = [];
  const levels: number[] = [];
  const paths: string[] = [];
  for (const r of refs) {
    ids.push(r.id);
    levels.push(r.level);
    paths.push(r.relPath);
  }
  for (const raw of f.cgroupIds ?? []) {
    const id = BigInt(raw);
    if (ids.includes(id)) continue;
    const found = findCgroupById(id);
    ids.push(id);
    levels.push(found?.level ?? -1);
    paths.push(found?.relPath ?? '');
  }
  const resolved: ResolvedFilter = {
    tgids: [...new Set(f.tgids ?? [])],
    cgroupIds: ids,
    cgroupLevels: levels,
    cgroupPaths: paths,
    ...(f.comm !== undefined ? { comm: f.comm } : {}),
  };
  return resolved;
}

/** Walks the cgroup2 tree (bounded) looking for the directory whose inode is `id`. */
export function findCgroupById(id: bigint, maxDirs = 20_000): CgroupRef | null {
  const mount = cgroup2Mount();
  if (!mount) return null;
  const queue = [mount];
  let seen = 0;
  while (queue.length && seen < maxDirs) {
    const dir = queue.shift() as string;
    seen++;
    try {
      if (statSync(dir, { bigint: true }).ino === id) return resolveCgroupPath(dir);
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) queue.push(join(dir, e.name));
    } catch {
      /* raced with rmdir */
    }
  }
  return null;
}

/**
 * User-space filter check (procfs backends). `cgroupPath` is the process's cgroup v2 path
 * relative to the mount, needed only when the filter has cgroups.
 */
export function filterMatches(
  f: ResolvedFilter,
  p: { tgid: number; comm: string; cgroupPath?: () => string | null },
): boolean {
  if (f.tgids.length && !f.tgids.includes(p.tgid)) return false;
  if (f.comm !== undefined && !p.comm.startsWith(f.comm)) return false;
  if (f.cgroupIds.length) {
    const cg = p.cgroupPath?.() ?? null;
    if (cg === null) return false;
    const paths = f.cgroupPaths ?? [];
    return paths.some((root) => root !== '' && (root === '/' || cg === root || cg.startsWith(`${root}/`)));
  }
  return true;
}
