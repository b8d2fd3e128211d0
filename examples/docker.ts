/**
 * Runs a container task and a compose task through the task queue, streams their logs as they
 * arrive, prints where the logs and output archives went, and checks that no container,
 * network or volume was left behind.
 *
 *   node --import tsx examples/docker.ts
 *
 * Needs a running dockerd and the local image smoothtask/busybox:latest (scripts/docker-up.sh).
 * SMOOTHTASK_EXAMPLE_SECONDS (default 3) sets how long each task runs.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TaskQueue } from 'smoothtask/task';
import {
  connectDocker,
  DockerUnavailableError,
  dockerCleanupTrigger,
  managedResources,
  reapLeftovers,
  registerDockerExecutors,
} from 'smoothtask/docker';

const seconds = Math.max(1, Number(process.env.SMOOTHTASK_EXAMPLE_SECONDS ?? 3));
const IMAGE = 'smoothtask/busybox:latest';

let engine: Awaited<ReturnType<typeof connectDocker>>;
try {
  engine = await connectDocker();
} catch (e) {
  if (e instanceof DockerUnavailableError) {
    console.error(`docker example: ${e.message}`);
    process.exit(1);
  }
  throw e;
}

// Whatever a crashed earlier run of this program left behind goes first.
const reaped = await reapLeftovers(engine);
if (reaped.containers.length) console.log(`reaped ${reaped.containers.length} leftover container(s)`);

const dir = await mkdtemp(join(tmpdir(), 'smoothtask-example-docker-'));
const composeFile = join(dir, 'compose.yml');
await writeFile(
  composeFile,
  `version: "3.8"
services:
  worker:
    image: ${IMAGE}
    command: ["sh", "-c", "for i in $$(seq ${seconds}); do echo worker tick $$i; sleep 1; done; echo done > /out/worker.txt"]
    volumes: ["\${SMOOTHTASK_OUTPUTS}:/out"]
    depends_on: [helper]
  helper:
    image: ${IMAGE}
    command: ["sh", "-c", "trap 'exit 0' TERM; echo helper ready; while true; do sleep 0.2; done"]
`,
);

const queue = new TaskQueue({ concurrency: 2, dataDir: join(dir, 'tasks'), killAfterMs: 1000, triggers: [dockerCleanupTrigger(engine)] });
registerDockerExecutors(queue, { engine });
await queue.ready;

queue.onLog((e) => {
  if (e.stream === 'system') return; // compose CLI chatter
  for (const line of e.chunk.split('\n')) if (line) console.log(`[${e.taskId}] ${e.stream === 'stderr' ? '!' : ' '} ${line}`);
});
queue.onTransition((e) => console.log(`[${e.task.id}] -> ${e.to}${e.reason ? ` (${e.reason})` : ''}`));

const container = queue.submit({
  id: 'example-container',
  kind: 'container',
  spec: {
    image: IMAGE,
    command: ['sh', '-c', `for i in $(seq ${seconds}); do echo tick $i; sleep 1; done; echo a warning >&2; date > out/finished.txt`],
    limits: { memoryBytes: 64 * 1024 * 1024, cpus: 0.5, pids: 64 },
  },
  timeoutMs: (seconds + 30) * 1000,
});
const compose = queue.submit({
  id: 'example-compose',
  kind: 'compose',
  spec: { files: [composeFile], exitFrom: 'worker' },
  timeoutMs: (seconds + 120) * 1000,
});

let ok = true;
for (const rec of await Promise.all([container.done, compose.done])) {
  console.log(`\n${rec.id}: ${rec.state} (exit ${rec.exitCode})`);
  console.log(`  logs:      ${rec.logPath}`);
  const result = rec.result as { logsDir?: string } | undefined;
  if (result?.logsDir) console.log(`  per-source logs: ${result.logsDir}`);
  console.log(`  artifacts: ${rec.artifacts.join(', ') || '(none)'}`);
  if (rec.state !== 'succeeded') ok = false;
}
await queue.close();

const left = await managedResources(engine, { taskIds: [container.id, compose.id] });
const leftovers = [...left.containers, ...left.networks, ...left.volumes];
console.log(`\nleft in the engine with smoothtask labels: ${leftovers.length ? leftovers.join(', ') : 'nothing'}`);
console.log(`task files kept under ${dir} (remove it when done)`);
process.exit(ok && leftovers.length === 0 ? 0 : 1);
