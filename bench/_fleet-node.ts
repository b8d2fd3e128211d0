/**
 * One node of the fleet benchmark, in its own process: `agent` (a smoothtask agent with the
 * fleet on, and a `noop` executor) or `bare` (a bare BullMQ worker with an empty processor).
 * Prints `ready` once it listens for jobs; a `mark` line on stdin (sent after the warm-up jobs)
 * starts its CPU count; on stdin's end prints `cpu <µs>` (its CPU time since `ready` or the
 * last `mark`) and exits.
 *
 *   node --import tsx bench/_fleet-node.ts agent|bare <redisUrl> <prefix> <name> <concurrency> <dataDir>
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Worker } from 'bullmq';
import { createAgent } from '../lib/agent/index.js';
import { bullConnection, RedisConfigSchema } from '../lib/fleet/index.js';

const [mode, url, prefix, name, conc, dataDir] = process.argv.slice(2) as [string, string, string, string, string, string];
const concurrency = Number(conc);
let stop: () => Promise<void>;
if (mode === 'bare') {
  const w = new Worker('bare', async () => {}, { connection: bullConnection(RedisConfigSchema.parse({ url })), prefix, concurrency });
  await w.waitUntilReady();
  stop = () => w.close();
} else {
  const agent = await createAgent({
    dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    metrics: { enabled: false },
    queue: { concurrency },
    fleet: { enabled: true, redis: { url }, prefix, node: { name }, concurrency },
  });
  agent.queue.registerExecutor('noop', { run: async () => ({ exitCode: 0 }) });
  await agent.listen();
  stop = () => agent.close();
}
// FLEET_BENCH_CPU_PROF=<dir>: a V8 CPU profile of the measured part only (from `mark` to stdin's end).
const profDir = process.env.FLEET_BENCH_CPU_PROF;
const session = profDir ? new Session() : undefined;
if (session) {
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
}
let cpu0 = process.cpuUsage();
console.log('ready');
const rl = createInterface({ input: process.stdin });
// `mark` (after the warm-up jobs) starts the count again.
rl.on('line', (l) => {
  if (l !== 'mark') return;
  if (session) void session.post('Profiler.start');
  if (process.env.FLEET_BENCH_TIMES) process.stderr.write(`node ${mode} ${name} pid ${process.pid} mark ${Number(process.hrtime.bigint()) / 1e9}\n`);
  cpu0 = process.cpuUsage();
});
// This process's CPU time (user + system, µs) since `ready` or the last `mark`, for the bench's per-job figures.
rl.on('close', () => {
  const c = process.cpuUsage(cpu0);
  if (process.env.FLEET_BENCH_TIMES) process.stderr.write(`node ${mode} ${name} pid ${process.pid} end ${Number(process.hrtime.bigint()) / 1e9}\n`);
  void (async () => {
    if (session && profDir) {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(join(profDir, `${mode}-${prefix}-${name}.cpuprofile`), JSON.stringify(profile));
    }
    console.log(`cpu ${c.user + c.system}`);
    await stop();
  })().finally(() => process.exit(0));
});
