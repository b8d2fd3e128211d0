/**
 * Test harness of helper A's agent tests: a real agent on 127.0.0.1:0 with a real store in a
 * temp dir, three tokens (read, submit, admin) and a small fetch wrapper.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAgent, hashToken, type Agent, type AgentConfigInput } from '../../lib/agent/index.js';
import { JsonStore, StoreTaskPersistence } from '../../lib/store/index.js';

export const TOKENS = { read: 'tok-read-0123456789', submit: 'tok-submit-0123456789', admin: 'tok-admin-0123456789' } as const;

export interface Harness {
  agent: Agent;
  url: string;
  dir: string;
  /** fetch with a token (by scope name, a raw token string, or none) and a JSON or raw body. */
  req(method: string, path: string, o?: { token?: keyof typeof TOKENS | { raw: string } | null; json?: unknown; body?: string | Buffer; headers?: Record<string, string> }): Promise<Response>;
  /** Task documents in the store and folders in the workspace root. */
  created(): Promise<{ recorded: string[]; workspaces: string[]; inMemory: number }>;
  close(): Promise<void>;
}

export async function startAgent(over: Partial<AgentConfigInput> = {}): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'st-agent-a-'));
  const agent = await createAgent({
    dataDir: dir,
    listen: { host: '127.0.0.1', port: 0 },
    auth: {
      tokens: [
        { name: 'reader', sha256: hashToken(TOKENS.read), scopes: ['read'] },
        { name: 'submitter', sha256: hashToken(TOKENS.submit), scopes: ['read', 'submit'] },
        { name: 'root', sha256: hashToken(TOKENS.admin), scopes: ['admin'] },
      ],
    },
    policy: { process: { commands: ['/bin/sh', '/bin/echo', '/bin/sleep', '/bin/true', '/bin/false'] } },
    metrics: { enabled: false },
    ...over,
  });
  const { url } = await agent.listen();
  return {
    agent,
    url,
    dir,
    async req(method, path, o = {}) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      const tok = o.token === undefined ? 'admin' : o.token;
      if (tok !== null) headers.authorization = `Bearer ${typeof tok === 'object' ? tok.raw : TOKENS[tok]}`;
      let body: string | Buffer | undefined = o.body;
      if (o.json !== undefined) {
        body = JSON.stringify(o.json);
        headers['content-type'] ??= 'application/json';
      }
      return fetch(url + path, { method, headers, ...(body !== undefined ? { body } : {}) });
    },
    async created() {
      const ls = async (p: string) => (await readdir(p).catch(() => [] as string[])).filter((n) => !n.startsWith('.'));
      // What a restart would find in the task records (snapshot and journal), read without claiming them.
      const recorded = (await StoreTaskPersistence.inspect(await JsonStore.open({ dir: join(dir, 'store') }))).map((r) => r.id);
      return { recorded, workspaces: await ls(join(dir, 'workspaces')), inMemory: agent.queue.list().length };
    },
    async close() {
      await agent.close({ graceMs: 0 });
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `fn` until it returns a truthy value (generous deadline; no timing assertions). */
export async function until<T>(fn: () => Promise<T> | T, what: string, timeoutMs = 60_000): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits for a task to reach a finished state over HTTP; returns the record. */
export async function finished(h: Harness, id: string): Promise<Record<string, unknown>> {
  return until(async () => {
    const r = await h.req('GET', `/v1/tasks/${id}`, { token: 'read' });
    const { task } = (await r.json()) as { task: Record<string, unknown> };
    return ['succeeded', 'failed', 'timed_out', 'cancelled'].includes(task.state as string) ? task : undefined;
  }, `task ${id} to finish`);
}
