/**
 * Workspace files over HTTP against a real agent on loopback: a task held for its inputs,
 * uploads (streamed, SHA-256 checked, quotas, cut connections), the task reading them, its
 * outputs downloaded (Range, ETag, ZIP), deletes, and what may and may not be written when.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readZipEntries } from '../docker/helpers.js';
import { finished, startAgent, TOKENS, type Harness, until } from './api-harness.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

let h: Harness;
beforeAll(async () => {
  h = await startAgent({ files: { maxFileBytes: 4 * 1024 * 1024, workspaceBytes: 6 * 1024 * 1024, agentBytes: 10 * 1024 * 1024, uploadIdleTimeoutMs: 1000 } });
});
afterAll(async () => {
  await h?.close();
});

async function held(id: string, script: string): Promise<void> {
  const r = await h.req('POST', '/v1/tasks', { token: 'submit', json: { id, kind: 'process', hold: true, spec: { command: '/bin/sh', args: ['-c', script] } } });
  expect(r.status, await r.clone().text()).toBe(201);
  expect(((await r.json()) as any).task.state).toBe('created');
}

const put = (id: string, path: string, body: Buffer | string, headers: Record<string, string> = {}) =>
  h.req('PUT', `/v1/tasks/${id}/files/${path}`, { token: 'submit', body, headers: { 'content-type': 'application/octet-stream', ...headers } });

/** Leftover temporary files (`.<name>.<pid>.<rand>.part`) anywhere in a workspace. */
async function partials(id: string): Promise<string[]> {
  const ws = join(h.dir, 'workspaces', id);
  if (!existsSync(ws)) return [];
  const all = await readdir(ws, { recursive: true });
  return all.filter((n) => String(n).endsWith('.part'));
}

