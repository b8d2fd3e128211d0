/**
 * Health checks for the library's own components, to pass in `createNodeStatus({ checks })`.
 * @module
 */
import type { HealthCheck, HealthCheckResult, HealthLevel } from './status.js';

/** What {@link alertEngineCheck} reads from an `AlertEngine` (structural, no import cycle). */
export interface AlertEngineLike {
  /** True once closed. */
  readonly closed: boolean;
  /** Sources whose last read failed, with the message. */
  readonly failingSources: ReadonlyMap<string, string>;
  /** Counters (only `notifierErrors` is read). */
  readonly stats: { readonly notifierErrors: number };
  /** Current alerts (state and labels are read). */
  alerts(): Array<{ state: string; labels: Record<string, string> }>;
}

/** What {@link loadSamplerCheck} reads from a `LoadAverageSampler`. */
export interface LoadSamplerLike {
  /** True once stopped. */
  readonly closed: boolean;
  /** Current counters (errors and samples are read). */
  current(): { errors: number; samples: number };
}

/**
 * Health of an alert engine: `degraded` while a source fails to read or after notifier errors
 * (since the previous check), and `firingLevel` (default `degraded`) while an alert with
 * `severity: critical` fires.
 */
export function alertEngineCheck(engine: AlertEngineLike, opts: { firingLevel?: HealthLevel } = {}): HealthCheck {
  let seenNotifierErrors = engine.stats.notifierErrors;
  return () => {
    const out: HealthCheckResult[] = [];
    if (engine.closed) out.push({ status: 'degraded', reason: 'alert engine closed' });
    for (const [name, msg] of engine.failingSources) out.push({ status: 'degraded', reason: `metrics source ${name}: ${msg}` });
    const ne = engine.stats.notifierErrors;
    if (ne > seenNotifierErrors) out.push({ status: 'degraded', reason: `${ne - seenNotifierErrors} notification(s) failed` });
    seenNotifierErrors = ne;
    for (const a of engine.alerts()) {
      if (a.state === 'firing' && a.labels.severity === 'critical') {
        out.push({ status: opts.firingLevel ?? 'degraded', reason: `alert ${a.labels.alertname ?? '?'} firing` });
      }
    }
    return out.length ? out : { status: 'ok' };
  };
}

/** Health of a load-average sampler: `degraded` when closed or when its source keeps failing. */
export function loadSamplerCheck(sampler: LoadSamplerLike): HealthCheck {
  let lastErrors = 0;
  return () => {
    const c = sampler.current();
    const fresh = c.errors - lastErrors;
    lastErrors = c.errors;
    if (sampler.closed) return { status: 'degraded', reason: 'load sampler stopped' };
    if (fresh > 0) return { status: 'degraded', reason: `load sampler: ${fresh} failed sample(s)` };
    return { status: 'ok' };
  };
}
