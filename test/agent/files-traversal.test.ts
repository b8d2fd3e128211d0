/**
 * The traversal corpus through the HTTP door: encoded `..`, absolute paths, NUL, backslashes,
 * links planted by a task (to /etc, to a sibling workspace, a linked `out/` itself, a link in
 * `inputs/` under an upload), FIFOs and a 2 GiB sparse file. Each is refused or handled as
 * documented; no byte from outside the workspace is ever served or written.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { finished, startAgent, TOKENS, type Harness } from './api-harness.js';

let h: Harness;
const MARK = `host-secret-${process.pid}`;
let outsideDir: string;

/** A request with the exact path bytes on the wire (fetch would normalise `..` and `%2e%2e`). */
function raw(method: string, path: string, body?: string): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  const u = new URL(h.url);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { authorization: `Bearer ${method === 'GET' ? TOKENS.read : TOKENS.submit}` };
    if (body !== undefined) Object.assign(headers, { 'content-type': 'application/octet-stream', 'content-length': String(Buffer.byteLength(body)) });
    const req = httpRequest({ host: u.hostname, port: u.port, path, method, headers }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
const rawGet = (path: string) => raw('GET', path);

async function run(id: string, script: string): Promise<void> {
  const r = await h.req('POST', '/v1/tasks', { token: 'submit', json: { id, kind: 'process', spec: { command: '/bin/sh', args: ['-c', script] } } });
  expect(r.status).toBe(201);
  expect((await finished(h, id)).state).toBe('succeeded');
}

beforeAll(async () => {
  h = await startAgent({ files: { maxZipBytes: 1024 * 1024 * 1024 } });
  outsideDir = join(h.dir, 'outside');
  await mkdir(outsideDir);
  await writeFile(join(outsideDir, 'secret.txt'), MARK);
  // The sibling: a finished task whose file another task's link points at.
  await run('sibling', `mkdir -p out && echo ${MARK} > out/private.txt`);
  // The planter: links to /etc, to the sibling, to a host folder; a FIFO; a 2 GiB sparse file; a real file.
  await run(
    'planter',
    [
      'set -e',
      'mkdir -p out/real',
      'echo inside > out/real/ok.txt',
      'ln -s /etc out/etc',
      'ln -s /etc/passwd out/passwd',
      'ln -s ../../sibling out/sib',
      `ln -s ${outsideDir} out/host`,
      'mkfifo out/fifo',
      'truncate -s 2G out/sparse.bin',
      // A whole linked outputs folder, as the containment issue's reproducer did.
      'mkdir -p b && ln -s /etc b/out2',
      'ln -s /etc linked-out',
    ].join('; '),
  );
}, 120_000);
afterAll(async () => {
  await h?.close();
});

const base = '/v1/tasks/planter/files';

describe('traversal corpus over HTTP', () => {
  it.each([
    ['../../sibling/out/private.txt', 400],
    ['%2e%2e/%2e%2e/sibling/out/private.txt', 400],
    ['%2E%2E%2F%2E%2E%2Fsibling%2Fout%2Fprivate.txt', 400],
    ['..%2f..%2fsibling/out/private.txt', 400],
    ['out/../../sibling/out/private.txt', 400],
    ['%2Fetc%2Fpasswd', 400],
    ['/etc/passwd', 400],
    ['out/real/ok.txt%00.png', 400],
    ['..%5C..%5Csibling%5Cout%5Cprivate.txt', 400],
    ['C:%5Cwindows', 400],
    ['out/etc/passwd', 403],
    ['out/etc', 403],
    ['out/passwd', 403],
    ['out/sib/out/private.txt', 403],
    ['out/host/secret.txt', 403],
    ['out/fifo', 403],
    ['linked-out/passwd', 403],
    ['linked-out', 403],
    ['b/out2/hostname', 403],
  ])('GET %s is refused (%i), no outside byte served', async (path, status) => {
    const r = await rawGet(`${base}/${path}`);
    expect(r.status, r.body.slice(0, 300)).toBe(status);
    expect(JSON.parse(r.body).error.code).toMatch(/^ERR_(UNSAFE_PATH|VALIDATION)$/);
    expect(r.body).not.toContain(MARK);
    expect(r.body).not.toContain('root:x:0:0');
  });

  it('a listing shows links and FIFOs for what they are, without following or opening them', async () => {
    const r = await h.req('GET', `${base}/out`, { token: 'read' });
    expect(r.status).toBe(200);
    const types = Object.fromEntries(((await r.json()) as { entries: { name: string; type: string }[] }).entries.map((e) => [e.name, e.type]));
    expect(types).toEqual({ etc: 'symlink', fifo: 'special', host: 'symlink', passwd: 'symlink', real: 'directory', sib: 'symlink', 'sparse.bin': 'file' });
  });

  it('the ZIP of a folder leaves links and FIFOs out (and says how many); a linked folder is refused', async () => {
    const r = await h.req('GET', `${base}/out/real?format=zip`, { token: 'read' });
    expect(r.status).toBe(200);
    const zipBody = Buffer.from(await r.arrayBuffer());
    expect(zipBody.includes(Buffer.from(MARK))).toBe(false);
    // The whole out/ holds 2 GiB: over the 1 GiB maxZipBytes here, refused before reading.
    const big = await h.req('GET', `${base}/out?format=zip`, { token: 'read' });
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: { code: string } }).error.code).toBe('ERR_ARCHIVE_TOO_LARGE');
    expect((await h.req('GET', `${base}/linked-out?format=zip`, { token: 'read' })).status).toBe(403);
  });

  it('a 2 GiB sparse file: size and ranges answered without reading it whole', async () => {
    const head = await h.req('HEAD', `${base}/out/sparse.bin`, { token: 'read' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(2 * 1024 ** 3));
    const tail = await h.req('GET', `${base}/out/sparse.bin`, { token: 'read', headers: { range: 'bytes=-16' } });
    expect(tail.status).toBe(206);
    expect(tail.headers.get('content-range')).toBe(`bytes ${2 * 1024 ** 3 - 16}-${2 * 1024 ** 3 - 1}/${2 * 1024 ** 3}`);
    expect(Buffer.from(await tail.arrayBuffer()).equals(Buffer.alloc(16))).toBe(true);
  });

  it('uploads never write through a link planted in inputs/, and a refused path writes nothing anywhere', async () => {
    const id = 'upl-held';
    expect((await h.req('POST', '/v1/tasks', { token: 'submit', json: { id, kind: 'process', hold: true, spec: { command: '/bin/true' } } })).status).toBe(201);
    // Simulate what an earlier task of this workspace could have left: inputs/evil -> a host folder, inputs/f -> a host file.
    const ws = join(h.dir, 'workspaces', id);
    await mkdir(join(ws, 'inputs'), { recursive: true });
    await symlink(outsideDir, join(ws, 'inputs', 'evil'));
    await symlink(join(outsideDir, 'secret.txt'), join(ws, 'inputs', 'f'));
    const put = (p: string, body = 'PAYLOAD') => h.req('PUT', `/v1/tasks/${id}/files/${p}`, { token: 'submit', body, headers: { 'content-type': 'application/octet-stream' } });
    expect((await put('inputs/evil/new.txt')).status).toBe(403);
    expect(existsSync(join(outsideDir, 'new.txt'))).toBe(false);
    // Uploading over the link replaces the link itself; its target keeps its bytes.
    expect((await put('inputs/f')).status).toBe(201);
    expect(await readFile(join(outsideDir, 'secret.txt'), 'utf8')).toBe(MARK);
    expect(await readFile(join(ws, 'inputs', 'f'), 'utf8')).toBe('PAYLOAD');
    for (const p of ['inputs/../../x', 'inputs/%2e%2e/%2e%2e/x', 'inputs/a%00b', 'inputs/a%5Cb', '%2Ftmp%2Fx']) {
      const r = await raw('PUT', `/v1/tasks/${id}/files/${p}`, 'PAYLOAD');
      expect(r.status, `${p}: ${r.body}`).toBe(400);
    }
    // DELETE of the link removes the link, not the host folder.
    expect((await h.req('DELETE', `/v1/tasks/${id}/files/inputs/evil`, { token: 'submit' })).status).toBe(204);
    expect(existsSync(join(outsideDir, 'secret.txt'))).toBe(true);
    const listing = execFileSync('ls', ['-A', join(ws, 'inputs')], { encoding: 'utf8' }).trim().split('\n');
    expect(listing).toEqual(['f']);
    await h.req('POST', `/v1/tasks/${id}/cancel`, { token: 'submit' });
  });
});
