// Pieces of smoothtask/docker that need no engine: demuxer, compose config parsing, ZIP,
// port checks against real sockets, spec validation.
import { once } from 'node:events';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/errors/index.js';
import {
  ContainerTaskSpecSchema,
  ComposeTaskSpecSchema,
  InMemoryPortLeases,
  OutputTooLargeError,
  PortCollisionError,
  connectDocker,
  DockerUnavailableError,
  hostPortHolder,
  listeningSockets,
  resolvePorts,
  portLeasesFrom,
  instanceId,
  instanceAlive,
  freeTcpPort,
  zipDirectory,
} from '../../lib/docker/index.js';
import { ResourceLeaseManager } from '../../lib/process/index.js';
import { labelOverride, parseComposeConfig } from '../../lib/docker/compose-cli.js';
import { DockerDemuxer } from '../../lib/docker/demux.js';
import { validate } from '../../lib/errors/validate.js';
import { readZip, tempDir } from './helpers.js';

function frame(type: number, payload: string | Buffer): Buffer {
  const p = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const h = Buffer.alloc(8);
  h[0] = type;
  h.writeUInt32BE(p.length, 4);
  return Buffer.concat([h, p]);
}

describe('DockerDemuxer', () => {
  it('splits frames cut at arbitrary byte boundaries into stdout and stderr', async () => {
    const frames = Buffer.concat([frame(1, 'hello '), frame(2, 'oops\n'), frame(1, 'world\n'), frame(0, 'in'), frame(2, Buffer.alloc(0))]);
    // Feed one byte at a time: every header and payload is split.
    const pieces = [...frames].map((b) => Buffer.from([b]));
    const got: Record<string, string> = { stdout: '', stderr: '' };
    const d = new DockerDemuxer((s, c) => void (got[s] += c.toString()));
    await pipeline(Readable.from(pieces), d);
    expect(got).toEqual({ stdout: 'hello world\n', stderr: 'oops\n' });
    expect(d.droppedBytes).toBe(2);
  });

  it('applies backpressure: the source is not drained while the sink is slow', async () => {
    const total = 200;
    let produced = 0;
    const src = new Readable({
      highWaterMark: 1024,
      read() {
        if (produced === total) return this.push(null);
        produced++;
        this.push(frame(1, Buffer.alloc(4096, 97)));
      },
    });
    let release!: () => void;
    let blocked = true;
    const gate = new Promise<void>((r) => (release = r));
    let consumed = 0;
    const d = new DockerDemuxer(async (_s, c) => {
      consumed += c.length;
      if (blocked) await gate;
    });
    const done = pipeline(src, d);
    await new Promise((r) => setTimeout(r, 100));
    // With the sink stuck on the first chunk, only buffers' worth of frames were read.
    const producedWhileBlocked = produced;
    expect(producedWhileBlocked).toBeLessThan(40);
    blocked = false;
    release();
    await done;
    expect(consumed).toBe(total * 4096);
  });
});

describe('compose config parsing', () => {
  const yaml = `networks:
  back: {}
  ext:
    external: true
    name: ext
services:
  job:
    build:
      context: /tmp/ct/b
    command:
    - sh
    networks:
      back: null
  web:
    image: smoothtask/busybox:latest
version: '3.8'
volumes:
  data: {}
  shared:
    external: true
`;
  it('finds services, build sections, networks, volumes, externals and the version', () => {
    const m = parseComposeConfig(yaml);
    expect([...m.services]).toEqual([
      ['job', { build: true }],
      ['web', { build: false }],
    ]);
    expect(m.networks.get('ext')?.external).toBe(true);
    expect(m.networks.get('back')?.external).toBe(false);
    expect(m.volumes.get('shared')?.external).toBe(true);
    expect(m.version).toBe('3.8');
  });
  it('labels everything except external resources', () => {
    const o = JSON.parse(labelOverride(parseComposeConfig(yaml), { a: 'b' }));
    expect(o.services.job).toEqual({ labels: { a: 'b' }, build: { labels: { a: 'b' } } });
    expect(o.services.web).toEqual({ labels: { a: 'b' } });
    expect(Object.keys(o.networks).sort()).toEqual(['back', 'default']);
    expect(Object.keys(o.volumes)).toEqual(['data']);
    expect(o.version).toBe('3.8');
  });
});

