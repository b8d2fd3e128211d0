/**
 * Log2 histograms as the kernel programs produce them: an array of slot counts where slot `i`
 * covers values in `[2^i, 2^(i+1))`. (bcc's `log2l()` puts the value 0 in slot 0 as well,
 * so slot 0 really holds `[0, 2)`; we treat it as `[1, 2)` like the rest, see docs/aggregate.md.)
 *
 * Percentiles are estimated by linear interpolation inside the slot that holds the wanted rank,
 * so the estimate always lies in the same slot as the exact value: the error is less than the
 * slot width (`2^i`), i.e. under a factor of 2 of the true value.
 * @module
 */
import { ConfigError } from '../errors/index.js';

/** Slot counts of a log2 histogram; slot `i` counts values in `[2^i, 2^(i+1))`. */
export type Log2Histogram = readonly number[];

/** Lower bound (inclusive) of slot `i`. */
export function slotLower(i: number): number {
  return 2 ** i;
}

/** Upper bound (exclusive) of slot `i`. */
export function slotUpper(i: number): number {
  return 2 ** (i + 1);
}

/** The slot a value falls in (values below 2 go to slot 0, like the kernel's log2). */
export function slotOf(value: number): number {
  if (!(value >= 2)) return 0;
  let i = Math.floor(Math.log2(value));
  // guard floating-point edge cases at exact powers of two
  if (2 ** i > value) i--;
  else if (2 ** (i + 1) <= value) i++;
  return i;
}

/** Builds a histogram from raw values (for tests and user-space sources). */
export function histogramOf(values: Iterable<number>): number[] {
  const h: number[] = [];
  for (const v of values) {
    const i = slotOf(v);
    while (h.length <= i) h.push(0);
    h[i]!++;
  }
  return h;
}

/** Total number of observations. */
export function histogramCount(h: Log2Histogram): number {
  let n = 0;
  for (const c of h) n += c;
  return n;
}

/** Slot-wise sum of histograms of possibly different lengths (merging CPUs, devices, pids). */
export function mergeHistograms(...hs: Log2Histogram[]): number[] {
  const out: number[] = [];
  for (const h of hs) {
    for (let i = 0; i < h.length; i++) out[i] = (out[i] ?? 0) + (h[i] ?? 0);
  }
  for (let i = 0; i < out.length; i++) out[i] ??= 0;
  return out;
}

/**
 * Slot-wise difference of two cumulative histograms read at two times (`cur - prev`), giving
 * the observations made between the reads. A slot that went down means the source was reset;
 * then `cur` alone is returned.
 */
export function histogramDelta(prev: Log2Histogram, cur: Log2Histogram): number[] {
  const out: number[] = [];
  for (let i = 0; i < cur.length; i++) {
    const d = (cur[i] ?? 0) - (prev[i] ?? 0);
    if (d < 0) return [...cur];
    out.push(d);
  }
  return out;
}

/**
 * Estimated `q`-quantile (`0 <= q <= 1`) of a log2 histogram, `NaN` when it is empty.
 *
 * The wanted rank is `r = max(1, ceil(q * n))` (nearest-rank definition). In the slot `i` that
 * holds rank `r`, with `before` observations in lower slots and `c` in slot `i`, the estimate
 * is `2^i + 2^i * (r - before - 0.5) / c`: the observations are assumed spread evenly over the
 * slot, each at the middle of its share. The estimate and the exact value lie in the same slot.
 */
export function histogramPercentile(h: Log2Histogram, q: number): number {
  if (!(q >= 0 && q <= 1)) throw new ConfigError(`quantile must be in [0, 1], got ${q}`, [`q: ${q}`]);
  const n = histogramCount(h);
  if (n === 0) return Number.NaN;
  const r = Math.max(1, Math.ceil(q * n));
  let before = 0;
  for (let i = 0; i < h.length; i++) {
    const c = h[i] ?? 0;
    if (c > 0 && before + c >= r) {
      const lo = slotLower(i);
      return lo + (lo * (r - before - 0.5)) / c;
    }
    before += c;
  }
  return Number.NaN; // unreachable: ranks never exceed n
}

/**
 * Estimated mean, taking each observation at the middle of its slot (`1.5 * 2^i`).
 */
export function histogramMean(h: Log2Histogram): number {
  const n = histogramCount(h);
  if (n === 0) return Number.NaN;
  let s = 0;
  for (let i = 0; i < h.length; i++) s += (h[i] ?? 0) * 1.5 * slotLower(i);
  return s / n;
}

/** One cumulative bucket. */
export interface CumulativeBucket {
  /** Upper bound (`2^(i+1)`, or `Infinity`). */
  le: number;
  /** Observations in this and lower slots. */
  count: number;
}

/**
 * Cumulative buckets as Prometheus wants them: `le` = the slot's upper bound, so slot `i`
 * becomes the bucket `le = 2^(i+1)`, plus `+Inf`. (Values equal to `2^(i+1)` belong to the next
 * slot, so Prometheus' `le` (≤) is off by that single point; documented.)
 */
export function cumulativeBuckets(h: Log2Histogram): CumulativeBucket[] {
  const out: CumulativeBucket[] = [];
  let cum = 0;
  for (let i = 0; i < h.length; i++) {
    cum += h[i] ?? 0;
    out.push({ le: slotUpper(i), count: cum });
  }
  out.push({ le: Number.POSITIVE_INFINITY, count: cum });
  return out;
}
