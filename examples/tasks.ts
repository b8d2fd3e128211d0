/**
 * Runs a mix of tasks (success, failure, timeout, cancel, retry) on a persistent queue and
 * prints the signed webhook events a loopback receiver verifies.
 *
 *   npx tsup && node --import tsx examples/tasks.ts
 *
 * Exits by itself within about SMOOTHTASK_EXAMPLE_SECONDS (default 10).
 */
import { createServer } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessExecutor } from 'smoothtask/process';
import { JsonStore, StoreTaskPersistence } from 'smoothtask/store';
import { TaskQueue } from 'smoothtask/task';
import { WebhookDispatcher, forwardTaskEvents, generateWebhookSecret, verifyWebhook } from 'smoothtask/webhook';

const seconds = Number(process.env.SMOOTHTASK_EXAMPLE_SECONDS ?? 10);
const deadline = Date.now() + seconds * 1000;
const dir = await mkdtemp(join(tmpdir(), 'smoothtask-example-'));

// 1. A webhook receiver on loopback that verifies every request the Standard Webhooks way.
const secret = generateWebhookSecret();
let received = 0;
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    try {
      const { id, payload } = verifyWebhook<{ type: string; data: { id: string; from: string; to: string; reason: string | null } }>(
        secret,
        req.headers,
        Buffer.concat(chunks),
      );
      received++;
      const d = payload.data;
      console.log(`  webhook ${id.slice(0, 12)}… verified: ${payload.type.padEnd(15)} ${d.id.padEnd(8)} ${d.from} -> ${d.to}${d.reason ? ` (${d.reason})` : ''}`);
      res.statusCode = 204;
    } catch (e) {
      console.log(`  webhook REJECTED: ${(e as Error).message}`);
      res.statusCode = 400;
    }
    res.end();
  });
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;

// 2. A crash-safe store, a queue persisted in it, and a webhook dispatcher over the same store.
const store = await JsonStore.open({ dir: join(dir, 'state') });
const queue = new TaskQueue({ concurrency: 5, dataDir: join(dir, 'tasks'), killAfterMs: 500, persistence: new StoreTaskPersistence(store) });
queue.registerExecutor('process', new ProcessExecutor());
let flakyRuns = 0;
queue.registerExecutor('flaky', {
  async run(ctx) {
    flakyRuns++;
    ctx.log('stdout', `flaky attempt ${ctx.attempt}\n`);
    return { exitCode: ctx.attempt < 2 ? 1 : 0 };
  },
});
await queue.ready;
// Loopback is private: allow exactly this address (the default policy allows public addresses only).
const webhooks = await WebhookDispatcher.open({ store, network: { allow: ['127.0.0.1/32'] }, backoff: { baseMs: 100, maxMs: 1000 } });
await webhooks.addEndpoint({ id: 'example', url, secret, types: ['task.*'] });
forwardTaskEvents(queue, webhooks);

// 3. A mix of tasks.
const tasks = [
  queue.submit({ kind: 'process', id: 'hello', spec: { command: 'echo', args: ['hello from a child process'] } }),
  queue.submit({ kind: 'process', id: 'fails', spec: { command: 'sh', args: ['-c', 'echo about to fail >&2; exit 3'] } }),
  queue.submit({ kind: 'process', id: 'slow', spec: { command: 'sleep', args: ['30'] }, timeoutMs: 400 }),
  queue.submit({ kind: 'process', id: 'cancel', spec: { command: 'sleep', args: ['30'] } }),
  queue.submit({ kind: 'flaky', id: 'flaky', retry: { maxAttempts: 3, baseMs: 50, maxMs: 200 } }),
];
setTimeout(() => void queue.cancel('cancel', 'changed my mind'), 300);

const results = await Promise.all(tasks.map((t) => t.done));
console.log('\ntask outcomes:');
for (const r of results) {
  console.log(`  ${r.id.padEnd(8)} ${r.state.padEnd(10)} exit=${r.exitCode} signal=${r.signal} attempts=${r.attempt}${r.error ? ` error="${r.error.message}"` : ''}`);
}

// 4. Wait for the webhooks (bounded), then shut everything down.
const drained = await webhooks.drain(Math.max(500, deadline - Date.now()));
await webhooks.close();
await queue.close();
store.close();
server.close();
await rm(dir, { recursive: true, force: true });
console.log(`\n${received} signed webhook events verified${drained ? '' : ' (some still pending at the deadline)'}; flaky ran ${flakyRuns} times`);
const expected = { hello: 'succeeded', fails: 'failed', slow: 'timed_out', cancel: 'cancelled', flaky: 'succeeded' } as Record<string, string>;
const ok = results.every((r) => expected[r.id] === r.state) && drained;
process.exit(ok ? 0 : 1);