describe('workspace files over HTTP', () => {
  it('round trip: upload inputs to a held task, start it, it reads them, download its outputs (SHA-256, Range, ETag, ZIP)', async () => {
    const id = 'files-rt';
    await held(id, 'set -e; mkdir -p out; sha256sum inputs/data.bin | cut -d" " -f1 > out/sum.txt; cat inputs/nested/deep/note.txt > out/note.txt; cp inputs/data.bin out/copy.bin');
    const data = randomBytes(1024 * 1024 + 17);
    const up = await put(id, 'inputs/data.bin', data, { 'x-checksum-sha256': sha(data) });
    expect(up.status, await up.clone().text()).toBe(201);
    expect(await up.json()).toEqual({ path: 'inputs/data.bin', size: data.length, sha256: sha(data), replaced: false });
    expect((await put(id, 'inputs/nested/deep/note.txt', 'héllo ✓\n')).status).toBe(201);
    // Listing while held.
    const ls = (await (await h.req('GET', `/v1/tasks/${id}/files/inputs`, { token: 'read' })).json()) as any;
    expect(ls.entries.map((e: { name: string; type: string; size: number }) => [e.name, e.type, e.type === 'file' ? e.size : 0])).toEqual([
      ['data.bin', 'file', data.length],
      ['nested', 'directory', 0],
    ]);
    // Start: runs, reads its inputs.
    const st = await h.req('POST', `/v1/tasks/${id}/start`, { token: 'submit' });
    expect(st.status).toBe(202);
    expect((await finished(h, id)).state).toBe('succeeded');
    // Uploads are refused once it ran.
    expect((await put(id, 'inputs/late.txt', 'x')).status).toBe(409);
    const sum = await h.req('GET', `/v1/tasks/${id}/files/out/sum.txt`, { token: 'read' });
    expect(sum.status).toBe(200);
    expect((await sum.text()).trim()).toBe(sha(data));
    // Whole file, with its ETag; 304 on If-None-Match.
    const whole = await h.req('GET', `/v1/tasks/${id}/files/out/copy.bin`, { token: 'read' });
    expect(whole.headers.get('content-length')).toBe(String(data.length));
    expect(whole.headers.get('accept-ranges')).toBe('bytes');
    const etag = whole.headers.get('etag')!;
    expect(Buffer.from(await whole.arrayBuffer()).equals(data)).toBe(true);
    expect((await h.req('GET', `/v1/tasks/${id}/files/out/copy.bin`, { token: 'read', headers: { 'if-none-match': etag } })).status).toBe(304);
    // The uploaded file carries its checksum.
    const inp = await h.req('GET', `/v1/tasks/${id}/files/inputs/data.bin`, { token: 'read' });
    expect(inp.headers.get('x-checksum-sha256')).toBe(sha(data));
    await inp.arrayBuffer();
    // Ranges: middle, suffix, open-ended; unsatisfiable is 416.
    for (const [range, from, to] of [['bytes=100-199', 100, 200], ['bytes=-10', data.length - 10, data.length], [`bytes=${data.length - 5}-`, data.length - 5, data.length]] as const) {
      const r = await h.req('GET', `/v1/tasks/${id}/files/out/copy.bin`, { token: 'read', headers: { range } });
      expect(r.status, range).toBe(206);
      expect(r.headers.get('content-range')).toBe(`bytes ${from}-${to - 1}/${data.length}`);
      expect(Buffer.from(await r.arrayBuffer()).equals(data.subarray(from, to))).toBe(true);
    }
    const bad = await h.req('GET', `/v1/tasks/${id}/files/out/copy.bin`, { token: 'read', headers: { range: `bytes=${data.length + 10}-` } });
    expect(bad.status).toBe(416);
    expect(bad.headers.get('content-range')).toBe(`bytes */${data.length}`);
    // The folder as a ZIP.
    const z = await h.req('GET', `/v1/tasks/${id}/files/out?format=zip`, { token: 'read' });
    expect(z.status).toBe(200);
    expect(z.headers.get('content-type')).toBe('application/zip');
    const entries = await readZipEntries(Buffer.from(await z.arrayBuffer()));
    expect([...entries.keys()].sort()).toEqual(['copy.bin', 'note.txt', 'sum.txt']);
    expect(entries.get('copy.bin')!.equals(data)).toBe(true);
    expect(entries.get('note.txt')!.toString()).toBe('héllo ✓\n');
    // Delete once finished.
    expect((await h.req('DELETE', `/v1/tasks/${id}/files/out/copy.bin`, { token: 'submit' })).status).toBe(204);
    expect((await h.req('GET', `/v1/tasks/${id}/files/out/copy.bin`, { token: 'read' })).status).toBe(404);
    expect((await h.req('DELETE', `/v1/tasks/${id}/files/out/copy.bin`, { token: 'submit' })).status).toBe(404);
  });

  it('a wrong SHA-256 is refused (422) and nothing appears; the same upload with the right one lands', async () => {
    const id = 'files-sha';
    await held(id, 'true');
    const r = await put(id, 'inputs/a.txt', 'hello', { 'x-checksum-sha256': sha('other') });
    expect(r.status).toBe(422);
    expect(((await r.json()) as any).error.code).toBe('ERR_CHECKSUM_MISMATCH');
    expect((await h.req('GET', `/v1/tasks/${id}/files/inputs/a.txt`, { token: 'read' })).status).toBe(404);
    expect(await partials(id)).toEqual([]);
    expect((await put(id, 'inputs/a.txt', 'hello', { 'x-checksum-sha256': sha('hello') })).status).toBe(201);
    // Whatever the content type, the body is the file's bytes (text/plain and JSON are not parsed).
    for (const [ct, body] of [['text/plain', 'plain text\n'], ['application/json', '{"not":"parsed"}']] as const) {
      const t = await h.req('PUT', `/v1/tasks/${id}/files/inputs/typed.txt`, { token: 'submit', body, headers: { 'content-type': ct } });
      expect(t.status, ct).toBe(201);
      expect(await readFile(join(h.dir, 'workspaces', id, 'inputs', 'typed.txt'), 'utf8')).toBe(body);
    }
    expect((await h.req('PUT', `/v1/tasks/${id}/files/inputs/none.txt`, { token: 'submit', body: 'no type' })).status).toBe(201);
    // Replacing keeps one file with the new bytes.
    const again = await put(id, 'inputs/a.txt', 'bye');
    expect(((await again.json()) as any).replaced).toBe(true);
    expect(await readFile(join(h.dir, 'workspaces', id, 'inputs', 'a.txt'), 'utf8')).toBe('bye');
  });

  it('an upload cut mid-way, or that goes quiet, leaves no partial file', async () => {
    const id = 'files-cut';
    await held(id, 'true');
    const u = new URL(`${h.url}/v1/tasks/${id}/files/inputs/big.bin`);
    // Announce 2 MiB, send 256 KiB, then drop the connection.
    await new Promise<void>((resolve) => {
      const req = httpRequest(
        { host: u.hostname, port: u.port, path: u.pathname, method: 'PUT', headers: { authorization: `Bearer ${TOKENS.submit}`, 'content-type': 'application/octet-stream', 'content-length': String(2 * 1024 * 1024) } },
        () => resolve(),
      );
      req.on('error', () => resolve());
      req.write(randomBytes(256 * 1024), () => setTimeout(() => req.destroy(), 200));
    });
    // Announce 1 MiB, send 1 KiB, then stay silent past the idle limit (1 s here).
    const quiet = await new Promise<number>((resolve) => {
      const req = httpRequest(
        { host: u.hostname, port: u.port, path: u.pathname, method: 'PUT', headers: { authorization: `Bearer ${TOKENS.submit}`, 'content-type': 'application/octet-stream', 'content-length': String(1024 * 1024) } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', () => resolve(-1));
      req.write(randomBytes(1024));
    });
    expect([408, -1]).toContain(quiet);
    await until(async () => (await partials(id)).length === 0, 'temporary files removed', 10_000);
    expect((await h.req('GET', `/v1/tasks/${id}/files/inputs/big.bin`, { token: 'read' })).status).toBe(404);
    // The agent serves on.
    expect((await put(id, 'inputs/ok.txt', 'ok')).status).toBe(201);
  });

  it('an upload whose body has all arrived is not cut by the idle limit while the agent hashes and syncs it', async () => {
    // The idle limit is the client's silence while the body arrives; after it, the agent's own work
    // (the SHA-256 digest, fsync, rename) may take longer on a loaded host. Simulated here: the
    // store's write returns 1.6 s after it has read the whole body, past the 1 s idle limit.
    const id = 'files-slow-finish';
    await held(id, 'true');
    const files = h.agent.files;
    const write = files.write.bind(files);
    files.write = (async (...args: Parameters<typeof files.write>) => {
      const w = await write(...args);
      await new Promise((r) => setTimeout(r, 1600));
      return w;
    }) as typeof files.write;
    try {
      const data = randomBytes(256 * 1024);
      const r = await put(id, 'inputs/slow.bin', data, { 'x-checksum-sha256': createHash('sha256').update(data).digest('hex') });
      expect(r.status).toBe(201);
      const back = await h.req('GET', `/v1/tasks/${id}/files/inputs/slow.bin`, { token: 'read' });
      expect(Buffer.from(await back.arrayBuffer()).equals(data)).toBe(true);
    } finally {
      files.write = write;
    }
  });

  it('quotas: per file, per workspace and per agent; refused uploads keep nothing and free their reservation', async () => {
    const MiB = 1024 * 1024;
    // An agent of its own: the agent quota counts every workspace.
    const main = h;
    h = await startAgent({ files: { maxFileBytes: 4 * MiB, workspaceBytes: 6 * MiB, agentBytes: 10 * MiB } });
    try {
    await held('files-q1', 'true');
    await held('files-q2', 'true');
    const tooBig = await put('files-q1', 'inputs/huge.bin', Buffer.alloc(4 * MiB + 1));
    expect(tooBig.status).toBe(413);
    expect(((await tooBig.json()) as any).error.code).toBe('ERR_QUOTA_EXCEEDED');
    expect((await put('files-q1', 'inputs/a.bin', Buffer.alloc(3 * MiB))).status).toBe(201);
    // Exactly the 6 MiB workspace quota is allowed; one more byte is not.
    expect((await put('files-q1', 'inputs/b.bin', Buffer.alloc(3 * MiB))).status).toBe(201);
    const over = await put('files-q1', 'inputs/c.bin', 'x');
    expect(over.status).toBe(413);
    expect(((await over.json()) as any).error.message).toContain('workspace');
    // Agent quota (10 MiB): 6 used by q1; q2 may add 4, not more.
    expect((await put('files-q2', 'inputs/a.bin', Buffer.alloc(4 * MiB))).status).toBe(201);
    const agentOver = await put('files-q2', 'inputs/b.bin', 'y');
    expect(agentOver.status).toBe(413);
    expect(((await agentOver.json()) as any).error.message).toContain('agent');
    // Deleting frees quota.
    expect((await h.req('DELETE', '/v1/tasks/files-q1/files/inputs/b.bin', { token: 'submit' })).status).toBe(204);
    expect((await put('files-q2', 'inputs/b.bin', 'y')).status).toBe(201);
    expect(await partials('files-q1')).toEqual([]);
    expect(await partials('files-q2')).toEqual([]);
    } finally {
      await h.close();
      h = main;
    }
  });

  it('where and when writes are allowed: only under inputs/, only while held; scopes', async () => {
    const id = 'files-rules';
    await held(id, 'true');
    for (const p of ['a.txt', 'out/a.txt', 'inputs']) {
      const r = await put(id, p, 'x');
      expect(r.status, p).toBe(403);
    }
    expect((await h.req('PUT', `/v1/tasks/${id}/files/inputs/a.txt`, { token: 'read', body: 'x', headers: { 'content-type': 'text/plain' } })).status).toBe(403);
    expect((await h.req('PUT', `/v1/tasks/${id}/files/inputs/a.txt`, { token: null, body: 'x' })).status).toBe(401);
    expect((await h.req('GET', `/v1/tasks/${id}/files`, { token: null })).status).toBe(401);
    // A plain (not held) task: no uploads at all.
    const r = await h.req('POST', '/v1/tasks', { token: 'submit', json: { id: 'files-plain', kind: 'process', spec: { command: '/bin/sleep', args: ['30'] } } });
    expect(r.status).toBe(201);
    expect((await put('files-plain', 'inputs/a.txt', 'x')).status).toBe(409);
    expect((await h.req('POST', '/v1/tasks/files-plain/start', { token: 'submit' })).status).toBe(409);
    expect((await h.req('DELETE', '/v1/tasks/files-plain/files/inputs', { token: 'submit' })).status).toBe(409);
    await h.req('POST', '/v1/tasks/files-plain/cancel', { token: 'submit' });
    // Start twice: the second is 409. Cancel a held task: it never runs.
    const c = 'files-cancel-held';
    await held(c, 'echo ran > out.txt');
    const cr = await h.req('POST', `/v1/tasks/${c}/cancel`, { token: 'submit' });
    expect(cr.status).toBe(202);
    // A waiting task is cancelled at once: the answer is its final record, and a DELETE right
    // after finds it finished (before, the answer still said `created` and the DELETE was 409).
    expect(((await cr.json()) as any).task.state).toBe('cancelled');
    expect((await finished(h, c)).state).toBe('cancelled');
    expect((await h.req('POST', `/v1/tasks/${c}/start`, { token: 'submit' })).status).toBe(409);
    expect(existsSync(join(h.dir, 'workspaces', c, 'out.txt'))).toBe(false);
    const c2 = 'files-cancel-delete';
    await held(c2, 'true');
    expect((await put(c2, 'inputs/a.txt', 'x')).status).toBe(201);
    expect((await h.req('POST', `/v1/tasks/${c2}/cancel`, { token: 'submit' })).status).toBe(202);
    expect((await h.req('DELETE', `/v1/tasks/${c2}`, { token: 'admin' })).status).toBe(204);
    expect(existsSync(join(h.dir, 'workspaces', c2))).toBe(false);
    // Unknown task: 404 everywhere.
    expect((await h.req('GET', '/v1/tasks/nope/files', { token: 'read' })).status).toBe(404);
    expect((await put('nope', 'inputs/a', 'x')).status).toBe(404);
  });
});
