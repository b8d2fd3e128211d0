// SIGTERM flushes the webhook outbox: a task that ends during the grace has its `task.succeeded`
// event delivered to a loopback receiver before the agent exits; when the receiver keeps
// failing, the agent still exits 0 promptly and the undelivered events stay in the store on disk
// (delivered at the next start), none lost.
import { createHash, randomUUID } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startCli } from './cli-run.js';

const TOKEN = `tok-shutdown-wh-${randomUUID()}`;
const HASH = createHash('sha256').update(TOKEN).digest('hex');
const auth = { authorization: `Bearer ${TOKEN}` };
let root: string;
const children: ChildProcess[] = [];
const servers: Server[] = [];

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'st-shutdown-wh-'));
});
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const s of servers.splice(0)) s.close();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function until<T>(fn: () => T | undefined | Promise<T | undefined>, ms: number, what: () => string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A loopback receiver answering `status` and recording each body with the time it arrived. */
async function receiver(status: number): Promise<{ url: string; got: { at: number; body: string }[] }> {
  const got: { at: number; body: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      got.push({ at: Date.now(), body });
      res.writeHead(status).end();
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`, got };
}

async function startAgent(): Promise<{ child: ChildProcess; url: string; dataDir: string; stderr: () => string; exited: Promise<{ code: number | null; at: number }> }> {
  const dir = mkdtempSync(join(root, 'a-'));
  const cfg = join(dir, 'agent.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      dataDir: './data',
      listen: { host: '127.0.0.1', port: 0 },
      auth: { tokens: [{ name: 'test', sha256: HASH, scopes: ['admin'] }] },
      policy: { process: { commands: ['/bin/sh'] } },
      webhooks: { network: { allowPrivate: true } },
      metrics: { enabled: false },
      shutdown: { graceMs: 30_000, onTimeout: 'cancel' },
    }),
  );
  const child = startCli(['agent', '--config', cfg]);
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.on('exit', (code) => resolve({ code, at: Date.now() })));
  const url = await until(() => /listening on (http:\/\/\S+)/.exec(out)?.[1], 60_000, () => `agent did not start: ${err}`);
  return { child, url, dataDir: join(dir, 'data'), stderr: () => err, exited };
}

async function post(url: string, path: string, body: unknown): Promise<any> {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await res.json()) as unknown;
  expect(res.status, JSON.stringify(json)).toBe(201);
  return json;
}

async function runningTask(url: string, script: string): Promise<string> {
  const { task } = (await post(url, '/v1/tasks', { kind: 'process', spec: { command: '/bin/sh', args: ['-c', script] } })) as { task: { id: string } };
  await until(
    async () => {
      const r = (await (await fetch(`${url}/v1/tasks/${task.id}`, { headers: auth })).json()) as { task: { state: string } };
      return r.task.state === 'running' ? true : undefined;
    },
    30_000,
    () => 'task never ran',
  );
  return task.id;
}

/** Outbox documents left in the store for `endpointId`, as text. */
function outbox(dataDir: string, endpointId: string): string[] {
  const d = join(dataDir, 'store', 'webhooks', 'outbox', endpointId);
  if (!existsSync(d)) return [];
  return readdirSync(d)
    .filter((f) => f.endsWith('.json'))
    .map((f) => readFileSync(join(d, f), 'utf8'));
}

describe('smoothtask agent: SIGTERM flushes the webhook outbox', () => {
  it('a task ending in the grace has its task.succeeded delivered before the agent exits; nothing left in the outbox', async () => {
    const rx = await receiver(200);
    const a = await startAgent();
    const { endpoint } = (await post(a.url, '/v1/webhooks', { url: rx.url })) as { endpoint: { id: string } };
    const id = await runningTask(a.url, 'sleep 2');
    a.child.kill('SIGTERM');
    const { code, at } = await a.exited;
    expect(code, a.stderr()).toBe(0);
    const final = rx.got.find((g) => g.body.includes(id) && g.body.includes('"to":"succeeded"'));
    expect(final, `received: ${rx.got.map((g) => g.body.slice(0, 200)).join('\n')}`).toBeDefined();
    expect(final!.at).toBeLessThanOrEqual(at);
    expect(outbox(a.dataDir, endpoint.id)).toEqual([]);
  });

  it('a receiver that keeps failing does not hold the exit; its events stay stored, none lost', async () => {
    const rx = await receiver(503);
    const a = await startAgent();
    const { endpoint } = (await post(a.url, '/v1/webhooks', { url: rx.url })) as { endpoint: { id: string } };
    const id = await runningTask(a.url, 'sleep 1');
    const t0 = Date.now();
    a.child.kill('SIGTERM');
    const { code, at } = await a.exited;
    expect(code, a.stderr()).toBe(0);
    expect(at - t0).toBeLessThan(30_000);
    const left = outbox(a.dataDir, endpoint.id).join('\n');
    expect(left).toContain(id);
    expect(left).toContain('succeeded');
  });
});
