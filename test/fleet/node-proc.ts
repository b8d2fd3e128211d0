// A fleet node in its own process (the OpenTelemetry SDK installed, as an application would): a
// TaskQueue with the process executor behind a FleetWorker. Prints `ready`; on a line `dump`
// prints its finished spans as one JSON line; exits when stdin ends (or is SIGKILLed by a test).
//   node --import tsx test/fleet/node-proc.ts <redisUrl> <prefix> <dataDir> [name] [lockMs] [stalledMs] [labels JSON]
import { createInterface } from 'node:readline';
import { installSdk } from './otel-sdk.js';

const spans = installSdk();
const { FleetWorker } = await import('../../lib/fleet/index.js');
const { TaskQueue } = await import('../../lib/task/queue.js');
const { ProcessExecutor } = await import('../../lib/process/executor.js');
const [url, prefix, dataDir, name = 'traced-node', lockMs = '30000', stalledMs = '30000', labels = '{}'] = process.argv.slice(2) as [string, string, string, string?, string?, string?, string?];
const queue = new TaskQueue({ concurrency: 4, dataDir });
queue.registerExecutor('process', new ProcessExecutor());
const worker = new FleetWorker(queue, { redis: { url }, prefix, lockDurationMs: Number(lockMs), stalledIntervalMs: Number(stalledMs), placementRetryMs: 100 }, { name, labels: JSON.parse(labels) as Record<string, string> });
await worker.start();
console.log('ready');
const rl = createInterface({ input: process.stdin });
rl.on('line', (l) => {
  if (l.trim() === 'dump') console.log(JSON.stringify(spans()));
});
rl.on('close', () => void worker.close().then(() => queue.close()).finally(() => process.exit(0)));
