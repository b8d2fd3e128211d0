/**
 * A fleet of two agents on one Redis: a producer submits 20 process tasks through BullMQ, both
 * agents take them, one agent is killed (SIGKILL) while it runs some, and those run again on
 * the other one. Each task ends in exactly one final state; the table shows where it ran.
 *
 *   bash scripts/redis-up.sh && npx tsup && node --import tsx examples/fleet.ts
 *
 * REDIS_URL (default redis://127.0.0.1:6379, the one scripts/setup.sh starts) picks the Redis.
 * The agents are this same file started with `agent <name>` (its own process each, so one
 * can be killed); keys go under a fresh prefix per run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createAgent } from 'smoothtask/agent';
import { FleetProducer } from 'smoothtask/fleet';

const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

if (process.argv[2] === 'agent') {
  // ---- one agent of the fleet: process tasks limited to `sh`, fleet jobs of class `default`.
  const [, , , name, dataDir, prefix] = process.argv as [string, string, string, string, string, string];
  const agent = await createAgent({
    dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    metrics: { enabled: false },
    policy: { process: { commands: ['sh'] } },
    shutdown: { graceMs: 0 },
    // A short lock so that a dead agent is noticed in seconds (the default is 30 s).
    fleet: { enabled: true, redis: { url: redisUrl }, prefix, node: { name }, lockDurationMs: 3000, stalledIntervalMs: 1000 },
  });
  const { url } = await agent.listen();
  console.log(`ready ${name} ${url}`);
  process.once('SIGTERM', () => void agent.close().then(() => process.exit(0)));
} else {
  // ---- the producer side.
  const dir = await mkdtemp(join(tmpdir(), 'smoothtask-example-fleet-'));
  const prefix = `example-${randomBytes(4).toString('hex')}`;
  const self = fileURLToPath(import.meta.url);
  const agents = new Map<string, ChildProcess>();
  const start = (name: string) =>
    new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [...process.execArgv, self, 'agent', name, join(dir, name), prefix], { stdio: ['ignore', 'pipe', 'inherit'] });
      agents.set(name, child);
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        const m = /ready (\S+) (\S+)/.exec(d);
        if (m) resolve(m[2]!);
      });
      child.once('exit', (code) => reject(new Error(`agent ${name} exited (${code})`)));
    });
  const producer = new FleetProducer({ redis: { url: redisUrl }, prefix });
  try {
    const urls = await Promise.all([start('agent-a'), start('agent-b')]);
    console.log(`two agents up: ${urls.join(', ')} (Redis ${redisUrl}, prefix ${prefix})`);

    const handles = [];
    for (let i = 0; i < 20; i++) {
      handles.push(await producer.submit({ id: `job-${i}`, kind: 'process', spec: { command: 'sh', args: ['-c', `sleep 1; echo job ${i}`] } }));
    }
    // Wait until agent-b runs some, then kill it outright.
    let onB: string[] = [];
    for (let t = 0; t < 200 && onB.length === 0; t++) {
      onB = (await producer.list({ state: 'running' })).filter((r) => (r.info.fleet as { node?: string }).node === 'agent-b').map((r) => r.id);
      if (!onB.length) await new Promise((r) => setTimeout(r, 50));
    }
    agents.get('agent-b')!.removeAllListeners('exit').kill('SIGKILL');
    console.log(`killed agent-b while it ran ${onB.join(', ')}`);

    const recs = await Promise.all(handles.map((h) => h.done));
    console.log('\n  task     state       node     run');
    for (const r of recs) {
      const f = r.info.fleet as { node: string; run: number };
      console.log(`  ${r.id.padEnd(8)} ${r.state.padEnd(11)} ${f.node.padEnd(8)} ${f.run}${onB.includes(r.id) ? '   (ran again after agent-b died)' : ''}`);
    }
    const ok = recs.every((r) => r.state === 'succeeded') && onB.every((id) => (recs.find((r) => r.id === id)!.info.fleet as { node: string }).node === 'agent-a');
    console.log(ok ? '\nevery task succeeded once; agent-b’s tasks finished on agent-a' : '\nsomething went wrong');
    process.exitCode = ok ? 0 : 1;
  } finally {
    await producer.close();
    for (const c of agents.values()) {
      c.removeAllListeners('exit');
      c.kill('SIGTERM');
    }
    await new Promise((r) => setTimeout(r, 500));
    for (const c of agents.values()) c.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}
