/**
 * The agent's HTTP overhead, against baselines measured in the same run:
 *
 * (a) N no-op process tasks (`true`) submitted over HTTP (`POST /v1/tasks`, 16 requests in
 *     flight, keep-alive) and awaited to their final state (polling `GET /v1/tasks` every 200 ms), against
 *     `queue.submit` of the same tasks on a bare TaskQueue with the same executor, concurrency
 *     and persistence (JsonStore + StoreTaskPersistence). Target: HTTP / bare <= 1.5.
 * (b) `GET /status` requests per second under autocannon (its own process, 10 connections with
 *     10 pipelined requests each) against the
 *     agent, and against a bare `node:http` handler returning the same cached body and status.
 *     Target: agent / bare >= 0.5.
 *
 *   npm run bench -- agent [tasks=1000] [rounds=3] [autocannonSeconds=5]
 *
 * `tasks=0` skips (a).
 *
 * Both servers listen on 127.0.0.1. The agent runs in this process with metrics disabled (the
 * bench measures the HTTP layer, not the sampler); every round alternates agent and baseline.
 */
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { createAgent, hashToken } from '../lib/agent/index.js';
import { ProcessExecutor } from '../lib/process/index.js';
import { JsonStore, StoreTaskPersistence } from '../lib/store/index.js';
import { TaskQueue } from '../lib/task/index.js';
import type { BenchResult } from './run.js';

const CONC = 8;
const IN_FLIGHT = 16;
const TOKEN = 'bench-token-0123456789abcdef';
const WAITING = 'created,queued,starting,running,retrying';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Bare queue: the same tasks through `queue.submit`, same executor, concurrency and persistence. */
async function bareQueue(dir: string, n: number): Promise<number> {
  const store = await JsonStore.open({ dir: join(dir, 'store') });
  const q = new TaskQueue({ concurrency: CONC, dataDir: join(dir, 'work'), persistence: new StoreTaskPersistence(store) });
  q.registerExecutor('process', new ProcessExecutor());
  await q.ready;
  const t0 = performance.now();
  const hs = Array.from({ length: n }, () => q.submit({ kind: 'process', spec: { command: 'true' } }));
  const recs = await Promise.all(hs.map((h) => h.done));
  const ms = performance.now() - t0;
  await q.close();
  await store.close();
  const bad = recs.filter((r) => r.state !== 'succeeded');
  if (bad.length) throw new Error(`bare queue: ${bad.length} task(s) did not succeed (first: ${bad[0]!.state} ${bad[0]!.error?.message ?? ''})`);
  return ms;
}

async function startAgent(dir: string, n: number) {
  const agent = await createAgent({
    dataDir: dir,
    listen: { host: '127.0.0.1', port: 0 },
    auth: { tokens: [{ name: 'bench', sha256: hashToken(TOKEN), scopes: ['read', 'submit', 'admin'] }] },
    queue: { concurrency: CONC, maxQueued: n * 2 },
    executors: { process: true },
    policy: { process: { commands: ['true'] } },
    metrics: { enabled: false },
  });
  const { url } = await agent.listen();
  return { agent, url };
}

const auth = { authorization: `Bearer ${TOKEN}` };

