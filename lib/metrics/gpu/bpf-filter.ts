/**
 * Writes a {@link ResolvedFilter} into the shared in-kernel filter maps of bpf/filter.bpf.h
 * (`st_filter_cfg`, `st_filter_tgids`, `st_filter_cgroups`) of one loaded object, so the GPU
 * and thermal programs filter like every other family, at run time without a reload.
 * @internal
 */
import { BpfMap, cstring, field, struct, u32, u64, u8, type BpfObject } from '../../ebpf/index.js';
import type { ResolvedFilter } from '../family.js';

const FLAGS = { tgid: 1, cgroup: 2, comm: 4, events: 0x100 } as const;
const filterConfig = struct(
  { flags: field(u32, 0), comm_len: field(u32, 4), cg_level_min: field(u32, 8), cg_level_max: field(u32, 12), comm: field(cstring(16), 16) },
  32,
);

/** Applies `filter` (and the events flag) to `obj`'s filter maps; a no-op for objects without them. */
export function applyBpfFilter(obj: BpfObject, filter: ResolvedFilter, events = false): void {
  if (!obj.maps.has('st_filter_cfg')) return;
  const cfg = obj.map('st_filter_cfg', { key: u32, value: filterConfig });
  const tgids = obj.map('st_filter_tgids', { key: u32, value: u8 });
  const cgroups = obj.map('st_filter_cgroups', { key: u64, value: u8 });
  try {
    // Sets first, then the flags: a program never sees a kind enabled with an empty set.
    for (const k of [...tgids.keys()]) tgids.delete(k);
    for (const t of filter.tgids) tgids.set(t, 1);
    for (const k of [...cgroups.keys()]) cgroups.delete(k);
    for (const c of filter.cgroupIds) cgroups.set(c, 1);
    const comm = filter.comm ?? '';
    const levels = filter.cgroupLevels.length ? filter.cgroupLevels : [0];
    let flags = events ? FLAGS.events : 0;
    if (filter.tgids.length) flags |= FLAGS.tgid;
    if (filter.cgroupIds.length) flags |= FLAGS.cgroup;
    if (comm) flags |= FLAGS.comm;
    cfg.set(0, {
      flags,
      comm_len: Math.min(Buffer.byteLength(comm), 15),
      cg_level_min: Math.min(...levels),
      cg_level_max: Math.max(...levels),
      comm,
    });
  } finally {
    cfg.close();
    tgids.close();
    cgroups.close();
  }
}

/** Bytes of kernel memory of every map of `obj` (fdinfo memlock). */
export function objectMapBytes(obj: BpfObject): number {
  let total = 0;
  for (const name of obj.maps.keys()) {
    const m: BpfMap = obj.map(name);
    try {
      total += m.memoryBytes();
    } finally {
      m.close();
    }
  }
  return total;
}
