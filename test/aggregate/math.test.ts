import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/errors/index.js';
import {
  counterIncrease,
  ewma,
  ewmaAlpha,
  filter,
  groupBy,
  histogramCount,
  histogramDelta,
  histogramOf,
  histogramPercentile,
  hoppingWindow,
  join,
  keys,
  map,
  mergeHistograms,
  pipe,
  rate,
  rateOver,
  slidingWindow,
  slotLower,
  slotOf,
  slotUpper,
  topK,
  transform,
  tumblingWindow,
  delta,
} from 'smoothtask/aggregate';

const values = fc.array(fc.integer({ min: 1, max: 2 ** 40 }), { minLength: 1, maxLength: 400 });

describe('log2 histograms', () => {
  it('slotOf puts every value in [2^i, 2^(i+1))', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 52 }), (v) => {
        const i = slotOf(v);
        expect(v).toBeGreaterThanOrEqual(slotLower(i));
        expect(v).toBeLessThan(slotUpper(i));
      }),
    );
    // exact powers of two start their own slot
    for (let i = 0; i < 60; i++) expect(slotOf(2 ** i)).toBe(i);
  });

  it('percentile estimates lie in the slot of the exact nearest-rank value', () => {
    fc.assert(
      fc.property(values, fc.double({ min: 0, max: 1, noNaN: true }), (vs, q) => {
        const sorted = [...vs].sort((a, b) => a - b);
        const exact = sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1]!;
        const est = histogramPercentile(histogramOf(vs), q);
        const i = slotOf(exact);
        expect(est).toBeGreaterThanOrEqual(slotLower(i));
        expect(est).toBeLessThan(slotUpper(i));
        // hence relative error under a factor of 2
        expect(Math.abs(est - exact)).toBeLessThan(slotLower(i));
      }),
      { numRuns: 300 },
    );
  });

  it('percentiles are monotonic in q', () => {
    fc.assert(
      fc.property(values, fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), (vs, a, b) => {
        const h = histogramOf(vs);
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        expect(histogramPercentile(h, lo)).toBeLessThanOrEqual(histogramPercentile(h, hi));
      }),
    );
  });

  it('empty histogram gives NaN; bad q throws', () => {
    expect(histogramPercentile([0, 0], 0.5)).toBeNaN();
    expect(() => histogramPercentile([1], 1.5)).toThrow(ConfigError);
  });

  it('merge equals the histogram of the concatenated data; delta inverts it', () => {
    fc.assert(
      fc.property(values, values, (a, b) => {
        const m = mergeHistograms(histogramOf(a), histogramOf(b));
        expect(m).toEqual(histogramOf([...a, ...b]));
        expect(histogramCount(m)).toBe(a.length + b.length);
        const d = histogramDelta(histogramOf(a), m);
        expect(mergeHistograms(d)).toEqual(mergeHistograms(histogramOf(b), new Array(m.length).fill(0)));
      }),
    );
  });
});

