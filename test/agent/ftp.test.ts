/**
 * Task workspaces over FTP(S) against a real agent on loopback (ftp-srv, wrapped) with the
 * basic-ftp client: a held task's inputs uploaded over FTP (EPSV), its outputs downloaded;
 * forced PASV inside the configured range; explicit FTPS with a self-signed certificate and
 * plaintext logins refused; confinement (other tasks, `..`, absolute paths, links planted by a
 * task, FIFOs); permissions; an aborted STOR; signal listeners and close().
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { Client, enterPassiveModeIPv4, type FTPContext, type FTPResponse } from 'basic-ftp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FtpConfigSchema, hashToken, startFtpServer } from '../../lib/agent/index.js';
import { finished, startAgent, type Harness } from './api-harness.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const PW = { alice: 'pw-alice-0123', bob: 'pw-bob-0123', carol: 'pw-carol-0123' } as const;
// A narrow passive range of our own (parallel test files must not share one).
const PMIN = 41000 + Math.floor(Math.random() * 400) * 20;
const PMAX = PMIN + 19;
const users = [
  { name: 'alice', passwordSha256: hashToken(PW.alice), tasks: ['ftp-a', 'ftp-links', 'ftp-h', 'ftp-fresh'] },
  { name: 'bob', passwordSha256: hashToken(PW.bob), tasks: '*' as const, readOnly: true },
  { name: 'carol', passwordSha256: hashToken(PW.carol), tasks: ['ftp-b'] },
];

let h: Harness;
let certDir: string;
let signalsBefore: Record<string, number>;
const signalCounts = () => Object.fromEntries(['SIGTERM', 'SIGINT', 'SIGQUIT'].map((s) => [s, process.listenerCount(s)]));

beforeAll(async () => {
  signalsBefore = signalCounts();
  h = await startAgent({
    ftp: { enabled: true, port: 0, passivePorts: { min: PMIN, max: PMAX }, users, idleTimeoutMs: 20_000 },
    files: { maxFileBytes: 4 * 1024 * 1024, workspaceBytes: 6 * 1024 * 1024, agentBytes: 10 * 1024 * 1024 },
  });
  certDir = await mkdtemp(join(tmpdir(), 'st-ftp-cert-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', join(certDir, 'k'), '-out', join(certDir, 'c')], { stdio: 'ignore' });
});
afterAll(async () => {
  await h?.close();
  if (certDir) await rm(certDir, { recursive: true, force: true });
});

async function client(user: keyof typeof PW, o: { password?: string; port?: number; secure?: boolean } = {}): Promise<Client> {
  const c = new Client(15_000);
  try {
    await c.access({
      host: '127.0.0.1',
      port: o.port ?? h.agent.ftp!.port,
      user,
      password: o.password ?? PW[user],
      secure: o.secure ?? false,
      secureOptions: { rejectUnauthorized: false },
    });
  } catch (e) {
    c.close();
    throw e;
  }
  return c;
}

async function download(c: Client, path: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(ch: Buffer, _e, cb) {
      chunks.push(ch);
      cb();
    },
  });
  await c.downloadTo(sink, path);
  return Buffer.concat(chunks);
}

/** The FTP reply code an operation failed with (it must fail). */
async function failsWith(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (e) {
    return (e as { code?: number }).code ?? -1;
  }
  throw new Error('expected the FTP operation to fail');
}

async function task(id: string, script: string, hold: boolean): Promise<void> {
  const r = await h.req('POST', '/v1/tasks', { token: 'submit', json: { id, kind: 'process', ...(hold ? { hold: true } : {}), spec: { command: '/bin/sh', args: ['-c', script] } } });
  expect(r.status, await r.clone().text()).toBe(201);
  if (!hold) expect((await finished(h, id)).state).toBe('succeeded');
}

async function partials(id: string): Promise<string[]> {
  const ws = join(h.dir, 'workspaces', id);
  if (!existsSync(ws)) return [];
  return (await readdir(ws, { recursive: true })).map(String).filter((n) => n.endsWith('.part'));
}

