/**
 * Helpers shared by the built-in families' readers (eBPF and procfs backends).
 * @internal
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { BpfMap } from '../ebpf/map.js';
import type { RingBufferLike } from '../ebpf/types.js';
import { type ResolvedFilter, isEmptyFilter } from './family.js';
import { cgroup2Mount, cgroupPathOfPid, filterMatches } from './cgroup.js';
import { readText, listPids, readStat, type ProcStat } from './procfs.js';
import type { NetworkSnapshot, TcpConnection } from './schemas.js';

export type Decoded<C> = C extends { decode(...a: never[]): infer T } ? T : never;

export function commOf(tgid: number): string {
  return readText(`/proc/${tgid}/comm`)?.trimEnd() ?? '';
}

// Cgroup id -> path index, rebuilt (bounded walk) when an unknown id shows up, at most once per
// CGROUP_REWALK_MS: an id that resolves nowhere (a removed cgroup whose threads' totals a map
// still holds, a cgroup outside the mount) would otherwise cost a walk of the tree every read.
let cgroupIndex = new Map<string, string>();
let cgroupIndexAt = -Infinity;
const CGROUP_REWALK_MS = 5_000;
export function cgroupPath(id: string): string | null {
  if (!cgroupIndex.has(id) && performance.now() - cgroupIndexAt >= CGROUP_REWALK_MS) {
    const mount = cgroup2Mount();
    if (!mount) return null;
    const idx = new Map<string, string>();
    const queue = [mount];
    let seen = 0;
    while (queue.length && seen < 5000) {
      const dir = queue.shift() as string;
      seen++;
      try {
        idx.set(statSync(dir, { bigint: true }).ino.toString(), dir === mount ? '/' : dir.slice(mount.length));
        for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) queue.push(join(dir, e.name));
      } catch {
        /* removed meanwhile */
      }
    }
    cgroupIndex = idx;
    cgroupIndexAt = performance.now();
  }
  return cgroupIndex.get(id) ?? null;
}

/**
 * Batches of a ring buffer's records, each record mapped with `f` (a `null` result is left
 * out; an empty batch is not yielded), ending when `signal` aborts. One promise per batch,
 * none per record: the cheap way for events to reach their consumer.
 */
export async function* mapEventBatches<R, E>(rb: RingBufferLike<R>, f: (r: R) => E | null, signal?: AbortSignal, active?: (d: 1 | -1) => void): AsyncGenerator<E[]> {
  active?.(1);
  const it = rb.batches()[Symbol.asyncIterator]();
  // A pending next() may never settle when no record comes: race it with the abort.
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<{ done: true; value: undefined }>((res) => {
    onAbort = () => res({ done: true, value: undefined });
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    for (;;) {
      if (signal?.aborted) return;
      const n = await Promise.race([it.next(), aborted]);
      if (n.done) return;
      const b = n.value;
      const out = new Array<E>(b.length);
      let k = 0;
      for (let i = 0; i < b.length; i++) {
        const e = f(b.get(i));
        if (e !== null) out[k++] = e;
      }
      out.length = k;
      if (k) yield out;
    }
  } finally {
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    void it.return?.();
    active?.(-1);
  }
}

/** Async iterable over a ring buffer's records, mapped, ending when `signal` aborts (see {@link mapEventBatches}). */
export async function* mapEvents<R, E>(rb: RingBufferLike<R>, f: (r: R) => E | null, signal?: AbortSignal, active?: (d: 1 | -1) => void): AsyncGenerator<E> {
  for await (const batch of mapEventBatches(rb, f, signal, active)) yield* batch;
}

/** Processes passing the filter, with their parsed stat. */
export function matchingProcesses(filter: ResolvedFilter): ProcStat[] {
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

/**
 * What a reader last read from maps whose programs bump a write counter after their writes
 * (`st_writes`, bpf/maps.bpf.h): read again only when the counter moved since. The counter is
 * read before the maps, so a write in progress during a read is seen by the next one (its bump
 * comes after it).
 * @internal
 */
export class WritesGate<T> {
  #at = -1;
  #value: T | undefined;
  /** @param counter the object's `st_writes` map (one u64 slot). */
  constructor(private readonly counter: BpfMap<number, number>) {}

  /** The kept value while the counter stands still; otherwise (and the first time) `read()`'s. */
  get(read: () => T): T {
    const at = this.counter.get(0) ?? -1;
    if (this.#value === undefined || at !== this.#at) {
      this.#value = read();
      this.#at = at;
    }
    return this.#value;
  }

  /** Replaces the kept value (what the reader removed from the maps itself). */
  keep(value: T): void {
    this.#value = value;
  }
}
