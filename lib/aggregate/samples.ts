/**
 * A flat sample model over any reader's snapshot: `name` + `labels` → a number or a log2
 * histogram. Alert rules and the Prometheus export both address values this way
 * (`cpu.utilisation`, `process.processes.cpuTimeNs{pid="42",comm="node"}`).
 * @module
 */

/** Label set of a sample. */
export type Labels = Record<string, string>;

/** A numeric value. */
export interface ScalarSample {
  /** Discriminator. */
  kind: 'scalar';
  /** Dotted path: `<family>.<field>[.<field>…]`. */
  name: string;
  /** Identity fields of the row it came from (pid, comm, device…). */
  labels: Labels;
  /** The value. */
  value: number;
}

/** A log2 histogram (slot `i` = `[2^i, 2^(i+1))`). */
export interface HistogramSample {
  /** Discriminator. */
  kind: 'histogram';
  /** Dotted path. */
  name: string;
  /** Identity fields. */
  labels: Labels;
  /** Slot counts. */
  slots: number[];
}

/** Either kind of sample. */
export type Sample = ScalarSample | HistogramSample;

/** Anything with a `read()` that returns an object snapshot (every `MetricReader` fits). */
export interface SnapshotSource {
  /** Reads one snapshot. */
  read(): Promise<object> | object;
}

/** Options of {@link flattenSnapshot}. */
export interface FlattenOptions {
  /** Name prefix; default the snapshot's `family` field (or none). */
  prefix?: string;
  /** Numeric fields that identify a row and become labels (default {@link DEFAULT_LABEL_KEYS}). */
  labelKeys?: readonly string[];
  /** Decides whether an array of numbers is a log2 histogram (default: key matches /hist|slots|log2/i). */
  isHistogram?: (key: string, value: readonly number[]) => boolean;
}

/** Numeric row fields treated as identity (labels) rather than values. String fields always are. */
export const DEFAULT_LABEL_KEYS: readonly string[] = [
  'pid', 'tid', 'tgid', 'ppid', 'uid', 'gid', 'cpu', 'cgroupId', 'cgroup', 'dev', 'device', 'major', 'minor',
  'port', 'sport', 'dport', 'lport', 'rport', 'localPort', 'remotePort', 'index', 'id', 'gpu', 'zone', 'syscall',
  'nr', 'family', 'af', 'state',
];

const SKIP_TOP = new Set(['family', 'backend', 'timestamp']);

/**
 * Flattens a snapshot into samples. Numbers (and bigints, booleans as 0/1) become scalars
 * named by their path; arrays of rows (objects) become labelled series, each row's strings and
 * identity numbers being its labels; arrays of numbers under a histogram-like key, or objects
 * `{ slots: number[] }`, become histograms; other arrays of numbers get an `index` label.
 */
export function flattenSnapshot(snapshot: object, opts: FlattenOptions = {}): Sample[] {
  const snap = snapshot as Record<string, unknown>;
  const prefix = opts.prefix ?? (typeof snap.family === 'string' ? snap.family : '');
  const labelKeys = new Set(opts.labelKeys ?? DEFAULT_LABEL_KEYS);
  const isHist = opts.isHistogram ?? ((k: string) => /hist|slots|log2/i.test(k));
  const out: Sample[] = [];
  const join = (p: string, k: string) => (p ? `${p}.${k}` : k);

  const walk = (v: unknown, path: string, key: string, labels: Labels): void => {
    if (typeof v === 'number') {
      if (Number.isFinite(v)) out.push({ kind: 'scalar', name: path, labels, value: v });
    } else if (typeof v === 'bigint') out.push({ kind: 'scalar', name: path, labels, value: Number(v) });
    else if (typeof v === 'boolean') out.push({ kind: 'scalar', name: path, labels, value: v ? 1 : 0 });
    else if (Array.isArray(v)) {
      if (v.every((x) => typeof x === 'number')) {
        if (v.length && isHist(key, v as number[])) out.push({ kind: 'histogram', name: path, labels, slots: [...(v as number[])] });
        else v.forEach((x, i) => walk(x, path, key, { ...labels, index: String(i) }));
      } else {
        for (const row of v) {
          if (row && typeof row === 'object' && !Array.isArray(row)) walkRow(row as Record<string, unknown>, path, labels);
        }
      }
    } else if (v instanceof Map) {
      for (const [k, x] of v) walk(x, path, key, { ...labels, key: String(k) });
    } else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (Array.isArray(o.slots) && o.slots.every((x) => typeof x === 'number')) {
        out.push({ kind: 'histogram', name: path, labels, slots: [...(o.slots as number[])] });
        return;
      }
      for (const [k, x] of Object.entries(o)) walk(x, join(path, k), k, labels);
    }
  };
  const walkRow = (row: Record<string, unknown>, path: string, parent: Labels): void => {
    const labels: Labels = { ...parent };
    const values: Array<[string, unknown]> = [];
    for (const [k, x] of Object.entries(row)) {
      if (typeof x === 'string') labels[k] = x;
      else if ((typeof x === 'number' || typeof x === 'bigint') && labelKeys.has(k)) labels[k] = String(x);
      else values.push([k, x]);
    }
    for (const [k, x] of values) walk(x, join(path, k), k, labels);
  };

  for (const [k, x] of Object.entries(snap)) {
    if (SKIP_TOP.has(k)) continue;
    walk(x, join(prefix, k), k, {});
  }
  return out;
}

/** True when every matcher label equals the sample's label (a matcher array = any of). */
export function labelsMatch(labels: Labels, matchers: Record<string, string | readonly string[]> | undefined): boolean {
  if (!matchers) return true;
  for (const [k, want] of Object.entries(matchers)) {
    const have = labels[k];
    if (have === undefined) return false;
    if (typeof want === 'string' ? have !== want : !want.includes(have)) return false;
  }
  return true;
}

/** Stable string form of a label set (sorted keys), usable as a map key. */
export function labelsKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(',');
}
