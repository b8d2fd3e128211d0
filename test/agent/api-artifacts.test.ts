/**
 * Artifacts over real HTTP: the ZIP is streamed with Content-Length, x-checksum-sha256 and an
 * ETag that match the bytes; its entries are the task's outputs. Process tasks (real
 * children) always; a container task when dockerd is up (labelled, cleaned by the executor).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import yauzl from 'yauzl';
import { finished, startAgent, until, type Harness } from './api-harness.js';

function unzip(buf: Buffer): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(buf, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err);
      const out: Record<string, string> = {};
      zip.on('entry', (e: yauzl.Entry) => {
        if (e.fileName.endsWith('/')) return zip.readEntry();
        zip.openReadStream(e, (er, s) => {
          if (er || !s) return reject(er);
          const chunks: Buffer[] = [];
          s.on('data', (c: Buffer) => chunks.push(c));
          s.on('end', () => {
            out[e.fileName] = Buffer.concat(chunks).toString('utf8');
            zip.readEntry();
          });
        });
      });
      zip.on('end', () => resolve(out));
      zip.readEntry();
    });
  });
}

async function download(h: Harness, id: string) {
  const r = await h.req('GET', `/v1/tasks/${id}/artifacts`, { token: 'read' });
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toBe('application/zip');
  const buf = Buffer.from(await r.arrayBuffer());
  expect(Number(r.headers.get('content-length'))).toBe(buf.length);
  const sha = createHash('sha256').update(buf).digest('hex');
  expect(r.headers.get('x-checksum-sha256')).toBe(sha);
  expect(r.headers.get('etag')).toBe(`"sha256-${sha}"`);
  return { buf, sha, etag: r.headers.get('etag')! };
}

describe('process task artifacts', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startAgent();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('the ZIP of <workspace>/out: entries, size and checksum match; the second download is the same file', async () => {
    const script = 'mkdir -p out/sub && printf hello > out/a.txt && printf "nested %s" deep > out/sub/b.txt && echo not-an-output > scratch.txt';
    expect((await h.req('POST', '/v1/tasks', { json: { kind: 'process', id: 'zip1', spec: { command: '/bin/sh', args: ['-c', script] } } })).status).toBe(201);
    await finished(h, 'zip1');
    const a = await download(h, 'zip1');
    const entries = await unzip(a.buf);
    expect(entries).toEqual({ 'a.txt': 'hello', 'sub/b.txt': 'nested deep' });
    const b = await download(h, 'zip1');
    expect(b.sha).toBe(a.sha);
    const nm = await h.req('GET', '/v1/tasks/zip1/artifacts', { headers: { 'if-none-match': a.etag } });
    expect(nm.status).toBe(304);
  });

  it('concurrent first downloads share one ZIP', async () => {
    await h.req('POST', '/v1/tasks', { json: { kind: 'process', id: 'zip2', spec: { command: '/bin/sh', args: ['-c', 'mkdir out && seq 1 20000 > out/n.txt'] } } });
    await finished(h, 'zip2');
    const all = await Promise.all([0, 1, 2, 3].map(() => download(h, 'zip2')));
    expect(new Set(all.map((x) => x.sha)).size).toBe(1);
    expect((await unzip(all[0]!.buf))['n.txt']!.split('\n').length).toBe(20001);
  });

  it('no outputs: 404 ERR_NO_ARTIFACTS; running: 409; unknown: 404 ERR_TASK_NOT_FOUND', async () => {
    await h.req('POST', '/v1/tasks', { json: { kind: 'process', id: 'none', spec: { command: '/bin/true' } } });
    await finished(h, 'none');
    const r = await h.req('GET', '/v1/tasks/none/artifacts');
    expect(r.status).toBe(404);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe('ERR_NO_ARTIFACTS');
    await h.req('POST', '/v1/tasks', { json: { kind: 'process', id: 'busy', spec: { command: '/bin/sleep', args: ['60'] } } });
    await until(() => h.agent.queue.get('busy')?.state === 'running', 'running');
    expect((await h.req('GET', '/v1/tasks/busy/artifacts')).status).toBe(409);
    await h.req('POST', '/v1/tasks/busy/cancel');
    expect((await h.req('GET', '/v1/tasks/ghost/artifacts')).status).toBe(404);
    expect((await h.req('GET', '/v1/tasks/zip1/artifacts', { token: null })).status).toBe(401);
  });

  it('an out/ symlink to the host is not followed', async () => {
    await h.req('POST', '/v1/tasks', { json: { kind: 'process', id: 'sneaky', spec: { command: '/bin/sh', args: ['-c', 'ln -s /etc out'] } } });
    await finished(h, 'sneaky');
    const r = await h.req('GET', '/v1/tasks/sneaky/artifacts');
    expect(r.status).toBe(422);
    const e = ((await r.json()) as { error: { code: string; message: string } }).error;
    expect(e.code).toBe('ERR_ARTIFACTS_REFUSED');
  });
});

const dockerUp = (() => {
  try {
    execFileSync('docker', ['image', 'inspect', 'smoothtask/busybox:latest'], { stdio: 'pipe', timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(!dockerUp)('container task artifacts (docker)', () => {
  it('the executor archive of /work/out, with matching checksum', async () => {
    const h = await startAgent({
      executors: { process: true, docker: true, compose: false },
      policy: { docker: { images: ['smoothtask/busybox:latest'] } },
    });
    try {
      const r = await h.req('POST', '/v1/tasks', {
        json: { kind: 'container', id: 'c1', labels: { test: 'agent-a-artifacts' }, spec: { image: 'smoothtask/busybox:latest', command: ['sh', '-c', 'mkdir -p /work/out && printf box > /work/out/x.txt && echo done'], network: 'none' } },
      });
      expect(r.status).toBe(201);
      const t = await finished(h, 'c1');
      expect(t.state).toBe('succeeded');
      const { buf } = await download(h, 'c1');
      expect(await unzip(buf)).toEqual({ 'x.txt': 'box' });
      expect(await (await h.req('GET', '/v1/tasks/c1/logs?stream=stdout')).text()).toContain('done');
      // Per-source file of the Docker executors (`main` for a container task; a compose task's services likewise).
      expect(await (await h.req('GET', '/v1/tasks/c1/logs?service=main&stream=stdout')).text()).toBe('done\n');
      const follow = (await (await h.req('GET', '/v1/tasks/c1/logs?service=main&stream=stdout&follow=true')).text()).trim().split('\n').map((l) => JSON.parse(l) as { data?: string; stream?: string; end?: boolean });
      expect(follow.at(-1)).toMatchObject({ end: true, state: 'succeeded' });
      expect(follow.slice(0, -1).map((l) => l.data).join('')).toBe('done\n');
      expect(follow[0]!.stream).toBe('main:stdout');
    } finally {
      await h.close();
    }
  });
});
