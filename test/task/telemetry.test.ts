/**
 * The task lifecycle and eBPF loads in OpenTelemetry, with the SDK installed as an application
 * would (in-memory exporter, a metric reader collected on demand): a span per task with one per
 * attempt under it, the executor running in the attempt's context, task metrics by kind and
 * state, and a span per eBPF load.
 */
import { join } from 'node:path';
import { metrics, trace } from '@opentelemetry/api';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { installSdk } from '../fleet/otel-sdk.js';

class Reader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}
const spans = installSdk();
const reader = new Reader();
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
// The SDK is installed before the library creates its instruments, as it must be.
const { TaskQueue } = await import('../../lib/task/queue.js');

describe('task telemetry', () => {
  it('a span per task, one per attempt under it, the executor in the attempt context; metrics by kind and state', async () => {
    const q = new TaskQueue({ concurrency: 2 });
    const seen: Array<string | undefined> = [];
    let calls = 0;
    q.registerExecutor('flaky', {
      run: async () => {
        seen.push(trace.getActiveSpan()?.spanContext().spanId);
        return { exitCode: ++calls === 1 ? 1 : 0 };
      },
    });
    q.registerExecutor('ok', { run: async () => ({ exitCode: 0 }) });
    const parent = trace.getTracer('test').startSpan('caller');
    const { context } = await import('@opentelemetry/api');
    const h = context.with(trace.setSpan(context.active(), parent), () => q.submit({ id: 'tel-1', kind: 'flaky', retry: { maxAttempts: 2, baseMs: 1, maxMs: 1 } }));
    const h2 = q.submit({ id: 'tel-2', kind: 'ok' });
    expect((await h.done).state).toBe('succeeded');
    expect((await h2.done).state).toBe('succeeded');
    parent.end();
    await q.close();

    const all = spans();
    const task = all.find((s) => s.name === 'smoothtask.task' && s.attributes['smoothtask.task.id'] === 'tel-1')!;
    expect(task.parentSpanId).toBe(parent.spanContext().spanId);
    expect(task.traceId).toBe(parent.spanContext().traceId);
    const attempts = all.filter((s) => s.name === 'smoothtask.task.attempt' && s.attributes['smoothtask.task.id'] === 'tel-1');
    expect(attempts.map((a) => a.attributes['smoothtask.task.attempt'])).toEqual([1, 2]);
    for (const a of attempts) expect(a.parentSpanId).toBe(task.spanId);
    expect(attempts.map((a) => a.status)).toEqual([2, 0]); // the failed attempt is an error, the second is not
    expect(seen).toEqual(attempts.map((a) => a.spanId)); // each run saw its own attempt span as active
    expect(task.attributes['smoothtask.task.state']).toBe('succeeded');

    const { resourceMetrics } = await reader.collect();
    const ms = resourceMetrics.scopeMetrics.filter((s) => s.scope.name === 'smoothtask').flatMap((s) => s.metrics);
    const finished = ms.find((m) => m.descriptor.name === 'smoothtask.tasks.finished')!;
    const byKind = Object.fromEntries(finished.dataPoints.map((d) => [`${d.attributes['smoothtask.task.kind']}/${d.attributes['smoothtask.task.state']}`, d.value]));
    expect(byKind).toEqual({ 'flaky/succeeded': 1, 'ok/succeeded': 1 });
    const running = ms.find((m) => m.descriptor.name === 'smoothtask.tasks.running')!;
    for (const d of running.dataPoints) expect(d.value).toBe(0);
    const duration = ms.find((m) => m.descriptor.name === 'smoothtask.task.duration')!;
    expect(duration.dataPoints.reduce((n, d) => n + (d.value as { count: number }).count, 0)).toBe(2);
  });

  it('an eBPF load is a span (named by the object), an error on failure with the error code', async () => {
    const { loadObject } = await import('../../lib/ebpf/load.js');
    const { bpfObjectDir } = await import('../../lib/native/addon.js');
    const path = join(bpfObjectDir(), 'counter.bpf.o');
    const obj = await loadObject(path, { cache: false });
    obj.close();
    await expect(loadObject(new Uint8Array([1, 2, 3]))).rejects.toMatchObject({ code: expect.any(String) });
    const loads = spans().filter((s) => s.name === 'smoothtask.ebpf.load');
    expect(loads.find((s) => s.attributes['smoothtask.ebpf.object'] === path)?.status).toBe(0);
    expect(loads.find((s) => s.attributes['smoothtask.ebpf.object'] === '<3 bytes>')?.status).toBe(2);
  });
});
