import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from 'smoothtask/agent';
import { readFollow } from '../fixtures/agent/follow.js';
import { rssBytes, spawnAgent, type AgentChild } from '../fixtures/agent/spawn.js';
import { OpenApiClient } from './openapi-client.js';

// A task printing 100 MB, followed over HTTP while it runs, by a reader that is slow at first:
// the whole stream arrives (bytes and SHA-256 against the same bytes made here), and the
// agent's own RSS (it runs in its own process) stays within a bound over its baseline.
const TOTAL = 100_000_000;
const LINE = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n';
const TOKEN = 'follow-100mb-token-0123456789';
const MiB = 1024 * 1024;

function expectedSha256(): string {
  const block = Buffer.from(LINE.repeat(16384));
  const h = createHash('sha256');
  let left = TOTAL;
  while (left > 0) {
    const n = Math.min(left, block.length);
    h.update(n === block.length ? block : block.subarray(0, n));
    left -= n;
  }
  return h.digest('hex');
}

let dir: string;
let agent: AgentChild;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'st-agent-follow-'));
  agent = await spawnAgent(
    {
      dataDir: join(dir, 'data'),
      listen: { host: '127.0.0.1', port: 0 },
      auth: { tokens: [{ name: 't', sha256: hashToken(TOKEN), scopes: ['read', 'submit', 'admin'] }] },
      queue: { concurrency: 2, maxLogBytes: 256 * MiB },
      policy: { process: { commands: ['sh'] } },
      metrics: { enabled: false },
      shutdown: { graceMs: 0 },
    },
    dir,
  );
});
afterAll(async () => {
  if (agent && agent.child.exitCode === null) {
    agent.child.kill('SIGTERM');
    await agent.exited;
  }
  await rm(dir, { recursive: true, force: true });
});

describe('agent log follow of 100 MB', () => {
  it('streams every byte to a slow-then-fast reader with the agent RSS bounded', { timeout: 300_000 }, async () => {
    const api = await OpenApiClient.connect(agent.url, TOKEN);
    // Baseline: the agent after it served a few requests and settled.
    for (let i = 0; i < 5; i++) await api.expect(200, 'GET /v1/tasks', { query: { limit: 5 } });
    await new Promise((r) => setTimeout(r, 1000));
    const base = rssBytes(agent.pid);
    let peak = base;
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, rssBytes(agent.pid));
      } catch {
        /* exited */
      }
    }, 50);
    try {
      const script = `yes '${LINE.slice(0, -1)}' | head -c ${TOTAL}`;
      const sub = await api.expect(201, 'POST /v1/tasks', { body: { kind: 'process', spec: { command: 'sh', args: ['-c', script] }, timeoutMs: 240_000 } });
      const id = sub.body.task.id as string;
      const res = await api.expect(200, 'GET /v1/tasks/{id}/logs', {
        params: { id },
        query: { stream: 'stdout', follow: true, offset: 0 },
        headers: { accept: 'application/x-ndjson' },
        raw: true,
      });
      const h = createHash('sha256');
      let bytes = 0;
      let chunks = 0;
      let stateAtFirstChunk: string | undefined;
      const slowUntil = Date.now() + 4000;
      const end = await readFollow(res.response, async (c) => {
        chunks++;
        if (chunks === 1) stateAtFirstChunk = (await api.expect(200, 'GET /v1/tasks/{id}', { params: { id } })).body.task.state;
        const b = Buffer.from(c.data, 'utf8');
        bytes += b.length;
        h.update(b);
        if (Date.now() < slowUntil) await new Promise((r) => setTimeout(r, 25));
      });
      peak = Math.max(peak, rssBytes(agent.pid));
      expect(end.ended, `follow ended after ${bytes} bytes in ${chunks} chunks without its end line; agent stderr: ${agent.stderr()}`).toBe(true);
      expect(end.state).toBe('succeeded');
      expect(bytes).toBe(TOTAL);
      expect(h.digest('hex')).toBe(expectedSha256());
      const rec = await api.expect(200, 'GET /v1/tasks/{id}', { params: { id } });
      expect(rec.body.task.state).toBe('succeeded');
      const growth = peak - base;
      console.log(
        `follow-100mb: ${chunks} chunks, state at first chunk ${stateAtFirstChunk}, agent RSS base ${(base / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB, growth ${(growth / MiB).toFixed(1)} MiB`,
      );
      expect(growth).toBeLessThan(150 * MiB);
    } finally {
      clearInterval(sampler);
    }
  });
});
