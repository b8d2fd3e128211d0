/**
 * Time-series math: counter increases with resets, per-second rates, deltas, time-aware EWMA
 * and time windows. Pure functions first; each has a keyed streaming {@link Operator} form.
 * Times are milliseconds (any monotonic origin), rates are per second.
 * @module
 */
import { operator, type Operator } from './operators.js';
import { ConfigError } from '../errors/index.js';

/** A timestamped value. */
export interface Point {
  /** Time in milliseconds. */
  time: number;
  /** The value. */
  value: number;
}

/**
 * Increase of a monotonic counter from `prev` to `cur`. A decrease means the counter was reset
 * (process restarted, wrap handled upstream) and counted from zero, so the increase is `cur`,
 * which is what Prometheus' `rate()` assumes too.
 */
export function counterIncrease(prev: number, cur: number): number {
  return cur >= prev ? cur - prev : cur;
}

/**
 * Per-second rate of a counter between two points (resets handled by {@link counterIncrease}).
 * Returns `NaN` when the points are not strictly increasing in time.
 */
export function ratePerSecond(prev: Point, cur: Point): number {
  const dt = cur.time - prev.time;
  if (!(dt > 0)) return Number.NaN;
  return (counterIncrease(prev.value, cur.value) * 1000) / dt;
}

/**
 * Total counter increase over a series of points in time order (each reset handled).
 */
export function increaseOver(points: readonly Point[]): number {
  let inc = 0;
  for (let i = 1; i < points.length; i++) inc += counterIncrease(points[i - 1]!.value, points[i]!.value);
  return inc;
}

/**
 * Average per-second rate over a series of counter points (increase / elapsed time), or `NaN`
 * with fewer than two points or no elapsed time. Like Prometheus' `rate()` without its
 * extrapolation to the window edges.
 */
export function rateOver(points: readonly Point[]): number {
  if (points.length < 2) return Number.NaN;
  const dt = points[points.length - 1]!.time - points[0]!.time;
  if (!(dt > 0)) return Number.NaN;
  return (increaseOver(points) * 1000) / dt;
}

/**
 * The smoothing factor of a time-aware EWMA for a gap of `dtMs`: `1 - exp(-dt / tau)`.
 * Irregular sampling then weighs each sample by the time it stands for, and a series
 * sampled twice as often converges at the same speed in wall time.
 */
export function ewmaAlpha(dtMs: number, tauMs: number): number {
  if (!(dtMs > 0)) return 0;
  return 1 - Math.exp(-dtMs / tauMs);
}

/** One EWMA step: `prev + alpha * (value - prev)` with {@link ewmaAlpha}. */
export function ewmaStep(prev: number, value: number, dtMs: number, tauMs: number): number {
  return prev + ewmaAlpha(dtMs, tauMs) * (value - prev);
}

/** Options of {@link ewma}. Give `tauMs` (time constant) or `halfLifeMs`. */
export interface EwmaOptions<T> {
  /** The value to smooth. */
  value: (x: T) => number;
  /** The item's time in ms. */
  time: (x: T) => number;
  /** Series key: separate state per key (pid, device…). Default: one series. */
  key?: (x: T) => string;
  /** Time constant in ms (63% of a step after tau). */
  tauMs?: number;
  /** Half-life in ms (50% of a step after it); `tau = halfLife / ln 2`. */
  halfLifeMs?: number;
}

/** What the keyed operators emit: the computed value, its series key and the source item. */
export interface SeriesPoint<T> {
  /** Series key (`''` without a key function). */
  key: string;
  /** Time in ms of the item that produced this point. */
  time: number;
  /** The computed value (rate per second, delta, smoothed value). */
  value: number;
  /** The item that produced this point. */
  item: T;
}

/** A rate point also says whether a counter reset was detected. */
export interface RatePoint<T> extends SeriesPoint<T> {
  /** True when the counter went down since the previous item (reset). */
  reset: boolean;
  /** Counter increase since the previous item of the same series. */
  increase: number;
}

function tauOf(o: { tauMs?: number; halfLifeMs?: number }): number {
  if (o.tauMs !== undefined && o.tauMs > 0) return o.tauMs;
  if (o.halfLifeMs !== undefined && o.halfLifeMs > 0) return o.halfLifeMs / Math.LN2;
  throw new ConfigError('ewma: give tauMs or halfLifeMs > 0', ['tauMs/halfLifeMs: missing or not > 0']);
}

/**
 * Time-aware exponentially weighted moving average per series. The first item of a series
 * initialises it; out-of-order items (time not after the previous) leave it unchanged.
 */
export function ewma<T>(opts: EwmaOptions<T>): Operator<T, SeriesPoint<T>> {
  const tau = tauOf(opts);
  const key = opts.key ?? (() => '');
  return operator('ewma', () => {
    const state = new Map<string, { t: number; v: number }>();
    return {
      push(item) {
        const k = key(item);
        const t = opts.time(item);
        const v = opts.value(item);
        const s = state.get(k);
        if (!s) {
          state.set(k, { t, v });
          return [{ key: k, time: t, value: v, item }];
        }
        if (t > s.t) {
          s.v = ewmaStep(s.v, v, t - s.t, tau);
          s.t = t;
        }
        return [{ key: k, time: t, value: s.v, item }];
      },
      flush: () => [],
    };
  });
}

/** Options of {@link rate} and {@link delta}. */
export interface SeriesOptions<T> {
  /** The counter or gauge value. */
  value: (x: T) => number;
  /** The item's time in ms. */
  time: (x: T) => number;
  /** Series key: separate state per key. Default: one series. */
  key?: (x: T) => string;
}

/**
 * Per-second rate of a counter per series; the first item of a series emits nothing.
 * A decrease is a reset (see {@link counterIncrease}). Items not later than the previous
 * one of their series are dropped.
 */
