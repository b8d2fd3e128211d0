// A fleet node in its own process with the OpenTelemetry SDK installed: a TaskQueue with the
// process executor behind a FleetWorker. Prints `ready`; on a line `dump` prints its finished
// spans as one JSON line; exits when stdin ends.
//   node --import tsx test/fleet/otel-node.ts <redisUrl> <prefix> <dataDir>
import { createInterface } from 'node:readline';
import { installSdk } from './otel-sdk.js';

const spans = installSdk();
const { FleetWorker } = await import('../../lib/fleet/index.js');
const { TaskQueue } = await import('../../lib/task/queue.js');
const { ProcessExecutor } = await import('../../lib/process/executor.js');
const [url, prefix, dataDir] = process.argv.slice(2) as [string, string, string];
const queue = new TaskQueue({ concurrency: 4, dataDir });
queue.registerExecutor('process', new ProcessExecutor());
const worker = new FleetWorker(queue, { redis: { url }, prefix }, { name: 'traced-node' });
await worker.start();
console.log('ready');
const rl = createInterface({ input: process.stdin });
rl.on('line', (l) => {
  if (l.trim() === 'dump') console.log(JSON.stringify(spans()));
});
rl.on('close', () => void worker.close().then(() => queue.close()).finally(() => process.exit(0)));
