/**
 * Workspace files with a container task: inputs uploaded over HTTP and FTP to a held container task are
 * what the container reads at /work/inputs; what it writes (including links to /etc and to a
 * sibling workspace, made inside the container) comes back through the same policy.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { Client } from 'basic-ftp';
import { hashToken } from '../../lib/agent/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engineGate, IMAGE, probeEngine, readZipEntries } from '../docker/helpers.js';
import { finished, startAgent, type Harness } from './api-harness.js';

const probe = await probeEngine();
const FTP_PW = 'ftp-pw-0123456789';
// A passive range of this file's own (parallel test files must not share one).
const PMIN = 49000 + Math.floor(Math.random() * 100) * 10;
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe.skipIf(engineGate(probe))('workspace files with a container task', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startAgent({
      executors: { process: true, docker: true },
      policy: { process: { commands: ['/bin/sh'] }, docker: { images: [IMAGE], networkModes: ['none'] } },
      ftp: { enabled: true, port: 0, passivePorts: { min: PMIN, max: PMIN + 9 }, users: [{ name: 'tester', passwordSha256: hashToken(FTP_PW), tasks: '*' }] },
    });
  }, 60_000);
  afterAll(async () => {
    await h?.close();
  });

  it('inputs uploaded to a held container task are read at /work/inputs; its outputs and planted links come back through the policy', async () => {
    const id = `files-ctr-${process.pid}`;
    const data = randomBytes(256 * 1024);
    const script = [
      'set -e',
      'mkdir -p /work/out',
      'sha256sum /work/inputs/data.bin | cut -d" " -f1 > /work/out/sum.txt',
      'cat /work/inputs/sub/msg.txt > /work/out/msg.txt',
      'ln -s /etc /work/out/etc',
      'ln -s /etc/passwd /work/out/passwd',
      'ln -s ../../sibling /work/out/sib',
    ].join('; ');
    const r = await h.req('POST', '/v1/tasks', { token: 'submit', json: { id, kind: 'container', hold: true, spec: { image: IMAGE, network: 'none', command: ['sh', '-c', script] } } });
    expect(r.status, await r.clone().text()).toBe(201);
    const put = (p: string, body: Buffer | string, headers: Record<string, string> = {}) =>
      h.req('PUT', `/v1/tasks/${id}/files/${p}`, { token: 'submit', body, headers: { 'content-type': 'application/octet-stream', ...headers } });
    expect((await put('inputs/data.bin', data, { 'x-checksum-sha256': sha(data) })).status).toBe(201);
    // The second input over FTP (basic-ftp, EPSV on loopback), into the same workspace.
    const ftp = new Client(15_000);
    try {
      await ftp.access({ host: '127.0.0.1', port: h.agent.ftp!.port, user: 'tester', password: FTP_PW });
      await ftp.ensureDir(`/${id}/inputs/sub`);
      await ftp.uploadFrom(Readable.from([Buffer.from('from the tester\n')]), `/${id}/inputs/sub/msg.txt`);
    } finally {
      ftp.close();
    }
    expect((await h.req('POST', `/v1/tasks/${id}/start`, { token: 'submit' })).status).toBe(202);
    const done = await finished(h, id);
    const log = await (await h.req("GET", `/v1/tasks/${id}/logs`, { token: "read" })).text();
    expect(done.state, `${JSON.stringify(done.error ?? null)} ${log}`).toBe("succeeded");

    expect((await (await h.req('GET', `/v1/tasks/${id}/files/out/sum.txt`, { token: 'read' })).text()).trim()).toBe(sha(data));
    expect(await (await h.req('GET', `/v1/tasks/${id}/files/out/msg.txt`, { token: 'read' })).text()).toBe('from the tester\n');
    // The links the container made: listed as links, never followed.
    for (const p of ['out/etc/passwd', 'out/etc', 'out/passwd', 'out/sib/out/x']) {
      const g = await h.req('GET', `/v1/tasks/${id}/files/${p}`, { token: 'read' });
      expect(g.status, p).toBe(403);
      expect(await g.text()).not.toContain('root:x:0:0');
    }
    // The folder ZIP over HTTP and the executor's own artifact: the two files, no link.
    const z = await h.req('GET', `/v1/tasks/${id}/files/out?format=zip`, { token: 'read' });
    expect(z.headers.get('x-skipped-entries')).toBe('3');
    expect([...(await readZipEntries(Buffer.from(await z.arrayBuffer()))).keys()].sort()).toEqual(['msg.txt', 'sum.txt']);
    // And the outputs back over FTP: the file, and the link refused.
    const ftp2 = new Client(15_000);
    try {
      await ftp2.access({ host: '127.0.0.1', port: h.agent.ftp!.port, user: 'tester', password: FTP_PW });
      const chunks: Buffer[] = [];
      await ftp2.downloadTo(new Writable({ write: (c: Buffer, _e, cb) => void (chunks.push(c), cb()) }), `/${id}/out/sum.txt`);
      expect(Buffer.concat(chunks).toString().trim()).toBe(sha(data));
      await expect(ftp2.downloadTo(new Writable({ write: (_c, _e, cb) => cb() }), `/${id}/out/passwd`)).rejects.toThrow();
    } finally {
      ftp2.close();
    }
    const art = await h.req('GET', `/v1/tasks/${id}/artifacts`, { token: 'read' });
    expect(art.status).toBe(200);
    expect([...(await readZipEntries(Buffer.from(await art.arrayBuffer()))).keys()].sort()).toEqual(['msg.txt', 'sum.txt']);
  }, 180_000);
});