describe('zipDirectory', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => Promise.all(cleanups.map((c) => c())));

  it('writes a valid ZIP of nested files and never follows symlinks', async () => {
    const t = await tempDir('zip');
    cleanups.push(t.cleanup);
    const src = join(t.dir, 'out');
    await mkdir(join(src, 'a/b'), { recursive: true });
    await writeFile(join(src, 'top.txt'), 'top');
    await writeFile(join(src, 'a/b/deep.bin'), Buffer.alloc(100_000, 7));
    await symlink('/etc/passwd', join(src, 'leak'));
    const info = await zipDirectory(src, join(t.dir, 'o.zip'));
    expect(info?.files).toBe(2);
    expect(info?.skipped).toEqual(['leak']);
    const entries = await readZip(join(t.dir, 'o.zip'));
    expect(entries.get('top.txt')).toBe('top');
    expect(entries.get('a/b/deep.bin')?.length).toBe(100_000);
    expect(entries.has('leak')).toBe(false);
  });

  it('refuses outputs over the cap with a typed error and leaves no file', async () => {
    const t = await tempDir('zipcap');
    cleanups.push(t.cleanup);
    await writeFile(join(t.dir, 'big'), Buffer.alloc(5000));
    const dest = join(t.dir, 'sub', 'o.zip');
    const err = await zipDirectory(t.dir, dest, { maxBytes: 4096 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutputTooLargeError);
    expect((err as OutputTooLargeError).limitBytes).toBe(4096);
    const { existsSync } = await import('node:fs');
    expect(existsSync(dest)).toBe(false);
  });

  it('returns undefined for a missing or empty directory', async () => {
    const t = await tempDir('zipempty');
    cleanups.push(t.cleanup);
    expect(await zipDirectory(join(t.dir, 'nope'), join(t.dir, 'x.zip'))).toBeUndefined();
    expect(await zipDirectory(t.dir, join(t.dir, 'x.zip'))).toBeUndefined();
  });
});

describe('port collisions', () => {
  let server: Server;
  let port: number;
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('sees a real listening socket in /proc/net/tcp and names this process as the holder', async () => {
    server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
    expect(listeningSockets().some((s) => s.port === port)).toBe(true);
    expect(hostPortHolder(port)).toContain(`process ${process.pid}`);
  });

  it('refuses a port held by a host socket, naming the holder', async () => {
    const leases = new InMemoryPortLeases();
    const err = await resolvePorts([{ container: 80, host: port, protocol: 'tcp', hostIp: '127.0.0.1' }], 'refuse', 't1', leases).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortCollisionError);
    expect((err as PortCollisionError).holder).toContain(`process ${process.pid}`);
    expect(leases.entries()).toEqual([]);
  });

  it('refuses a port leased by another task, or reassigns it', async () => {
    const leases = new InMemoryPortLeases();
    const [a] = await resolvePorts([{ container: 80, protocol: 'tcp', hostIp: '127.0.0.1' }], 'refuse', 'task-a', leases);
    expect(a?.host).toBeGreaterThan(0);
    const err = await resolvePorts([{ container: 80, host: a!.host, protocol: 'tcp', hostIp: '127.0.0.1' }], 'refuse', 'task-b', leases).catch((e: unknown) => e);
    expect((err as PortCollisionError).holder).toBe('task task-a');
    const [b] = await resolvePorts([{ container: 80, host: a!.host, protocol: 'tcp', hostIp: '127.0.0.1' }], 'reassign', 'task-b', leases);
    expect(b?.host).not.toBe(a!.host);
    expect(b?.requested).toBe(a!.host);
    expect(b?.reassignedFrom).toBe('task task-a');
    leases.release('task-a');
    expect(leases.holder(a!.host)).toBeUndefined();
    expect(leases.holder(b!.host)).toBe('task-b');
  });
});

