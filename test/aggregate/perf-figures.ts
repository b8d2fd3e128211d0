/**
 * Figures for docs/aggregate.md (not a test, no assertions): `node --import tsx test/aggregate/perf-figures.ts`.
 * Cost of flattening a 2000-process snapshot, one evaluation of a rate rule over its 2000 series,
 * one Prometheus scrape of it, and one p99 of a log2 histogram.
 */
import { performance } from 'node:perf_hooks';
import { Registry } from 'prom-client';
import { histogramOf, histogramPercentile, registerReader, flattenSnapshot } from '../../lib/aggregate/index.js';
import { AlertEngine } from '../../lib/notify/index.js';
const N = 2000;
let t = 0;
const snap = () => ({ family: 'cpu', backend: 'procfs', timestamp: Date.now(), processes: Array.from({ length: N }, (_, i) => ({ tgid: i + 1, comm: `p${i}`, cpuNs: t * (i + 1) * 1e3, threads: 1 })) });
const reader = { read: async () => snap() };
// flatten
let t0 = performance.now(); for (let i = 0; i < 50; i++) flattenSnapshot(snap()); const flat = (performance.now() - t0) / 50;
// rule evaluation (rate over 2000 series, 5 s window, 1 s steps)
const e = new AlertEngine({ rules: [{ name: 'R', expr: { rate: { metric: 'cpu.processes.cpuNs', window: '5s' }, op: '>', value: 1e12 } }], now: () => 0 });
e.addSource('cpu', reader);
for (let i = 0; i < 10; i++) { t = i; await e.evaluate(i * 1000); }
t0 = performance.now(); for (let i = 10; i < 40; i++) { t = i; await e.evaluate(i * 1000); } const evalMs = (performance.now() - t0) / 30;
// prometheus scrape
const reg = new Registry(); await registerReader(reg, reader, { cacheMs: 0 });
t0 = performance.now(); let bytes = 0; for (let i = 0; i < 20; i++) bytes = (await reg.metrics()).length; const scrape = (performance.now() - t0) / 20;
// percentile
const h = histogramOf(Array.from({ length: 1e5 }, () => Math.random() * 1e6));
t0 = performance.now(); let x = 0; for (let i = 0; i < 1e5; i++) x += histogramPercentile(h, 0.99); const pct = ((performance.now() - t0) / 1e5) * 1e6;
console.log(JSON.stringify({ processes: N, flattenMs: +flat.toFixed(2), rateRuleEvalMs: +evalMs.toFixed(2), promScrapeMs: +scrape.toFixed(2), promBytes: bytes, percentileNs: +pct.toFixed(0) }));