describe('rate and delta', () => {
  // a counter that increments by known amounts and is reset (restarts from 0) at random points
  const steps = fc.array(fc.record({ inc: fc.integer({ min: 0, max: 1e6 }), reset: fc.boolean(), dt: fc.integer({ min: 1, max: 5000 }) }), {
    minLength: 1,
    maxLength: 100,
  });

  it('sum of rate*dt equals the true increase, resets included', () => {
    fc.assert(
      fc.property(steps, (st) => {
        let t = 0;
        let c = 1000;
        let trueInc = 0;
        const pts = [{ time: t, value: c }];
        for (const s of st) {
          t += s.dt;
          // after a reset the counter restarts from 0 and counts s.inc (must be below the old value
          // for the reset to be visible, which is what a real reset looks like)
          if (s.reset && s.inc < c) c = s.inc;
          else c += s.inc;
          trueInc += s.inc;
          pts.push({ time: t, value: c });
        }
        const out = [...transform(pts, rate({ value: (p) => p.value, time: (p) => p.time }))];
        expect(out).toHaveLength(st.length);
        const sum = out.reduce((a, p, i) => a + (p.value * (pts[i + 1]!.time - pts[i]!.time)) / 1000, 0);
        expect(sum).toBeCloseTo(trueInc, 3);
        expect(rateOver(pts)).toBeCloseTo((trueInc * 1000) / t, 6);
      }),
    );
  });

  it('flags resets and keys series apart', () => {
    const pts = [
      { k: 'a', t: 0, v: 10 },
      { k: 'b', t: 0, v: 100 },
      { k: 'a', t: 1000, v: 20 },
      { k: 'b', t: 1000, v: 5 },
    ];
    const out = [...transform(pts, rate({ key: (p) => p.k, value: (p) => p.v, time: (p) => p.t }))];
    expect(out.map((p) => [p.key, p.value, p.reset])).toEqual([
      ['a', 10, false],
      ['b', 5, true],
    ]);
    expect(counterIncrease(100, 5)).toBe(5);
    const d = [...transform(pts, delta({ key: (p) => p.k, value: (p) => p.v, time: (p) => p.t }))];
    expect(d.map((p) => p.value)).toEqual([10, -95]);
  });
});

describe('EWMA', () => {
  it('matches a straightforward reference implementation for irregular sampling', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ dt: fc.integer({ min: 1, max: 10_000 }), v: fc.double({ min: -1e6, max: 1e6, noNaN: true }) }), { minLength: 1, maxLength: 200 }),
        fc.integer({ min: 1, max: 100_000 }),
        (xs, tau) => {
          let t = 0;
          const pts = xs.map((x) => ({ t: (t += x.dt), v: x.v }));
          const out = [...transform(pts, ewma({ tauMs: tau, value: (p) => p.v, time: (p) => p.t }))];
          let ref = pts[0]!.v;
          for (let i = 1; i < pts.length; i++) {
            const a = 1 - Math.exp(-(pts[i]!.t - pts[i - 1]!.t) / tau);
            ref = a * pts[i]!.v + (1 - a) * ref;
            expect(out[i]!.value).toBeCloseTo(ref, 6);
          }
        },
      ),
    );
  });

  it('is sampling-rate independent: a step reaches 1 - 1/e after tau whatever the interval', () => {
    for (const dt of [10, 100, 1000]) {
      const pts = [{ t: 0, v: 0 }];
      for (let t = dt; t <= 10_000; t += dt) pts.push({ t, v: 1 });
      const out = [...transform(pts, ewma({ tauMs: 10_000, value: (p) => p.v, time: (p) => p.t }))];
      expect(out.at(-1)!.value).toBeCloseTo(1 - Math.exp(-1), 9);
    }
    expect(ewmaAlpha(0, 100)).toBe(0);
  });

  it('half-life halves the distance', () => {
    const out = [...transform([{ t: 0, v: 0 }, { t: 500, v: 1 }], ewma({ halfLifeMs: 500, value: (p) => p.v, time: (p) => p.t }))];
    expect(out[1]!.value).toBeCloseTo(0.5, 12);
  });
});

