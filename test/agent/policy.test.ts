/**
 * The spec policy for remote callers: every refusal is 403 ERR_POLICY with the rule that
 * refused, before anything is created (no record, no store document, no workspace, no container).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentConfigSchema, PolicyViolationError } from '../../lib/agent/index.js';
import { checkPolicy } from '../../lib/agent/policy.js';
import { finished, startAgent, type Harness } from './api-harness.js';

const errOf = async (r: Response) => ((await r.json()) as { error: { code: string; message: string; rule?: string } }).error;

function dockerUp(): boolean {
  try {
    execFileSync('docker', ['version', '--format', '{{.Server.Version}}'], { stdio: 'pipe', timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

let roots: string;
beforeAll(async () => {
  roots = await mkdtemp(join(tmpdir(), 'st-agent-a-roots-'));
  await mkdir(join(roots, 'data'));
  await symlink('/', join(roots, 'data', 'escape'));
  await symlink('/var/run', join(roots, 'data', 'run-link'));
});
afterAll(async () => {
  await rm(roots, { recursive: true, force: true });
});

const policy = (over: Record<string, unknown> = {}) =>
  AgentConfigSchema.parse({
    dataDir: '/tmp/unused',
    policy: {
      process: { commands: ['/bin/echo'] },
      docker: { images: ['smoothtask/busybox:latest', 'registry.local/*'], mountRoots: [join(roots, 'data')] },
      limits: { maxTimeoutMs: 60_000, maxMemoryBytes: 256 * 1024 * 1024, maxCpus: 2, maxPids: 100 },
      ...over,
    },
  }).policy;

const refused = (spec: Record<string, unknown>, kind = 'container', timeoutMs?: number): string => {
  try {
    checkPolicy(policy(), 30_000, { kind, spec, timeoutMs });
  } catch (e) {
    expect(e).toBeInstanceOf(PolicyViolationError);
    return (e as PolicyViolationError).rule;
  }
  return 'allowed';
};

describe('checkPolicy', () => {
  const img = 'smoothtask/busybox:latest';
  it.each([
    ['mount of /', { image: img, mounts: [{ source: '/', target: '/host' }] }, 'docker.allowDockerSocket'],
    ['the Docker socket', { image: img, mounts: [{ source: '/var/run/docker.sock', target: '/s' }] }, 'docker.allowDockerSocket'],
    ['/run/docker.sock', { image: img, mounts: [{ source: '/run/docker.sock', target: '/s' }] }, 'docker.allowDockerSocket'],
    ['a directory holding the socket', { image: img, mounts: [{ source: '/var/run', target: '/r' }] }, 'docker.allowDockerSocket'],
    ['a symlink inside the root to /var/run', { image: img, mounts: [{ source: '<roots>/data/run-link', target: '/r' }] }, 'docker.allowDockerSocket'],
    ['a symlink inside the root to /', { image: img, mounts: [{ source: '<roots>/data/escape', target: '/r' }] }, 'docker.allowDockerSocket'],
    ['.. out of the root', { image: img, mounts: [{ source: '<roots>/data/../', target: '/r' }] }, 'docker.mountRoots'],
    ['/etc', { image: img, mounts: [{ source: '/etc', target: '/e' }] }, 'docker.mountRoots'],
    ['host network', { image: img, network: 'host' }, 'docker.networkModes'],
    ['another container network', { image: img, network: 'container:abc' }, 'docker.networkModes'],
    ['an image not listed', { image: 'alpine:latest' }, 'docker.images'],
    ['a prefix-looking image', { image: 'registry.localhost/x' }, 'docker.images'],
    ['a build context outside the roots', { build: { context: '/' } }, 'docker.allowDockerSocket'],
    ['a port on all interfaces', { image: img, ports: [{ container: 80, hostIp: '0.0.0.0' }] }, 'docker.ports'],
    ['memory over the cap', { image: img, limits: { memoryBytes: 1024 * 1024 * 1024 } }, 'limits.maxMemoryBytes'],
    ['cpus over the cap', { image: img, limits: { cpus: 8 } }, 'limits.maxCpus'],
    ['pids over the cap', { image: img, limits: { pids: 1000 } }, 'limits.maxPids'],
    ['spec.timeoutMs over the cap', { image: img, timeoutMs: 120_000 }, 'limits.maxTimeoutMs'],
  ])('container: %s is refused', (_what, spec, rule) => {
    const s = JSON.parse(JSON.stringify(spec).replaceAll('<roots>', roots)) as Record<string, unknown>;
    expect(refused(s)).toBe(rule);
  });

  it('allowed: a listed image, a prefix image, a mount inside the root; caps filled in', () => {
    const d = checkPolicy(policy(), 30_000, { kind: 'container', spec: { image: 'registry.local/tool:1', mounts: [{ source: join(roots, 'data'), target: '/d' }], network: 'none' } });
    expect(d.limits).toEqual({ memoryBytes: 256 * 1024 * 1024, cpus: 2, pids: 100 });
    expect(d.timeoutMs).toBe(30_000);
  });

  it('process: commands, shell, empty list; task timeout cap', () => {
    expect(refused({ command: '/bin/rm', args: ['-rf', '/'] }, 'process')).toBe('process.commands');
    expect(refused({ command: 'echo' }, 'process')).toBe('process.commands');
    expect(refused({ command: 'echo hi', shell: true }, 'process')).toBe('process.shell');
    expect(refused({ command: '/bin/echo' }, 'process', 120_000)).toBe('limits.maxTimeoutMs');
    expect(refused({ command: '/bin/echo' }, 'process')).toBe('allowed');
    expect(() => checkPolicy(policy({ process: { commands: [] } }), 1000, { kind: 'process', spec: { command: '/bin/echo' } })).toThrow(/not allowed/);
  });

  it('the Docker socket is allowed only when explicitly configured', () => {
    const p = policy({ docker: { images: ['x'], mountRoots: ['/var/run'], allowDockerSocket: true } });
    expect(() => checkPolicy(p, 1000, { kind: 'container', spec: { image: 'x', mounts: [{ source: '/var/run/docker.sock', target: '/s' }] } })).not.toThrow();
  });

  it('compose: files must be absolute and under the mount roots', () => {
    expect(refused({ files: ['/etc/compose.yml'] }, 'compose')).toBe('docker.mountRoots');
    expect(refused({ files: ['compose.yml'] }, 'compose')).toBe('docker.mountRoots');
    expect(refused({ files: [join(roots, 'data', 'compose.yml')] }, 'compose')).toBe('allowed');
  });
});

describe('over HTTP: 403 with the rule, nothing created', () => {
  let h: Harness;
  let withDocker = false;
  beforeAll(async () => {
    withDocker = dockerUp();
    h = await startAgent({
      executors: { process: true, docker: withDocker, compose: false },
      policy: {
        process: { commands: ['/bin/echo'] },
        docker: { images: ['smoothtask/busybox:latest'], mountRoots: [join(roots, 'data')] },
        limits: { maxTimeoutMs: 60_000, maxMemoryBytes: null, maxCpus: null, maxPids: null },
      },
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  const expectNothing = async () => expect(await h.created()).toEqual({ recorded: [], workspaces: [], inMemory: 0 });

  it('a process command not allowed', async () => {
    const r = await h.req('POST', '/v1/tasks', { json: { kind: 'process', spec: { command: '/bin/sh', args: ['-c', 'id'] } } });
    expect(r.status).toBe(403);
    const e = await errOf(r);
    expect(e).toMatchObject({ code: 'ERR_POLICY', rule: 'process.commands' });
    expect(e.message).toContain('/bin/sh');
    await expectNothing();
  });

  it('a timeout over the cap', async () => {
    const r = await h.req('POST', '/v1/tasks', { json: { kind: 'process', spec: { command: '/bin/echo' }, timeoutMs: 3_600_000 } });
    expect(r.status).toBe(403);
    expect((await errOf(r)).rule).toBe('limits.maxTimeoutMs');
    await expectNothing();
  });

  it('an allowed command runs, with the default timeout capped', async () => {
    const r = await h.req('POST', '/v1/tasks', { json: { kind: 'process', id: 'allowed', spec: { command: '/bin/echo', args: ['ok'] } } });
    expect(r.status).toBe(201);
    const t = await finished(h, 'allowed');
    expect(t.state).toBe('succeeded');
    expect(t.timeoutMs).toBe(60_000);
    expect((await h.req('DELETE', '/v1/tasks/allowed')).status).toBe(204);
  });

  it.each([
    ['mount of /', { image: 'smoothtask/busybox:latest', mounts: [{ source: '/', target: '/host' }] }, 'docker.allowDockerSocket'],
    ['the Docker socket', { image: 'smoothtask/busybox:latest', mounts: [{ source: '/var/run/docker.sock', target: '/var/run/docker.sock' }] }, 'docker.allowDockerSocket'],
    ['host network', { image: 'smoothtask/busybox:latest', network: 'host' }, 'docker.networkModes'],
    ['an image not listed', { image: 'alpine:3' }, 'docker.images'],
    ['/etc mounted', { image: 'smoothtask/busybox:latest', mounts: [{ source: '/etc', target: '/e' }] }, 'docker.mountRoots'],
  ])('docker (labelled: needs dockerd): %s', async (_what, spec, rule) => {
    if (!withDocker) return; // the checkPolicy cases above cover the rules without dockerd
    const r = await h.req('POST', '/v1/tasks', { json: { kind: 'container', spec } });
    expect(r.status).toBe(403);
    const e = await errOf(r);
    expect(e.code).toBe('ERR_POLICY');
    expect(e.rule).toBe(rule);
    await expectNothing();
  });
});
