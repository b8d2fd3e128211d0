// Child process used by the store tests (bundled with esbuild so it starts in ~50 ms).
// Modes: loop <dir> <key> | incr <dir> <key> <n> | hold <dir> <key> | queue <dir> | burst <dir> <id prefix> | once <dir> <key> (default staleness, 5 s lock wait)
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { JsonStore, StoreTaskPersistence } from '../../lib/store/index.js';
import { TaskQueue } from '../../lib/task/index.js';

const Doc = z.object({ n: z.number().int(), writer: z.number(), pad: z.string() });

const [mode, dir, key, arg] = process.argv.slice(2);

async function main(): Promise<void> {
// `once` keeps the default staleness (20 s) so that a lock leaked by a live process is not taken over as stale.
const store = await JsonStore.open({
  dir: dir!,
  lock: mode === 'once' ? { waitMs: 5000 } : { staleMs: 2000, updateMs: 1000, waitMs: 60_000 },
});
const pad = 'x'.repeat(64 * 1024);

if (mode === 'loop') {
  process.stdout.write('ready\n');
  for (;;) await store.update(key!, Doc, (d) => ({ n: (d?.n ?? 0) + 1, writer: process.pid, pad }));
} else if (mode === 'incr') {
    process.stdout.write('start\n');
  for (let i = 0; i < Number(arg); i++) await store.update(key!, Doc, (d) => ({ n: (d?.n ?? 0) + 1, writer: process.pid, pad: '' }));
  process.stdout.write('done\n');
} else if (mode === 'once') {
  process.stdout.write('start\n');
  await store.update(key!, Doc, (d) => ({ n: (d?.n ?? 0) + 1, writer: process.pid, pad: '' }));
  process.stdout.write('done\n');
} else if (mode === 'hold') {
  await store.update(key!, Doc, async (d) => {
    process.stdout.write('locked\n');
    await sleep(1e9);
    return d!;
  });
} else if (mode === 'burst') {
  // Many short tasks through a persisted queue, with checkpoints every 64 KiB of journal: each
  // transition a listener hears (so: acknowledged as recorded) is printed as `<id> <history length>`.
  const queue = new TaskQueue({ concurrency: 8, persistence: new StoreTaskPersistence(store, { checkpointBytes: 64 * 1024 }), dataDir: `${dir}/work`, keepFinished: 0 });
  queue.registerExecutor('noop', { run: async () => ({}) });
  let announced = false;
  queue.onTransition((e) => {
    process.stdout.write(`${e.task.id} ${e.task.history.length}\n`);
    if (!announced && e.to === 'succeeded') {
      announced = true;
      process.stdout.write('ready\n');
    }
  });
  await queue.ready;
  for (let i = 0; ; i++) {
    const hs = Array.from({ length: 50 }, (_, j) => queue.submit({ kind: 'noop', id: `${key}-${i}-${j}` }));
    await Promise.all(hs.map((h) => h.done));
  }
} else if (mode === 'queue') {
  const queue = new TaskQueue({ concurrency: 1, persistence: new StoreTaskPersistence(store), dataDir: `${dir}/work` });
  queue.registerExecutor('sleep', {
    run: async (ctx) => {
      await sleep(1e9, undefined, { signal: ctx.signal }).catch(() => {});
      return {};
    },
  });
  queue.onTransition((e) => {
    if (e.to === 'running') process.stdout.write(`running ${e.task.id}\n`);
  });
  queue.submit({ kind: 'sleep', id: 'crashy' });
  queue.submit({ kind: 'sleep', id: 'waiting', priority: -1 });
  queue.submit({ kind: 'sleep', id: 'waiting2', priority: -1 });
  await sleep(1e9);
}
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