describe('windows', () => {
  const times = fc.array(fc.integer({ min: 0, max: 100_000 }), { maxLength: 200 }).map((a) => a.sort((x, y) => x - y));

  it('tumbling windows partition the items exactly', () => {
    fc.assert(
      fc.property(times, fc.integer({ min: 1, max: 20_000 }), (ts, size) => {
        const ws = [...transform(ts, tumblingWindow({ sizeMs: size, time: (t) => t }))];
        expect(ws.flatMap((w) => w.items)).toEqual(ts);
        for (const w of ws) {
          expect(w.end - w.start).toBe(size);
          expect(w.start % size).toBe(0);
          for (const t of w.items) expect(t >= w.start && t < w.end).toBe(true);
        }
      }),
    );
  });

  it('hopping windows hold exactly the items of [start, end) (brute force)', () => {
    fc.assert(
      fc.property(times, fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 4 }), (ts, hop, mult) => {
        const size = hop * mult;
        const ws = [...transform(ts, hoppingWindow({ sizeMs: size, hopMs: hop, time: (t) => t }))];
        for (const w of ws) expect(w.items).toEqual(ts.filter((t) => t >= w.start && t < w.end));
        // every item appears in exactly `mult` windows (one per overlapping hop)
        const count = new Map<number, number>();
        for (const w of ws) for (const t of w.items) count.set(t, (count.get(t) ?? 0) + 1);
        const distinct = new Map<number, number>();
        for (const t of ts) distinct.set(t, (distinct.get(t) ?? 0) + 1);
        for (const [t, n] of distinct) expect(count.get(t)).toBe(n * mult);
      }),
    );
  });

  it('emitEmpty emits the gaps', () => {
    const ws = [...transform([0, 35], tumblingWindow({ sizeMs: 10, time: (t) => t, emitEmpty: true }))];
    expect(ws.map((w) => [w.start, w.items.length])).toEqual([
      [0, 1],
      [10, 0],
      [20, 0],
      [30, 1],
    ]);
  });

  it('sliding window holds (t - size, t]', () => {
    fc.assert(
      fc.property(times, fc.integer({ min: 1, max: 20_000 }), (ts, size) => {
        const ws = [...transform(ts, slidingWindow({ sizeMs: size, time: (t) => t }))];
        ws.forEach((w, i) => {
          expect(w.items).toEqual(ts.slice(0, i + 1).filter((t) => t > ts[i]! - size));
        });
      }),
    );
  });

  it('works over async iterables and composes with pipe', async () => {
    async function* src() {
      for (let i = 0; i < 10; i++) yield { t: i * 100, v: i * 10, pid: i % 2 };
    }
    const op = pipe(
      filter((x: { t: number; v: number; pid: number }) => x.pid === 0),
      rate({ value: (x) => x.v, time: (x) => x.t }),
      map((p) => p.value),
    );
    const out: number[] = [];
    for await (const v of transform(src(), op)) out.push(v);
    expect(out).toEqual([100, 100, 100, 100]);
  });

  it('pipe flushes an open window through later stages', () => {
    const op = pipe(tumblingWindow({ sizeMs: 10, time: (t: number) => t }), map((w) => w.items.length));
    expect([...transform([1, 2, 15], op)]).toEqual([2, 1]);
  });
});

describe('top-k, group-by, join', () => {
  it('topK equals the first k of a stable sort by score', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 50 })), fc.integer({ min: 0, max: 30 }), (xs, k) => {
        const rows = xs.map((s, i) => ({ s, i }));
        const ref = [...rows].sort((a, b) => b.s - a.s || a.i - b.i).slice(0, k);
        expect(topK(rows, k, (r) => r.s)).toEqual(ref);
      }),
    );
  });

  it('groupBy and join by pid agree with nested loops', () => {
    const row = fc.record({ pid: fc.integer({ min: 1, max: 8 }), x: fc.integer() });
    fc.assert(
      fc.property(fc.array(row), fc.array(row), (l, r) => {
        const g = groupBy(l, keys.pid);
        for (const [pid, rows] of g) expect(rows).toEqual(l.filter((x) => x.pid === pid));
        const j = join(l, r, keys.pid);
        const ref = l.flatMap((a) => r.filter((b) => b.pid === a.pid).map((b) => ({ key: a.pid, left: a, right: b })));
        expect(j).toEqual(ref);
        const lj = join(l, r, keys.pid, 'left');
        expect(lj.length).toBe(ref.length + l.filter((a) => !r.some((b) => b.pid === a.pid)).length);
      }),
    );
  });

  it('key functions read the usual spellings', () => {
    expect(keys.pid({ tgid: 5, pid: 6 })).toBe(5);
    expect(keys.processName({ comm: 'node' })).toBe('node');
    expect(keys.cgroup({ cgroupId: 123n })).toBe('123');
    expect(keys.container({ containerId: 'abcd' })).toBe('abcd');
    expect(keys.device({ dev: 'sda' })).toBe('sda');
    expect(keys.pid({})).toBeUndefined();
  });
});
