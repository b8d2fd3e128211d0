/**
 * Prometheus export: any reader's values registered with a `prom-client` registry as
 * counters, gauges and histograms (log2 slots as `le` buckets), so a service serves them on
 * `/metrics` with `registry.metrics()`.
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Metric, Registry } from 'prom-client';
import { cumulativeBuckets, histogramMean, histogramCount } from './histogram.js';
import { flattenSnapshot, type FlattenOptions, type Labels, type Sample, type SnapshotSource } from './samples.js';

/** Prometheus metric type chosen for a scalar sample. */
export type PromScalarType = 'counter' | 'gauge';

/**
 * Dotted names of the built-in metric families' cumulative fields (CPU time, context switches,
 * faults, bytes, operations, syscall counts): exported as Prometheus counters by default, so
 * `rate()` works on them. A series whose entry the kernel map evicted starts again from zero,
 * which Prometheus reads as a counter reset. Left out on purpose: `network.processes.*`, sums
 * over the live connections that drop when a closed connection is forgotten (not monotonic).
 */
export const BUILTIN_COUNTERS: ReadonlySet<string> = new Set([
  ...['processes', 'threads'].flatMap((a) => ['cpuNs', 'voluntary', 'involuntary', 'runqNs', 'runqCount'].map((f) => `cpu.${a}.${f}`)),
  'cpu.cgroups.cpuNs',
  ...['cpuNs', 'userNs', 'systemNs', 'voluntary', 'involuntary', 'minorFaults', 'majorFaults', 'faultsTraced'].map((f) => `process.processes.${f}`),
  ...['bytesSent', 'bytesReceived', 'retransmits'].map((f) => `network.connections.${f}`),
  ...['readOps', 'writeOps', 'otherOps', 'readBytes', 'writeBytes', 'totalLatencyNs'].map((f) => `disk.devices.${f}`),
  ...['readOps', 'writeOps', 'readBytes', 'writeBytes'].map((f) => `disk.processes.${f}`),
  ...['count', 'errors', 'totalNs'].map((f) => `syscalls.syscalls.${f}`),
]);

/** Options of {@link registerReader} and {@link registerSamples}. */
export interface PrometheusExportOptions {
  /** Name prefix (default `smoothtask`). */
  prefix?: string;
  /** Type per dotted sample name (`cpu.processes.cpuTimeNs: 'counter'`); wins over {@link isCounter}. */
  types?: Record<string, PromScalarType>;
  /**
   * Decides which scalars are counters. The default: the built-in families' cumulative fields
   * ({@link BUILTIN_COUNTERS}), and names ending in `Total`, `Count`, `_total` or `_count`;
   * everything else is a gauge. Type your own readers' cumulative fields with
   * {@link PrometheusExportOptions.types} or this function.
   */
  isCounter?: (name: string) => boolean;
  /** Help text per dotted sample name. */
  help?: Record<string, string>;
  /** Reuse a snapshot read within this many ms (one read serves every family of a scrape; default 500). */
  cacheMs?: number;
  /** Passed to {@link flattenSnapshot}. */
  flatten?: FlattenOptions;
  /** Constant labels added to every series (e.g. `{ node: 'a1' }`). */
  constLabels?: Labels;
}

/** Handle returned by {@link registerReader}. */
export interface PrometheusBinding {
  /** Prometheus names registered so far (new ones appear after the scrape that first sees them). */
  readonly metricNames: readonly string[];
  /** Removes every metric this binding registered from the registry. */
  unregister(): void;
}

/** Converts a dotted camelCase sample name to a Prometheus name: `cpu.runQueueNs` → `prefix_cpu_run_queue_ns`. */
export function promName(prefix: string, dotted: string): string {
  const snake = dotted
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9_]+/g, '_')
    .toLowerCase();
  const n = prefix ? `${prefix}_${snake}` : snake;
  return /^[a-zA-Z_:]/.test(n) ? n : `_${n}`;
}

type PromValue = { value: number; labels: Record<string, string | number>; metricName?: string };

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  dotted: string;
}

/**
 * Registers values produced by `collect()` (called at most once per scrape, see `cacheMs`).
 * Families are discovered from the samples: call it after the first samples exist, or the
 * families appear from the second scrape on.
 */
