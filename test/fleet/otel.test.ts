/**
 * OpenTelemetry across processes: the producer (this process) and a fleet node (a child) each
 * install the SDK with an in-memory exporter; each task's spans (the submit here; the run, the
 * task and its attempts there) form one trace, with the parent links across the process
 * boundary carried in the job data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installSdk, type SpanLine } from './otel-sdk.js';
import { startRedis, type RedisServer } from './redis.js';

const spans = installSdk();
const { FleetProducer } = await import('../../lib/fleet/index.js');
const { tsx } = await import('../agent/cli-run.js');

let redis: RedisServer;
let dir: string;
let node: ChildProcess;
let lines: AsyncIterator<string>;
const prefix = 'otel';

beforeAll(async () => {
  redis = await startRedis();
  dir = await mkdtemp(join(tmpdir(), 'st-otel-'));
  node = spawn(process.execPath, ['--import', tsx, join(import.meta.dirname, 'node-proc.ts'), redis.url, prefix, dir], { stdio: ['pipe', 'pipe', 'inherit'] });
  lines = createInterface({ input: node.stdout! })[Symbol.asyncIterator]();
  expect((await lines.next()).value).toBe('ready');
}, 60_000);

afterAll(async () => {
  node?.stdin?.end();
  await new Promise((r) => (node && node.exitCode === null ? node.once('exit', r) : r(null)));
  await redis?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('tracing across the fleet', () => {
  it('each task is one trace: submit (producer) -> run (node) -> task -> attempts', async () => {
    const producer = new FleetProducer({ redis: { url: redis.url }, prefix, pollMs: 100 });
    try {
      const ids = ['tr-ok', 'tr-fail', 'tr-retry'];
      const hs = [
        await producer.submit({ id: ids[0], kind: 'process', spec: { command: '/bin/true' } }),
        await producer.submit({ id: ids[1], kind: 'process', spec: { command: '/bin/false' } }),
        await producer.submit({ id: ids[2], kind: 'process', spec: { command: '/bin/false' }, retry: { maxAttempts: 2, baseMs: 10, maxMs: 10 } }),
      ];
      const recs = await Promise.all(hs.map((h) => h.done));
      expect(recs.map((r) => r.state)).toEqual(['succeeded', 'failed', 'failed']);
      // The node's spans end with the task: ask once everything has ended there.
      await new Promise((r) => setTimeout(r, 300));
      node.stdin!.write('dump\n');
      const remote = JSON.parse((await lines.next()).value as string) as SpanLine[];
      const local = spans();
      for (const [i, id] of ids.entries()) {
        const submit = local.find((s) => s.name === 'smoothtask.fleet.submit' && s.attributes['smoothtask.task.id'] === id)!;
        expect(submit, id).toBeDefined();
        const mine = remote.filter((s) => s.attributes['smoothtask.task.id'] === id);
        const run = mine.find((s) => s.name === 'smoothtask.fleet.run')!;
        const task = mine.find((s) => s.name === 'smoothtask.task')!;
        const attempts = mine.filter((s) => s.name === 'smoothtask.task.attempt');
        expect(run, id).toBeDefined();
        expect(task, id).toBeDefined();
        // One trace, parent links across the process boundary.
        for (const s of [run, task, ...attempts]) expect(s.traceId, `${id} ${s.name}`).toBe(submit.traceId);
        expect(run.parentSpanId).toBe(submit.spanId);
        expect(task.parentSpanId).toBe(run.spanId);
        for (const a of attempts) expect(a.parentSpanId).toBe(task.spanId);
        expect(attempts, id).toHaveLength(i === 2 ? 2 : 1);
        expect(task.attributes['smoothtask.task.state']).toBe(recs[i]!.state);
        expect(task.status, id).toBe(i === 0 ? 0 : 2); // UNSET for success, ERROR otherwise
      }
      // Three tasks, three traces.
      expect(new Set(ids.map((id) => local.find((s) => s.attributes['smoothtask.task.id'] === id)!.traceId)).size).toBe(3);
    } finally {
      await producer.close();
    }
  });
});