export function rate<T>(opts: SeriesOptions<T>): Operator<T, RatePoint<T>> {
  const key = opts.key ?? (() => '');
  return operator('rate', () => {
    const last = new Map<string, Point>();
    return {
      push(item) {
        const k = key(item);
        const cur = { time: opts.time(item), value: opts.value(item) };
        const prev = last.get(k);
        if (prev && !(cur.time > prev.time)) return [];
        last.set(k, cur);
        if (!prev) return [];
        const increase = counterIncrease(prev.value, cur.value);
        return [
          {
            key: k,
            time: cur.time,
            value: (increase * 1000) / (cur.time - prev.time),
            item,
            reset: cur.value < prev.value,
            increase,
          },
        ];
      },
      flush: () => [],
    };
  });
}

/**
 * Difference from the previous item of the same series (a gauge's change; negative allowed).
 * With `counter: true`, a decrease counts as a reset like {@link rate}.
 */
export function delta<T>(opts: SeriesOptions<T> & { counter?: boolean }): Operator<T, SeriesPoint<T>> {
  const key = opts.key ?? (() => '');
  return operator('delta', () => {
    const last = new Map<string, number>();
    return {
      push(item) {
        const k = key(item);
        const v = opts.value(item);
        const prev = last.get(k);
        last.set(k, v);
        if (prev === undefined) return [];
        const d = opts.counter ? counterIncrease(prev, v) : v - prev;
        return [{ key: k, time: opts.time(item), value: d, item }];
      },
      flush: () => [],
    };
  });
}

/** A closed time window and the items that fell in it. */
export interface Window<T> {
  /** Inclusive start, ms. */
  start: number;
  /** Exclusive end, ms. */
  end: number;
  /** Items with `start <= time < end`, in arrival order. */
  items: T[];
}

/** Options of {@link hoppingWindow} and {@link tumblingWindow}. */
export interface WindowOptions<T> {
  /** The item's time in ms. Items must arrive in non-decreasing time order. */
  time: (x: T) => number;
  /** Window length in ms. */
  sizeMs: number;
  /** Emit windows that received no item (default false). */
  emitEmpty?: boolean;
}

/**
 * Hopping windows `[k*hop, k*hop + size)` aligned to time 0. A window is emitted once an item
 * at or after its end arrives (or at flush). An item older than every open window is dropped
 * (the stream must be time-ordered). `hopMs === sizeMs` gives tumbling windows; `hopMs < sizeMs`
 * gives overlapping (sliding-by-hop) windows.
 */
export function hoppingWindow<T>(opts: WindowOptions<T> & { hopMs: number }): Operator<T, Window<T>> {
  const { sizeMs, hopMs } = opts;
  if (!(sizeMs > 0) || !(hopMs > 0)) throw new ConfigError('window sizeMs and hopMs must be > 0', [`sizeMs: ${sizeMs}`, `hopMs: ${hopMs}`]);
  return operator('window', () => {
    const open = new Map<number, Window<T>>(); // by start
    let emittedUpTo = -Infinity; // every window with end <= this is emitted
    let maxStart = -Infinity;
    const closeBefore = (t: number): Window<T>[] => {
      const out: Window<T>[] = [];
      if (opts.emitEmpty && Number.isFinite(maxStart)) {
        // create the empty windows between the last one seen and t so they are emitted too
        for (let s = maxStart + hopMs; s + sizeMs <= t; s += hopMs) {
          if (!open.has(s)) open.set(s, { start: s, end: s + sizeMs, items: [] });
          maxStart = s;
        }
      }
      for (const w of [...open.values()].sort((a, b) => a.start - b.start)) {
        if (w.end <= t) {
          out.push(w);
          open.delete(w.start);
          emittedUpTo = Math.max(emittedUpTo, w.end);
        }
      }
      return out;
    };
    return {
      push(item) {
        const t = opts.time(item);
        const out = closeBefore(t);
        // windows containing t: starts s = k*hop with s <= t < s + size
        const last = Math.floor(t / hopMs) * hopMs;
        for (let s = last; s > t - sizeMs; s -= hopMs) {
          if (s + sizeMs <= emittedUpTo) break;
          let w = open.get(s);
          if (!w) {
            w = { start: s, end: s + sizeMs, items: [] };
            open.set(s, w);
          }
          w.items.push(item);
          if (s > maxStart) maxStart = s;
        }
        return out;
      },
      flush() {
        const out = [...open.values()].sort((a, b) => a.start - b.start);
        open.clear();
        return out;
      },
    };
  });
}

/** Non-overlapping windows `[k*size, (k+1)*size)`; see {@link hoppingWindow}. */
export function tumblingWindow<T>(opts: WindowOptions<T>): Operator<T, Window<T>> {
  return hoppingWindow({ ...opts, hopMs: opts.sizeMs });
}

/**
 * Sliding window: after every item, emits the items of the last `sizeMs` ending at that item,
 * i.e. with `time > t - size` (so the window is `(t - size, t]`).
 */
export function slidingWindow<T>(opts: { time: (x: T) => number; sizeMs: number }): Operator<T, Window<T>> {
  if (!(opts.sizeMs > 0)) throw new ConfigError('window sizeMs must be > 0', [`sizeMs: ${opts.sizeMs}`]);
  return operator('slidingWindow', () => {
    const buf: T[] = [];
    return {
      push(item) {
        const t = opts.time(item);
        buf.push(item);
        while (buf.length && opts.time(buf[0]!) <= t - opts.sizeMs) buf.shift();
        return [{ start: t - opts.sizeMs, end: t, items: [...buf] }];
      },
      flush: () => [],
    };
  });
}