describe('workspaces over FTP', () => {
  it('round trip over EPSV: inputs uploaded to a held task, the task reads them, outputs downloaded', async () => {
    await task('ftp-b', 'mkdir -p out; echo secret-of-b > out/secret.txt', false);
    await task('ftp-a', 'set -e; mkdir -p out; sha256sum inputs/data.bin | cut -d" " -f1 > out/sum.txt; cp inputs/data.bin out/copy.bin; cat inputs/sub/note.txt > out/note.txt', true);
    const c = await client('alice');
    try {
      expect((await c.list('/')).map((e) => e.name)).toEqual(['ftp-a']); // ftp-b is not alice's; the others do not exist yet
      const data = randomBytes(1024 * 1024 + 13);
      await c.uploadFrom(Readable.from([data]), '/ftp-a/inputs/data.bin');
      await c.send('MKD /ftp-a/inputs/sub');
      await c.cd('/ftp-a/inputs/sub');
      expect(await c.pwd()).toBe('/ftp-a/inputs/sub');
      await c.uploadFrom(Readable.from([Buffer.from('héllo ✓\n')]), 'note.txt');
      await c.cd('..');
      expect(await c.pwd()).toBe('/ftp-a/inputs');
      const ls = await c.list();
      expect(ls.map((e) => [e.name, e.isDirectory, e.isFile ? e.size : 0])).toEqual([
        ['data.bin', false, data.length],
        ['sub', true, 0],
      ]);
      expect(await partials('ftp-a')).toEqual([]);
      expect((await h.req('POST', '/v1/tasks/ftp-a/start', { token: 'submit' })).status).toBe(202);
      expect((await finished(h, 'ftp-a')).state).toBe('succeeded');
      expect((await download(c, '/ftp-a/out/sum.txt')).toString().trim()).toBe(sha(data));
      const copy = await download(c, '/ftp-a/out/copy.bin');
      expect(sha(copy)).toBe(sha(data));
      expect((await download(c, '/ftp-a/out/note.txt')).toString()).toBe('héllo ✓\n');
      expect(await c.size('/ftp-a/out/copy.bin')).toBe(data.length);
      // The task ran: its inputs are closed to uploads now.
      expect(await failsWith(c.uploadFrom(Readable.from([Buffer.from('late')]), '/ftp-a/inputs/late.txt'))).toBe(550);
    } finally {
      c.close();
    }
  });

  it('forced PASV answers with a port inside the configured range (EPSV too)', async () => {
    const c = await client('alice');
    try {
      const ports: number[] = [];
      c.prepareTransfer = async (ftp: FTPContext): Promise<FTPResponse> => {
        const r = await enterPassiveModeIPv4(ftp);
        const m = /(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)/.exec(r.message)!;
        expect(m.slice(1, 5).join('.')).toBe('127.0.0.1');
        ports.push(Number(m[5]) * 256 + Number(m[6]));
        return r;
      };
      expect((await c.list('/ftp-a/out')).map((e) => e.name)).toEqual(['copy.bin', 'note.txt', 'sum.txt']);
      expect((await download(c, '/ftp-a/out/note.txt')).toString()).toBe('héllo ✓\n');
      expect(ports).toHaveLength(2);
      for (const p of ports) expect(p >= PMIN && p <= PMAX, `${p} in ${PMIN}-${PMAX}`).toBe(true);
      const epsv = await c.send('EPSV');
      const port = Number(/\|\|\|(\d+)\|/.exec(epsv.message)![1]);
      expect(port >= PMIN && port <= PMAX).toBe(true);
    } finally {
      c.close();
    }
  });

  it('FTPS (AUTH TLS, self-signed): transfers work over TLS, plaintext logins are refused', async () => {
    const before = signalCounts();
    const ftps = await startFtpServer(
      { files: h.agent.files, queue: h.agent.queue },
      { port: 0, passivePorts: { min: PMIN, max: PMAX }, users, tls: { certFile: join(certDir, 'c'), keyFile: join(certDir, 'k') } },
    );
    try {
      expect(signalCounts()).toEqual(before);
      const c = await client('alice', { port: ftps.port, secure: true });
      try {
        expect(await c.list('/ftp-a/out')).toHaveLength(3);
        expect((await download(c, '/ftp-a/out/note.txt')).toString()).toBe('héllo ✓\n');
        c.prepareTransfer = enterPassiveModeIPv4;
        expect((await download(c, '/ftp-a/out/sum.txt')).length).toBe(65);
      } finally {
        c.close();
      }
      expect(await failsWith(client('alice', { port: ftps.port, secure: false }))).toBe(530);
    } finally {
      await ftps.close();
    }
    expect(signalCounts()).toEqual(before);
  });

  it('confinement: other tasks, .., absolute paths, planted links and FIFOs are never served', async () => {
    await task('ftp-links', 'set -e; mkdir -p out; echo ok > out/ok.txt; ln -s /etc out/etc; ln -s /etc/passwd out/passwd; ln -s ../../ftp-b out/sib; mkfifo out/fifo', false);
    const c = await client('alice');
    try {
      expect((await c.list('/')).map((e) => e.name)).toEqual(['ftp-a', 'ftp-links']);
      expect((await download(c, '/ftp-links/out/ok.txt')).toString()).toBe('ok\n');
      for (const p of [
        '/ftp-b/out/secret.txt',
        '/ftp-a/../ftp-b/out/secret.txt',
        'ftp-b/out/secret.txt',
        '/ftp-a/%2e%2e/ftp-b/out/secret.txt',
        '/etc/passwd',
        '//etc/passwd',
        '/ftp-links/out/passwd',
        '/ftp-links/out/etc/passwd',
        '/ftp-links/out/sib/out/secret.txt',
        '/ftp-links/out/etc',
      ]) {
        expect(await failsWith(download(c, p)), p).toBeGreaterThanOrEqual(500);
      }
      await c.cd('/ftp-a');
      expect(await failsWith(download(c, '../ftp-b/out/secret.txt'))).toBe(551);
      for (const d of ['/ftp-b', '/ftp-links/out/etc', '/ftp-links/out/sib', '/etc']) expect(await failsWith(c.cd(d)), d).toBe(550);
      await c.cd('/');
      for (const d of ['/ftp-b', '/ftp-links/out/sib/out', '/ftp-links/out/etc/ssl']) expect(await failsWith(c.list(d)), d).toBeGreaterThanOrEqual(450);
      // LIST of a link names the link itself (like `ls -ld`), never what it points to.
      for (const d of ['/ftp-links/out/etc', '/ftp-links/out/sib']) {
        const ls = await c.list(d);
        expect(ls.map((e) => [e.name, e.isSymbolicLink]), d).toEqual([[d.split('/').pop(), true]]);
      }
      // Links and the FIFO are listed for what they are, not followed.
      const out = new Map((await c.list('/ftp-links/out')).map((e) => [e.name, e]));
      expect([...out.keys()].sort()).toEqual(['etc', 'fifo', 'ok.txt', 'passwd', 'sib']);
      for (const n of ['etc', 'passwd', 'sib']) expect(out.get(n)!.isSymbolicLink, n).toBe(true);
      expect(out.get('fifo')!.isFile).toBe(false);
      const t0 = Date.now();
      expect(await failsWith(download(c, '/ftp-links/out/fifo'))).toBe(551);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(await failsWith(c.size('/ftp-links/out/passwd'))).toBe(550);
      expect(await failsWith(c.size('/ftp-links/out/fifo'))).toBe(550);
      // The client can still work after all those refusals.
      expect((await download(c, '/ftp-links/out/ok.txt')).toString()).toBe('ok\n');
    } finally {
      c.close();
    }
  });

  it('logins and permissions: wrong password, read-only user, uploads only into inputs/ of a held task, refused commands', async () => {
    expect(await failsWith(client('alice', { password: 'wrong' }))).toBe(530);
    expect(await failsWith(client('carol', { password: PW.alice }))).toBe(530);
    await task('ftp-h', 'true', true);
    const bob = await client('bob');
    try {
      expect((await bob.list('/')).map((e) => e.name)).toEqual(['ftp-a', 'ftp-b', 'ftp-h', 'ftp-links']);
      expect((await download(bob, '/ftp-b/out/secret.txt')).toString()).toBe('secret-of-b\n');
      expect(await failsWith(bob.uploadFrom(Readable.from([Buffer.from('x')]), '/ftp-h/inputs/x.txt'))).toBe(550);
      expect(await failsWith(bob.remove('/ftp-b/out/secret.txt'))).toBe(550);
      expect(await failsWith(bob.send('MKD /ftp-h/inputs/d'))).toBe(550);
    } finally {
      bob.close();
    }
    const c = await client('alice');
    try {
      expect(await failsWith(c.uploadFrom(Readable.from([Buffer.from('x')]), '/ftp-h/x.txt'))).toBe(550);
      expect(await failsWith(c.uploadFrom(Readable.from([Buffer.from('x')]), '/ftp-h/out/x.txt'))).toBe(550);
      expect(await failsWith(c.uploadFrom(Readable.from([Buffer.from('x')]), '/ftp-links/inputs/x.txt'))).toBe(550); // finished task
      expect(await failsWith(c.uploadFrom(Readable.from([Buffer.from('x')]), '/ftp-b/inputs/x.txt'))).toBe(550); // not hers
      expect(await failsWith(c.send('MKD /ftp-h/out'))).toBe(550);
      await c.uploadFrom(Readable.from([Buffer.from('keep')]), '/ftp-h/inputs/ok.txt');
      expect((await download(c, '/ftp-h/inputs/ok.txt')).toString()).toBe('keep');
      await c.remove('/ftp-h/inputs/ok.txt');
      expect(existsSync(join(h.dir, 'workspaces', 'ftp-h', 'inputs', 'ok.txt'))).toBe(false);
      expect(await failsWith(c.send('DELE /ftp-h'))).toBe(550);
      for (const cmd of ['SITE CHMOD 777 /ftp-h/inputs', 'PORT 127,0,0,1,4,1', 'EPRT |1|127.0.0.1|1025|', 'RNFR /ftp-h/inputs', 'APPE /ftp-h/inputs/a', 'STOU']) {
        expect(await failsWith(c.send(cmd)), cmd).toBe(502);
      }
      expect(await failsWith(c.send('MLSD /'))).toBe(502);
    } finally {
      c.close();
    }
  });

  it('an aborted STOR (data connection reset mid-way) leaves nothing, not even a .part file', async () => {
    const s = await rawSession(h.agent.ftp!.port);
    try {
      expect(await s.cmd('USER alice')).toMatch(/^331/);
      expect(await s.cmd(`PASS ${PW.alice}`)).toMatch(/^230/);
      expect(await s.cmd('TYPE I')).toMatch(/^200/);
      const epsv = await s.cmd('EPSV');
      const port = Number(/\|\|\|(\d+)\|/.exec(epsv)![1]);
      const data = connect(port, '127.0.0.1');
      await new Promise((r) => data.once('connect', r));
      s.send('STOR /ftp-h/inputs/big.bin');
      expect(await s.reply()).toMatch(/^150/);
      data.write(randomBytes(512 * 1024));
      const deadline = Date.now() + 20_000;
      while ((await partials('ftp-h')).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect((await partials('ftp-h')).length).toBe(1); // the upload is under way
      data.resetAndDestroy();
      expect(await s.reply()).toMatch(/^55\d/);
      const end = Date.now() + 20_000;
      while ((await partials('ftp-h')).length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      expect(await partials('ftp-h')).toEqual([]);
      expect(existsSync(join(h.dir, 'workspaces', 'ftp-h', 'inputs', 'big.bin'))).toBe(false);
      expect(await s.cmd('NOOP')).toMatch(/^200/);
    } finally {
      s.close();
    }
  });

  it('config: no anonymous users, plaintext only on loopback, a narrow passive range', () => {
    const ok = (c: object) => FtpConfigSchema.safeParse({ enabled: true, users: [users[0]], ...c }).success;
    expect(ok({})).toBe(true);
    expect(ok({ users: [{ ...users[0], name: 'anonymous' }] })).toBe(false);
    expect(ok({ users: [] })).toBe(false);
    expect(ok({ host: '0.0.0.0' })).toBe(false);
    expect(ok({ host: '0.0.0.0', tls: { certFile: 'c', keyFile: 'k' } })).toBe(true);
    expect(ok({ passivePorts: { min: 30010, max: 30000 } })).toBe(false);
    expect(ok({ passivePorts: { min: 30000, max: 40000 } })).toBe(false);
    expect(ok({ pasvUrl: 'example.com' })).toBe(false);
    expect(ok({ users: [users[0], users[0]] })).toBe(false);
  });

  it('idle connections are closed (421) and connections past maxConnections are refused', async () => {
    const ftp = await startFtpServer({ files: h.agent.files, queue: h.agent.queue }, { port: 0, passivePorts: { min: PMIN, max: PMAX }, users, idleTimeoutMs: 1000, maxConnections: 1 });
    try {
      const s = await rawSession(ftp.port);
      // A second connection while the first is open: closed without a greeting.
      const second = await new Promise<string>((resolve) => {
        let got = '';
        const x = connect(ftp.port, '127.0.0.1');
        x.on('data', (d) => (got += d));
        x.once('close', () => resolve(got));
        x.once('error', () => undefined);
      });
      expect(second).not.toMatch(/^220/);
      const t0 = Date.now();
      expect(await s.reply()).toMatch(/^421 /);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(500);
      s.close();
    } finally {
      await ftp.close();
    }
  });

  it('signal listeners are left as they were, and close() stops listening', async () => {
    const before = signalCounts();
    const ftp = await startFtpServer({ files: h.agent.files, queue: h.agent.queue }, { port: 0, passivePorts: { min: PMIN, max: PMAX }, users });
    expect(signalCounts()).toEqual(before);
    const c = await client('alice', { port: ftp.port });
    expect(ftp.connections()).toBe(1);
    await ftp.close();
    c.close();
    expect(signalCounts()).toEqual(before);
    const refused = await new Promise<string>((resolve) => {
      const s = connect(ftp.port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve('connected');
      });
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
    // The agent's own FTP server added none either.
    expect(signalCounts()).toEqual(signalsBefore);
  });

  it('a fresh held task: its inputs/ folder can be entered and listed before the first upload (as curl does: CWD per part, then STOR)', async () => {
    await task('ftp-fresh', 'cat inputs/a.txt inputs/b.txt > /dev/null', true);
    const c = await client('alice');
    try {
      expect((await c.list('/ftp-fresh')).map((e) => [e.name, e.isDirectory])).toEqual([['inputs', true]]);
      await c.cd('/ftp-fresh/inputs');
      expect(await c.pwd()).toBe('/ftp-fresh/inputs');
      expect(await c.list()).toEqual([]);
      await c.uploadFrom(Readable.from([Buffer.from('first')]), 'a.txt');
      expect((await c.list()).map((e) => e.name)).toEqual(['a.txt']);
      // outputs/ is no folder to enter before the task has made it.
      expect(await failsWith(c.cd('/ftp-fresh/outputs'))).toBe(550);
    } finally {
      c.close();
    }
    // curl itself, a client that walks the path with CWD before its STOR.
    const src = join(certDir, 'b.txt');
    execFileSync('sh', ['-c', `printf second > '${src}'`]);
    // (Not execFileSync: the server answers from this process's event loop.)
    await new Promise<void>((resolve, reject) =>
      execFile('curl', ['-sS', '--max-time', '20', '-T', src, `ftp://alice:${PW.alice}@127.0.0.1:${h.agent.ftp!.port}/ftp-fresh/inputs/b.txt`], (e, _o, err) => (e ? reject(new Error(`curl: ${err}`)) : resolve())),
    );
    expect((await h.req('POST', '/v1/tasks/ftp-fresh/start', { token: 'submit' })).status).toBe(202);
    expect((await finished(h, 'ftp-fresh')).state).toBe('succeeded');
  });

  it('Agent.close() closes the FTP server it started (clients disconnected, port released)', async () => {
    const before = signalCounts();
    const h2 = await startAgent({ ftp: { enabled: true, port: 0, passivePorts: { min: PMIN, max: PMAX }, users } });
    const port = h2.agent.ftp!.port;
    expect(h2.agent.ftp!.url).toBe(`ftp://127.0.0.1:${port}`);
    expect(signalCounts()).toEqual(before);
    const c = await client('bob', { port });
    await h2.close();
    expect(await failsWith(c.list('/'))).toBeDefined();
    c.close();
    const refused = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve('connected')));
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
    expect(signalCounts()).toEqual(before);
  });
});

/** A bare FTP control connection (for what basic-ftp will not do: cutting a STOR mid-way). */
async function rawSession(port: number): Promise<{ send(line: string): void; reply(): Promise<string>; cmd(line: string): Promise<string>; close(): void }> {
  const sock: Socket = connect(port, '127.0.0.1');
  let buf = '';
  const lines: string[] = [];
  let wake: (() => void) | undefined;
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\r\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 2);
    }
    wake?.();
  });
  const reply = async (): Promise<string> => {
    for (;;) {
      while (lines.length) {
        const l = lines.shift()!;
        if (/^\d{3} /.test(l)) return l;
      }
      await new Promise<void>((r, j) => {
        wake = r;
        setTimeout(() => j(new Error('no FTP reply within 20 s')), 20_000).unref();
      });
    }
  };
  expect(await reply()).toMatch(/^220/);
  const send = (line: string) => void sock.write(`${line}\r\n`);
  return { send, reply, cmd: async (line) => (send(line), reply()), close: () => sock.destroy() };
}
