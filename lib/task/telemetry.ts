/**
 * OpenTelemetry of the task lifecycle, through `@opentelemetry/api` only (a no-op until the
 * application installs an SDK):
 *
 * - a span `smoothtask.task` per task, from its submit to its outcome, child of the context that
 *   was active at `submit()` (so a fleet job's task joins the producer's trace), with an event
 *   per transition (`queued`, `starting`, `running`, `retrying`, ...);
 * - a span `smoothtask.task.attempt` per attempt, child of the task span; the executor runs in
 *   its context, so what the executor traces nests under it;
 * - metrics (meter `smoothtask`): `smoothtask.tasks.finished` (counter, by kind and state),
 *   `smoothtask.tasks.running` (up-down counter of attempts, by kind),
 *   `smoothtask.task.duration` (histogram, ms, submit to outcome, by kind and state).
 * @module
 * @internal
 */
import { context, metrics, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';
import { isFinished, isOutcome } from './states.js';
import type { TaskRecord, TransitionEvent } from './types.js';

interface Open {
  task: Span;
  ctx: Context;
  attempt: Span | undefined;
  kind: string;
}

/** @internal Spans and metrics of one queue's tasks. */
export class TaskTelemetry {
  readonly #tracer = trace.getTracer('smoothtask');
  readonly #open = new Map<string, Open>();
  readonly #meter = metrics.getMeter('smoothtask');
  readonly #finished = this.#meter.createCounter('smoothtask.tasks.finished', { description: 'Tasks that reached an outcome' });
  readonly #running = this.#meter.createUpDownCounter('smoothtask.tasks.running', { description: 'Attempts running' });
  readonly #duration = this.#meter.createHistogram('smoothtask.task.duration', { description: 'Submit to outcome', unit: 'ms' });

  /** A task was submitted (call in the caller's context: it becomes the span's parent). */
  begin(rec: Readonly<TaskRecord>, parent: Context = context.active()): void {
    if (this.#open.has(rec.id)) return;
    const task = this.#tracer.startSpan('smoothtask.task', { attributes: { 'smoothtask.task.id': rec.id, 'smoothtask.task.kind': rec.kind }, startTime: rec.timings.createdAt }, parent);
    this.#open.set(rec.id, { task, ctx: trace.setSpan(parent, task), attempt: undefined, kind: rec.kind });
  }

  /** A recorded transition. */
  transition(e: TransitionEvent): void {
    const t = e.task;
    // A task recovered from the store has no span yet: one starts now, without a parent.
    if (!this.#open.has(t.id) && !isFinished(e.from)) this.begin(t, context.active());
    const o = this.#open.get(t.id);
    if (!o) return;
    o.task.addEvent(e.to, { 'smoothtask.task.event': e.event, 'smoothtask.task.attempt': t.attempt, ...(e.reason ? { 'smoothtask.task.reason': e.reason } : {}) }, e.at);
    if (o.attempt && e.to !== 'running') {
      // The attempt ended (to an outcome, retrying, or queued again).
      if (e.to !== 'succeeded') o.attempt.setStatus({ code: SpanStatusCode.ERROR, message: `${e.to}${e.reason ? `: ${e.reason}` : ''}` });
      o.attempt.setAttribute('smoothtask.task.outcome', e.to);
      o.attempt.end(e.at);
      o.attempt = undefined;
      this.#running.add(-1, { 'smoothtask.task.kind': o.kind });
    }
    if (e.to === 'starting') {
      o.attempt = this.#tracer.startSpan('smoothtask.task.attempt', { attributes: { 'smoothtask.task.id': t.id, 'smoothtask.task.attempt': t.attempt }, startTime: e.at }, o.ctx);
      this.#running.add(1, { 'smoothtask.task.kind': o.kind });
    }
    if (isOutcome(e.to)) {
      if (e.to !== 'succeeded') o.task.setStatus({ code: SpanStatusCode.ERROR, message: `${e.to}${e.reason ? `: ${e.reason}` : ''}` });
      o.task.setAttribute('smoothtask.task.state', e.to);
      if (t.exitCode !== null) o.task.setAttribute('smoothtask.task.exit_code', t.exitCode);
      o.task.end(e.at);
      this.#open.delete(t.id);
      const attrs = { 'smoothtask.task.kind': o.kind, 'smoothtask.task.state': e.to };
      this.#finished.add(1, attrs);
      this.#duration.record(Math.max(0, e.at - t.timings.createdAt), attrs);
    }
  }

  /** The context an attempt of `id` runs in (its attempt span active), or the current one. */
  attemptContext(id: string): Context {
    const o = this.#open.get(id);
    return o?.attempt ? trace.setSpan(o.ctx, o.attempt) : context.active();
  }

  /** Ends the spans still open (the queue closes with tasks unfinished). */
  close(): void {
    for (const o of this.#open.values()) {
      o.attempt?.end();
      o.task.setAttribute('smoothtask.task.state', 'unfinished (queue closed)');
      o.task.end();
    }
    this.#open.clear();
  }
}