describe('ports through the task core lease manager', () => {
  it('refuses a port another task leased through ResourceLeaseManager, reassigns from the pool, returns only its own leases', async () => {
    const manager = new ResourceLeaseManager({ resources: { port: { range: [20000, 20009] }, gpu: { ids: [0] } } });
    const book = portLeasesFrom(manager);
    manager.tryAcquire('proc-task', { resource: 'port', ids: ['20005'] });
    const err = await resolvePorts([{ container: 80, host: 20005, protocol: 'tcp', hostIp: '127.0.0.1' }], 'refuse', 'docker-task', book).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortCollisionError);
    expect((err as PortCollisionError).holder).toBe('task proc-task');
    const gpu = manager.tryAcquire('docker-task', { resource: 'gpu' });
    const [p] = await resolvePorts([{ container: 80, host: 20005, protocol: 'tcp', hostIp: '127.0.0.1' }], 'reassign', 'docker-task', book);
    expect(p!.host).toBeGreaterThanOrEqual(20000);
    expect(p!.host).toBeLessThanOrEqual(20009);
    expect(p!.host).not.toBe(20005);
    expect(book.holder(p!.host)).toBe('docker-task');
    // A port outside the pool is tracked locally.
    const outside = await freeTcpPort();
    await resolvePorts([{ container: 81, host: outside, protocol: 'tcp', hostIp: '127.0.0.1' }], 'refuse', 'docker-task', book);
    expect(book.holder(outside)).toBe('docker-task');
    book.release('docker-task');
    expect(book.holder(p!.host)).toBeUndefined();
    expect(book.holder(outside)).toBeUndefined();
    // The task's GPU lease belongs to the queue, not to the port book.
    expect(manager.leases().map((l) => l.id)).toContain(gpu!.id);
  });
});

describe('owner and instance ids', () => {
  it('tell a live creating process from a dead one, even with the pid reused', () => {
    const me = instanceId();
    expect(me).toBe(`${hostname()}:${process.pid}:${me.split(':')[2]}`);
    expect(instanceAlive(me)).toBe(true);
    // Same pid, other start time: the pid was reused by another process.
    expect(instanceAlive(`${hostname()}:${process.pid}:1`)).toBe(false);
    expect(instanceAlive(`${hostname()}:999999999:1`)).toBe(false);
    // Another host: cannot tell, so treated as alive (never reaped by scope 'dead').
    expect(instanceAlive(`not-${hostname()}:1:1`)).toBe(true);
  });
});

describe('specs', () => {
  it('requires exactly one of image and build, and names bad options', () => {
    expect(() => validate(ContainerTaskSpecSchema, {}, 'spec')).toThrow(ConfigError);
    expect(() => validate(ContainerTaskSpecSchema, { image: 'x', build: { context: '/tmp' } }, 'spec')).toThrow(/exactly one/);
    const e = (() => {
      try {
        validate(ContainerTaskSpecSchema, { image: 'x', limits: { cpus: -1 }, labels: { 'smoothtask.x': 'y' }, ports: [{ container: 0 }] }, 'spec');
      } catch (err) {
        return err as ConfigError;
      }
    })();
    expect(e?.issues.join('\n')).toMatch(/limits\.cpus/);
    expect(e?.issues.join('\n')).toMatch(/labels/);
    expect(e?.issues.join('\n')).toMatch(/ports\.0\.container/);
    expect(() => validate(ComposeTaskSpecSchema, { files: ['a.yml'], services: ['x'], exitFrom: 'y' }, 'spec')).toThrow(/exitFrom/);
    const ok = validate(ContainerTaskSpecSchema, { image: 'x' }, 'spec');
    expect(ok.onPortConflict).toBe('refuse');
    expect(ok.workspaceMount).toBe('/work');
  });
});

describe('engine connection', () => {
  it('gives a typed DockerUnavailableError naming the socket when no engine answers', async () => {
    const t = await tempDir('nosock');
    const sock = join(t.dir, 'docker.sock');
    const err = await connectDocker({ socketPath: sock, pingTimeoutMs: 2000 }).catch((e: unknown) => e);
    await t.cleanup();
    expect(err).toBeInstanceOf(DockerUnavailableError);
    expect((err as DockerUnavailableError).socketPath).toBe(sock);
    expect((err as Error).message).toContain(sock);
  });
});
