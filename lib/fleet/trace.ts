/**
 * OpenTelemetry for the fleet and the task lifecycle, through `@opentelemetry/api` only: a
 * no-op until the application installs an SDK (a tracer provider, a W3C propagator and a
 * context manager). Trace context travels in a job's data as W3C `traceparent`/`tracestate`.
 * @module
 */
import { context, propagation, trace, type Context, type Tracer } from '@opentelemetry/api';
import type { FleetJobData } from './protocol.js';

/** The tracer of smoothtask (instrumentation scope `smoothtask`). */
export function fleetTracer(): Tracer {
  return trace.getTracer('smoothtask');
}

/** `{ trace }` with the active context's W3C headers, or `{}` (no propagator registered, or no span). */
export function injectTrace(): { trace?: FleetJobData['trace'] } {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  if (typeof carrier.traceparent !== 'string' || carrier.traceparent.length > 64) return {};
  return { trace: { traceparent: carrier.traceparent, ...(typeof carrier.tracestate === 'string' && carrier.tracestate.length <= 512 ? { tracestate: carrier.tracestate } : {}) } };
}

/** The context a job's data carries (the active one when it carries none). */
export function extractTrace(t: FleetJobData['trace']): Context {
  return t ? propagation.extract(context.active(), { ...t }) : context.active();
}
