// Cgroup v2 and container resolution against the real cgroup tree and a real container.
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/errors/index.js';
import {
  CgroupNotFoundError,
  cgroup2Mount,
  cgroupPathOfPid,
  filterMatches,
  findCgroupById,
  resolveCgroupPath,
  resolveContainer,
  resolveFilter,
} from '../../lib/metrics/cgroup.js';
import { EMPTY_FILTER, sameFilter } from '../../lib/metrics/family.js';

function docker(...args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8', timeout: 60_000 }).trim();
}

describe('cgroup v2 resolution', () => {
  let cid = '';
  let cpid = 0;
  beforeAll(() => {
    cid = docker('run', '-d', '--rm', '--label', 'smoothtask.test=metrics-cgroup', 'smoothtask/busybox:latest', 'sleep', '60');
    cpid = Number(docker('inspect', '-f', '{{.State.Pid}}', cid));
  });
  afterAll(() => {
    if (cid) docker('rm', '-f', cid);
  });

  it('finds the cgroup2 mount and the root cgroup', () => {
    const m = cgroup2Mount();
    expect(m).toBeTruthy();
    const root = resolveCgroupPath('/');
    expect(root.level).toBe(0);
    expect(root.id).toBe(statSync(m!, { bigint: true }).ino);
  });

  it('resolves a container by full id and by prefix to the cgroup its process is in', () => {
    const full = resolveContainer(cid);
    const short = resolveContainer(cid.slice(0, 12));
    expect(short).toEqual(full);
    expect(full.id).toBe(statSync(full.path, { bigint: true }).ino);
    expect(cgroupPathOfPid(cpid)).toBe(full.relPath);
    expect(full.level).toBe(full.relPath.split('/').length - 1);
    expect(findCgroupById(full.id)?.relPath).toBe(full.relPath);
  });

  it('resolveFilter turns containers into cgroup ids; filterMatches uses them', () => {
    const f = resolveFilter({ containers: [cid.slice(0, 16)] });
    const ref = resolveContainer(cid);
    expect(f.cgroupIds).toEqual([ref.id]);
    expect(f.cgroupLevels).toEqual([ref.level]);
    expect(filterMatches(f, { tgid: cpid, comm: 'sleep', cgroupPath: () => cgroupPathOfPid(cpid) })).toBe(true);
    expect(filterMatches(f, { tgid: process.pid, comm: 'node', cgroupPath: () => cgroupPathOfPid(process.pid) })).toBe(false);
    const byId = resolveFilter({ cgroupIds: [ref.id] });
    expect(byId.cgroupPaths).toEqual([ref.relPath]);
  });

  it('tgid and comm kinds combine with AND', () => {
    const f = resolveFilter({ tgids: [process.pid], comm: 'no' });
    expect(filterMatches(f, { tgid: process.pid, comm: 'node' })).toBe(true);
    expect(filterMatches(f, { tgid: process.pid, comm: 'bash' })).toBe(false);
    expect(filterMatches(f, { tgid: 1, comm: 'node' })).toBe(false);
  });

  it('sameFilter: equal when tgids, cgroups and comm prefix are the same, in order', () => {
    const a = resolveFilter({ tgids: [1, 2], comm: 'x' });
    expect(sameFilter(a, a)).toBe(true);
    expect(sameFilter(a, resolveFilter({ tgids: [1, 2], comm: 'x' }))).toBe(true);
    expect(sameFilter(a, resolveFilter({ tgids: [1, 2] }))).toBe(false);
    expect(sameFilter(a, resolveFilter({ tgids: [1, 3], comm: 'x' }))).toBe(false);
    expect(sameFilter(a, resolveFilter({ tgids: [1], comm: 'x' }))).toBe(false);
    expect(sameFilter(resolveFilter({}), EMPTY_FILTER)).toBe(true);
    const root = resolveFilter({ cgroupPaths: ['/'] });
    expect(sameFilter(root, resolveFilter({ cgroupPaths: ['/'] }))).toBe(true);
    expect(sameFilter(root, EMPTY_FILTER)).toBe(false);
  });

  it('rejects bad filters and unknown containers with typed errors', () => {
    expect(() => resolveFilter({ tgids: [-1] } as never)).toThrow(ConfigError);
    expect(() => resolveFilter({ comm: 'x'.repeat(16) })).toThrow(ConfigError);
    expect(() => resolveFilter({ bogus: 1 } as never)).toThrow(/bogus/);
    expect(() => resolveContainer('ffffffffffff')).toThrow(CgroupNotFoundError);
    expect(() => resolveCgroupPath('/no/such/cgroup')).toThrow(CgroupNotFoundError);
  });
});
