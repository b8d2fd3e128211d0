/**
 * `smoothtask/aggregate`: composable operators over snapshots and event streams (filter, map,
 * rate, delta, EWMA, windows, top-k, group-by, join), log2-histogram percentiles, load averages
 * (kernel-exact and per-second), a flat sample model over any reader, and the Prometheus export.
 * @module
 */
export { operator, pipe, transform, transformSync, transformAsync, filter, map, flatMap } from './operators.js';
export type { Operator, Stage } from './operators.js';
export {
  counterIncrease,
  ratePerSecond,
  increaseOver,
  rateOver,
  ewmaAlpha,
  ewmaStep,
  ewma,
  rate,
  delta,
  hoppingWindow,
  tumblingWindow,
  slidingWindow,
} from './series.js';
export type { Point, EwmaOptions, SeriesPoint, RatePoint, SeriesOptions, Window, WindowOptions } from './series.js';
export {
  slotLower,
  slotUpper,
  slotOf,
  histogramOf,
  histogramCount,
  mergeHistograms,
  histogramDelta,
  histogramPercentile,
  histogramMean,
  cumulativeBuckets,
} from './histogram.js';
export type { Log2Histogram, CumulativeBucket } from './histogram.js';
export { topK, groupBy, aggregateBy, sumBy, keys, join, topKOf, groupByOf } from './collections.js';
export type { JoinKind, Joined } from './collections.js';
export {
  FSHIFT,
  FIXED_1,
  EXP_1,
  EXP_5,
  EXP_15,
  LOAD_PERIOD_MS,
  calcLoad,
  calcLoadN,
  fixedPowerInt,
  formatFixedLoad,
  KernelLoadAverage,
  FloatLoadAverage,
  parseLoadavg,
  parseProcStat,
  cpuUtilisation,
  procStatLoadSource,
  LoadAverageSampler,
} from './loadavg.js';
export type { ParsedLoadavg, ParsedProcStat, CurrentTriple, KernelTriple, LoadTriple, LoadSample, CpuTimes, LoadAverageSamplerOptions, LoadAverages, TickInfo } from './loadavg.js';
export { flattenSnapshot, labelsMatch, labelsKey, DEFAULT_LABEL_KEYS } from './samples.js';
export type { Labels, ScalarSample, HistogramSample, Sample, SnapshotSource, FlattenOptions } from './samples.js';
export { promName, registerSamples, registerReader, createMetricsHandler, BUILTIN_COUNTERS } from './prometheus.js';
export type { PromScalarType, PrometheusExportOptions, PrometheusBinding } from './prometheus.js';