export async function registerSamples(
  registry: Registry,
  collect: () => Promise<Sample[]> | Sample[],
  opts: PrometheusExportOptions = {},
): Promise<PrometheusBinding> {
  const prefix = opts.prefix ?? 'smoothtask';
  const cacheMs = opts.cacheMs ?? 500;
  const isCounter = opts.isCounter ?? ((n: string) => BUILTIN_COUNTERS.has(n) || /(Total|Count|_total|_count)$/.test(n));
  const constLabels = opts.constLabels ?? {};
  let cache: { at: number; p: Promise<Sample[]> } | undefined;
  const families = new Map<string, Family>(); // by prom name
  const registered: string[] = [];

  const samples = (): Promise<Sample[]> => {
    const now = Date.now();
    if (!cache || now - cache.at > cacheMs) {
      cache = { at: now, p: Promise.resolve().then(collect) };
      cache.p.then(discover, () => undefined);
    }
    return cache.p;
  };

  const familyOf = (s: Sample): Family => {
    const type = s.kind === 'histogram' ? 'histogram' : (opts.types?.[s.name] ?? (isCounter(s.name) ? 'counter' : 'gauge'));
    let name = promName(prefix, s.name);
    if (type === 'counter' && !name.endsWith('_total')) name += '_total';
    return { name, type, dotted: s.name, help: opts.help?.[s.name] ?? `smoothtask ${s.name} (${type})` };
  };

  const valuesOf = (fam: Family, all: Sample[]): PromValue[] => {
    const vals: PromValue[] = [];
    for (const s of all) {
      if (s.name !== fam.dotted) continue;
      const labels = { ...s.labels, ...constLabels };
      if (s.kind === 'scalar') {
        if (fam.type !== 'histogram') vals.push({ value: s.value, labels });
        continue;
      }
      if (fam.type !== 'histogram') continue;
      for (const b of cumulativeBuckets(s.slots)) {
        vals.push({ metricName: `${fam.name}_bucket`, labels: { ...labels, le: b.le === Infinity ? '+Inf' : b.le }, value: b.count });
      }
      const n = histogramCount(s.slots);
      vals.push({ metricName: `${fam.name}_sum`, labels, value: n ? histogramMean(s.slots) * n : 0 });
      vals.push({ metricName: `${fam.name}_count`, labels, value: n });
    }
    return vals;
  };

  const register = (fam: Family): void => {
    if (families.has(fam.name) || registry.getSingleMetric(fam.name)) return;
    families.set(fam.name, fam);
    const get = async () => ({
      name: fam.name,
      help: fam.help,
      type: fam.type,
      aggregator: 'sum' as const,
      values: valuesOf(fam, await samples()),
    });
    // prom-client's registry only needs name/help/type/aggregator/get(); its TS type names its
    // own classes, hence the cast. A custom metric lets us set histogram buckets directly.
    const metric = { name: fam.name, help: fam.help, type: fam.type, aggregator: 'sum', get, reset: () => undefined, collect: () => undefined };
    registry.registerMetric(metric as unknown as Metric);
    registered.push(fam.name);
  };

  function discover(all: Sample[]): void {
    for (const s of all) register(familyOf(s));
  }

  discover(await samples());
  return {
    get metricNames() {
      return [...registered];
    },
    unregister() {
      for (const n of registered) registry.removeSingleMetric(n);
      registered.length = 0;
      families.clear();
    },
  };
}

/**
 * Registers a reader's values: every scrape reads one snapshot (shared by all its families)
 * and flattens it with {@link flattenSnapshot}.
 *
 * @example
 * ```ts
 * const registry = new Registry();
 * await registerReader(registry, cpuReader, { types: { 'cpu.processes.cpuTimeNs': 'counter' } });
 * http.createServer(async (_q, r) => r.end(await registry.metrics()));
 * ```
 */
export function registerReader(registry: Registry, reader: SnapshotSource, opts: PrometheusExportOptions = {}): Promise<PrometheusBinding> {
  return registerSamples(registry, async () => flattenSnapshot(await reader.read(), opts.flatten), opts);
}

/**
 * A `node:http` handler answering GET/HEAD with `registry.metrics()` in the registry's
 * content type (mount it on `/metrics`; it does not route).
 */
export function createMetricsHandler(registry: Registry): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType, 'content-length': Buffer.byteLength(text) });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(e instanceof Error ? e.message : String(e)),
    );
  };
}
