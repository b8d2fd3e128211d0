/**
 * Set operations over snapshot rows: top-k, group-by with generic keys, joins of two
 * readers' rows by pid or cgroup. Pure functions, plus operator forms for streams.
 * @module
 */
import { operator, type Operator } from './operators.js';

/**
 * The `k` items with the largest `score`, largest first; ties keep input order. O(n log k).
 */
export function topK<T>(items: Iterable<T>, k: number, score: (x: T) => number): T[] {
  if (k <= 0) return [];
  // small binary min-heap on (score, -index) so ties prefer earlier items
  const heap: Array<{ s: number; i: number; x: T }> = [];
  const less = (a: { s: number; i: number }, b: { s: number; i: number }) => a.s < b.s || (a.s === b.s && a.i > b.i);
  const up = (j: number) => {
    while (j > 0) {
      const p = (j - 1) >> 1;
      if (!less(heap[j]!, heap[p]!)) break;
      [heap[j], heap[p]] = [heap[p]!, heap[j]!];
      j = p;
    }
  };
  const down = (j: number) => {
    for (;;) {
      const l = 2 * j + 1;
      const r = l + 1;
      let m = j;
      if (l < heap.length && less(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && less(heap[r]!, heap[m]!)) m = r;
      if (m === j) return;
      [heap[j], heap[m]] = [heap[m]!, heap[j]!];
      j = m;
    }
  };
  let i = 0;
  for (const x of items) {
    const e = { s: score(x), i: i++, x };
    if (Number.isNaN(e.s)) continue;
    if (heap.length < k) {
      heap.push(e);
      up(heap.length - 1);
    } else if (less(heap[0]!, e)) {
      heap[0] = e;
      down(0);
    }
  }
  return heap.sort((a, b) => b.s - a.s || a.i - b.i).map((e) => e.x);
}

/** Groups items by a key; the map keeps first-seen key order. */
export function groupBy<T, K>(items: Iterable<T>, key: (x: T) => K): Map<K, T[]> {
  const m = new Map<K, T[]>();
  for (const x of items) {
    const k = key(x);
    const g = m.get(k);
    if (g) g.push(x);
    else m.set(k, [x]);
  }
  return m;
}

/** Groups and reduces each group: e.g. total CPU time per container. */
export function aggregateBy<T, K, R>(items: Iterable<T>, key: (x: T) => K, reduce: (group: T[], key: K) => R): Map<K, R> {
  const out = new Map<K, R>();
  for (const [k, g] of groupBy(items, key)) out.set(k, reduce(g, k));
  return out;
}

/** Sums a numeric field of each group. */
export function sumBy<T, K>(items: Iterable<T>, key: (x: T) => K, value: (x: T) => number): Map<K, number> {
  return aggregateBy(items, key, (g) => g.reduce((s, x) => s + value(x), 0));
}

/**
 * Ready key functions for the usual groupings. Each reads the first field present among the
 * usual spellings the readers use, and gives `undefined` when the row has none.
 */
export const keys = {
  /** Process id (`tgid`, then `pid`). */
  pid: (x: object): number | undefined => num(x, 'tgid', 'pid'),
  /** Process name (`comm`, `name`, `processName`). */
  processName: (x: object): string | undefined => str(x, 'comm', 'name', 'processName'),
  /** Cgroup (`cgroupId`, `cgroup`, `cgroupPath`). */
  cgroup: (x: object): string | undefined => str(x, 'cgroupPath', 'cgroup', 'cgroupId'),
  /** Container id (`containerId`, `container`). */
  container: (x: object): string | undefined => str(x, 'containerId', 'container'),
  /** Device (`device`, `dev`, `disk`, `interface`, `gpu`, `index`). */
  device: (x: object): string | undefined => str(x, 'device', 'dev', 'disk', 'interface', 'gpu', 'index'),
} as const;

function field(x: object, names: string[]): unknown {
  const r = x as Record<string, unknown>;
  for (const n of names) if (r[n] !== undefined && r[n] !== null) return r[n];
  return undefined;
}
function num(x: object, ...names: string[]): number | undefined {
  const v = field(x, names);
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : typeof v === 'string' && v !== '' && !Number.isNaN(Number(v)) ? Number(v) : undefined;
}
function str(x: object, ...names: string[]): string | undefined {
  const v = field(x, names);
  return v === undefined ? undefined : String(v);
}

/** One row of a {@link join}. */
export interface Joined<L, R, K> {
  /** The join key. */
  key: K | undefined;
  /** The left row. */
  left: L;
  /** The matching right row (`undefined` for an unmatched left row of a left join). */
  right: R | undefined;
}

/** Join flavour: `inner` keeps matched pairs only, `left` keeps every left row. */
export type JoinKind = 'inner' | 'left';

/**
 * Joins two readers' rows on a key (hash join). Every left row is paired with each right row of
 * the same key; with `kind: 'left'` unmatched left rows come out with `right: undefined`.
 * Rows whose key is `undefined` never match.
 *
 * @example
 * ```ts
 * join(cpu.processes, net.processes, keys.pid) // [{ key: 42, left: {...}, right: {...} }]
 * ```
 */
export function join<L extends object, R extends object, K>(
  left: Iterable<L>,
  right: Iterable<R>,
  key: (x: L | R) => K | undefined,
  kind: JoinKind = 'inner',
): Array<Joined<L, R, K>> {
  const idx = new Map<K, R[]>();
  for (const r of right) {
    const k = key(r);
    if (k === undefined) continue;
    const g = idx.get(k);
    if (g) g.push(r);
    else idx.set(k, [r]);
  }
  const out: Array<Joined<L, R, K>> = [];
  for (const l of left) {
    const k = key(l);
    const matches = k === undefined ? undefined : idx.get(k);
    if (matches) for (const r of matches) out.push({ key: k, left: l, right: r });
    else if (kind === 'left') out.push({ key: k, left: l, right: undefined });
  }
  return out;
}

/** Operator form of {@link topK}: maps each incoming array (e.g. a snapshot's rows) to its top k. */
export function topKOf<T>(k: number, score: (x: T) => number): Operator<readonly T[], T[]> {
  return operator('topK', () => ({ push: (rows) => [topK(rows, k, score)], flush: () => [] }));
}

/** Operator form of {@link groupBy}: maps each incoming array to its groups. */
export function groupByOf<T, K>(key: (x: T) => K): Operator<readonly T[], Map<K, T[]>> {
  return operator('groupBy', () => ({ push: (rows) => [groupBy(rows, key)], flush: () => [] }));
}