/** N tasks over HTTP, then polled until none is waiting or running; checks every final state. */
async function overHttp(url: string, n: number): Promise<number> {
  let next = 0;
  const ids: string[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next++ < n) {
        const r = await fetch(`${url}/v1/tasks`, {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/json' },
          body: JSON.stringify({ kind: 'process', spec: { command: 'true' } }),
        });
        const body = (await r.json()) as { task?: { id: string } };
        if (r.status !== 201 || !body.task) throw new Error(`submit answered ${r.status}: ${JSON.stringify(body)}`);
        ids.push(body.task.id);
      }
    }),
  );
  for (;;) {
    const r = await fetch(`${url}/v1/tasks?state=${WAITING}&limit=1`, { headers: auth });
    const body = (await r.json()) as { items: unknown[] };
    if (r.status !== 200) throw new Error(`list answered ${r.status}`);
    if (body.items.length === 0) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  const ms = performance.now() - t0;
  // Outside the timing: every task of this round ended `succeeded`.
  const want = new Set(ids);
  let cursor: string | null = null;
  do {
    const r = await fetch(`${url}/v1/tasks?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { headers: auth });
    const body = (await r.json()) as { items: Array<{ id: string; state: string }>; nextCursor: string | null };
    for (const t of body.items) {
      if (!want.has(t.id)) continue;
      if (t.state !== 'succeeded') throw new Error(`task ${t.id} ended ${t.state}`);
      want.delete(t.id);
    }
    cursor = body.nextCursor;
  } while (cursor);
  if (want.size) throw new Error(`${want.size} submitted task(s) missing from the list`);
  return ms;
}

const autocannonBin = createRequire(import.meta.url).resolve('autocannon/autocannon.js');

/**
 * Requests per second of GET `url` under autocannon in its own process: 10 connections, 10
 * requests pipelined on each, so that the server rather than the load generator is the limit.
 */
function cannon(url: string, seconds: number): Promise<{ rps: number; non2xx: number; errors: number }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [autocannonBin, '-j', '-c', '10', '-p', '10', '-d', String(seconds), url], { maxBuffer: 64 << 20 }, (err, stdout) => {
      if (err) return reject(err);
      const r = JSON.parse(stdout) as { requests: { total: number }; duration: number; non2xx: number; errors: number; '2xx': number };
      resolve({ rps: r.requests.total / r.duration, non2xx: r.non2xx, errors: r.errors });
    });
  });
}

export default async function bench(args: string[]): Promise<BenchResult> {
  const n = Number(args[0] ?? 1000);
  const rounds = Number(args[1] ?? 3);
  const seconds = Number(args[2] ?? 5);
  const dir = await mkdtemp(join(tmpdir(), 'st-bench-agent-'));
  try {
    // (a) submit-and-await over HTTP vs queue.submit.
    const httpMs: number[] = [];
    const bareMs: number[] = [];
    if (n > 0) await bareQueue(join(dir, 'warm'), 50); // warm-up (spawn path, JIT)
    for (let i = 0; n > 0 && i < rounds; i++) {
      bareMs.push(await bareQueue(join(dir, `bare-${i}`), n));
      const { agent, url } = await startAgent(join(dir, `agent-${i}`), n);
      try {
        if (i === 0) await overHttp(url, 50); // warm-up
        httpMs.push(await overHttp(url, n));
      } finally {
        await agent.close();
      }
    }

    // (b) /status under autocannon: agent vs a bare node:http handler with the same body.
    const { agent, url: agentUrl } = await startAgent(join(dir, 'status'), 10);
    const probe = await fetch(`${agentUrl}/status`);
    const statusCode = probe.status;
    const contentType = probe.headers.get('content-type') ?? 'application/json';
    const body = Buffer.from(await probe.arrayBuffer());
    const bare = createServer((_req, res) => {
      res.writeHead(statusCode, { 'content-type': contentType, 'content-length': body.length });
      res.end(body);
    });
    await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
    const bareUrl = `http://127.0.0.1:${(bare.address() as AddressInfo).port}/status`;
    const agentRps: number[] = [];
    const bareRps: number[] = [];
    let errors = 0;
    try {
      await cannon(bareUrl, 1);
      await cannon(`${agentUrl}/status`, 1);
      for (let i = 0; i < rounds; i++) {
        const b = await cannon(bareUrl, seconds);
        const a = await cannon(`${agentUrl}/status`, seconds);
        bareRps.push(b.rps);
        agentRps.push(a.rps);
        errors += a.errors + b.errors;
      }
    } finally {
      await new Promise((r) => bare.close(r));
      await agent.close();
    }
    if (errors) throw new Error(`autocannon saw ${errors} connection errors`);

    const statusRatioMax = Math.max(...agentRps) / Math.max(...bareRps);
    const statusRatioMedian = median(agentRps) / median(bareRps);
    const figures: BenchResult['figures'] = {
      statusHttpCode: statusCode,
      statusBodyBytes: body.length,
      autocannonSeconds: seconds,
      agentStatusRpsBest: Math.max(...agentRps),
      agentStatusRpsMedian: median(agentRps),
      bareStatusRpsBest: Math.max(...bareRps),
      bareStatusRpsMedian: median(bareRps),
    };
    const ratios: BenchResult['ratios'] = { agentStatusOverBareBest: statusRatioMax, agentStatusOverBareMedian: statusRatioMedian };
    const targets: Record<string, boolean> = { '/status at least 0.5x of a bare node:http handler (best of rounds)': statusRatioMax >= 0.5 };
    if (n > 0) {
      const httpMin = Math.min(...httpMs);
      const bareMin = Math.min(...bareMs);
      Object.assign(figures, {
        tasks: n,
        rounds,
        concurrency: CONC,
        httpSubmitAwaitMinMs: httpMin,
        httpSubmitAwaitMedianMs: median(httpMs),
        bareQueueMinMs: bareMin,
        bareQueueMedianMs: median(bareMs),
        httpTasksPerSecBest: (n / httpMin) * 1000,
        bareTasksPerSecBest: (n / bareMin) * 1000,
      });
      ratios.httpOverBareQueueMin = httpMin / bareMin;
      ratios.httpOverBareQueueMedian = median(httpMs) / median(bareMs);
      targets['HTTP submit+await within 1.5x of queue.submit (min of rounds)'] = httpMin / bareMin <= 1.5;
    }
    return { figures, ratios, targets };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
