// `smoothtask agent --check-config` and the other short commands, run as real processes:
// exit codes, every error listed with its path and source, environment overrides, per-environment
// files, redaction, and hostile config paths (directory, FIFO, device, oversized file) that must
// give an error quickly instead of hanging.
import { createHash } from 'node:crypto';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, cliCommand, repoRoot, runCli } from './cli-run.js';

const TOKEN = 'tok-cli-config-test-0123456789';
const HASH = createHash('sha256').update(TOKEN).digest('hex');
let dir: string;

function write(name: string, value: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
  return p;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'st-cli-config-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = {
  dataDir: './data',
  listen: { host: '127.0.0.1', port: 7701 },
  auth: { tokens: [{ name: 'ci', sha256: HASH, scopes: ['read', 'submit'] }] },
  policy: { process: { commands: ['/bin/sh'] }, docker: { mountRoots: ['./mounts', '/srv/in'] } },
};

describe('smoothtask agent --check-config', () => {
  it('prints the effective config (defaults filled, relative paths resolved against the file, secrets redacted) and exits 0', async () => {
    const sub = join(dir, 'valid');
    mkdirSync(sub);
    const cfg = join(sub, 'agent.json');
    writeFileSync(cfg, JSON.stringify(base));
    // Run from another folder: paths must resolve against the file's folder, not the cwd.
    const r = await runCli(['agent', '--check-config', '--config', cfg], { cwd: tmpdir() });
    expect(r.stderr).toContain('configuration OK');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, any>;
    expect(out.dataDir).toBe(join(sub, 'data'));
    expect(out.policy.docker.mountRoots).toEqual([join(sub, 'mounts'), '/srv/in']);
    expect(out.listen).toEqual({ host: '127.0.0.1', port: 7701 });
    expect(out.queue.concurrency).toBe(4); // default
    expect(out.shutdown).toEqual({ graceMs: 30000, onTimeout: 'cancel' });
    expect(out.auth.tokens[0]).toEqual({ name: 'ci', sha256: '[redacted]', scopes: ['read', 'submit'] });
    // The hash appears nowhere, in any case.
    expect((r.stdout + r.stderr).toLowerCase()).not.toContain(HASH);
    expect(r.stdout).not.toContain(HASH.slice(0, 16));
  });

  it('lists EVERY error with its path and its source, exits 2, prints nothing on stdout', async () => {
    const cfg = write('bad.json', {
      ...base,
      dataDir: '',
      queue: { concurrency: 0, typo: true },
      auth: { tokens: [{ name: 'ci', sha256: 'not-hex', scopes: ['root'] }] },
      shutdown: { graceMs: -1, onTimeout: 'explode' },
      extra: 1,
    });
    write('bad.prod.json', { listen: { port: 'eighty' } });
    const r = await runCli(['agent', '--check-config', '--config', cfg, '--env', 'prod'], {
      env: { SMOOTHTASK_AGENT__QUEUE__MAX_QUEUED: 'lots' },
    });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('  '));
    const paths = lines.map((l) => l.trim().split(':')[0]);
    expect(new Set(paths)).toEqual(
      new Set([
        'dataDir',
        'queue.concurrency',
        'queue.typo',
        'queue.maxQueued',
        'auth.tokens.0.sha256',
        'auth.tokens.0.scopes.0',
        'shutdown.graceMs',
        'shutdown.onTimeout',
        'extra',
        'listen.port',
      ]),
    );
    expect(r.stderr).toContain('queue.concurrency: Too small: expected number to be >=1');
    expect(r.stderr).toMatch(/listen\.port: .*\(from .*bad\.prod\.json\)/);
    expect(r.stderr).toMatch(/queue\.maxQueued: .*\(from SMOOTHTASK_AGENT__QUEUE__MAX_QUEUED\)/);
    expect(r.stderr).toMatch(/queue\.typo: Unknown key/);
    expect(r.stderr).toMatch(/invalid configuration \(10 problems\)/);
  });

  it('applies SMOOTHTASK_AGENT__* variables (JSON values, camelCase keys) over the files, and flags over the variables', async () => {
    const cfg = write('env.json', base);
    const r = await runCli(['agent', '--check-config', '--config', cfg, '--host', '127.0.0.2', '--data-dir', 'flagdir'], {
      cwd: dir,
      env: {
        SMOOTHTASK_AGENT__LISTEN__PORT: '8080',
        SMOOTHTASK_AGENT__LISTEN__HOST: '127.0.0.9', // the --host flag wins
        SMOOTHTASK_AGENT__QUEUE__MAX_QUEUED: '5',
        SMOOTHTASK_AGENT__SHUTDOWN: '{"graceMs": 1234, "onTimeout": "requeue"}',
        SMOOTHTASK_AGENT__SHUTDOWN__GRACE_MS: '4321', // deeper variable wins over the object
        SMOOTHTASK_AGENT__AUTH__ANONYMOUS: '["read"]',
        SMOOTHTASK_AGENT__METRICS__ENABLED: 'false',
      },
    });
    expect(r.stderr).toContain('configuration OK');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, any>;
    expect(out.listen).toEqual({ host: '127.0.0.2', port: 8080 });
    expect(out.queue.maxQueued).toBe(5);
    expect(out.shutdown).toEqual({ graceMs: 4321, onTimeout: 'requeue' });
    expect(out.auth.anonymous).toEqual(['read']);
    expect(out.metrics.enabled).toBe(false);
    expect(out.dataDir).toBe(join(dir, 'flagdir')); // flags resolve against the cwd
  });

  it('every one of 20,000 errors reaches a piped stderr before the exit (no truncation at the pipe buffer)', async () => {
    const cfg = write('many-errors.json', { dataDir: '/x', queue: Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`unknown${i}`, i])) });
    // A real pipe (a shell pipeline), not the socket pair node's spawn would give the child.
    const q = (a: string): string => `'${a.replace(/'/g, `'\\''`)}'`;
    const sh = `${[...cliCommand, 'agent', '--check-config', '--config', cfg].map(q).join(' ')} 2>&1 >/dev/null | cat; exit "\${PIPESTATUS[0]}"`;
    const r = await new Promise<{ code: number | null; out: string }>((resolve) =>
      execFile('bash', ['-c', sh], { env: cleanEnv(), maxBuffer: 64 * 1024 * 1024 }, (e, out) => resolve({ code: e ? ((e as { code?: number }).code ?? null) : 0, out })),
    );
    expect(r.code).toBe(2);
    const lines = r.out.split('\n').filter((l) => /^  queue\.unknown\d+: Unknown key/.test(l));
    expect(lines).toHaveLength(20_000);
    expect(r.out).toContain('queue.unknown19999: Unknown key');
  });

  it('a deeply nested variable value is a typed error naming the variable, not a crash', async () => {
    const cfg = write('env3.json', base);
    const r = await runCli(['agent', '--check-config', '--config', cfg], { env: { SMOOTHTASK_AGENT__LISTEN: `${'['.repeat(50_000)}${']'.repeat(50_000)}` } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/SMOOTHTASK_AGENT__LISTEN: .*nested deeper than 64 levels/);
    expect(r.stderr).not.toMatch(/RangeError|\n\s+at /);
  });

  it('a misspelt variable is an unknown-key error naming the variable', async () => {
    const cfg = write('env2.json', base);
    const r = await runCli(['agent', '--check-config', '--config', cfg], { env: { SMOOTHTASK_AGENT__LISTEN__PROT: '1' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/listen\.prot: Unknown key .*\(from SMOOTHTASK_AGENT__LISTEN__PROT\)/);
  });

  it('merges agent.<env>.json over agent.json (objects merged, arrays replaced), env from --env or SMOOTHTASK_ENV', async () => {
    const sub = join(dir, 'perenv');
    mkdirSync(sub);
    const cfg = join(sub, 'agent.json');
    writeFileSync(cfg, JSON.stringify({ ...base, queue: { concurrency: 2, maxQueued: 10 } }));
    writeFileSync(join(sub, 'agent.production.json'), JSON.stringify({ queue: { concurrency: 16 }, policy: { process: { commands: ['/usr/bin/make'] } }, dataDir: 'proddata' }));
    for (const how of ['flag', 'var'] as const) {
      const r = await runCli(['agent', '--check-config', '--config', cfg, ...(how === 'flag' ? ['--env', 'production'] : [])], {
        env: how === 'var' ? { SMOOTHTASK_ENV: 'production' } : {},
      });
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as Record<string, any>;
      expect(out.queue.concurrency).toBe(16);
      expect(out.queue.maxQueued).toBe(10); // kept from agent.json
      expect(out.policy.process.commands).toEqual(['/usr/bin/make']); // replaced, not concatenated
      expect(out.policy.docker.mountRoots).toEqual([join(sub, 'mounts'), '/srv/in']);
      expect(out.dataDir).toBe(join(sub, 'proddata'));
      expect(r.stderr).toContain('agent.production.json');
    }
    // No env: the production file is not read.
    const plain = await runCli(['agent', '--check-config', '--config', cfg]);
    expect(JSON.parse(plain.stdout).queue.concurrency).toBe(2);
    // A named environment whose file is missing is an error (a typo must not run with the base file).
    const typo = await runCli(['agent', '--check-config', '--config', cfg, '--env', 'prodution']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain(`${join(sub, 'agent.prodution.json')}: no such file`);
    // An environment name cannot walk out of the folder.
    const walk = await runCli(['agent', '--check-config', '--config', cfg, '--env', '../../etc/passwd']);
    expect(walk.code).toBe(2);
    expect(walk.stderr).toContain("environment name '../../etc/passwd'");
  });

  it('hostile config paths give a typed error and exit 2 quickly: directory, FIFO, device, > 1 MiB, bad JSON, non-object, __proto__', async () => {
    const fifo = join(dir, 'fifo.json');
    execFileSync('mkfifo', [fifo]);
    const huge = write('huge.json', `{"dataDir":"/x","pad":"${'a'.repeat(1024 * 1024)}"}`);
    const cases: [string, RegExp][] = [
      [dir, /is a directory/],
      [fifo, /not a regular file/],
      ['/dev/zero', /not a regular file/],
      [huge, /larger than the 1048576-byte limit/],
      [write('syntax.json', '{"dataDir": "/x",}'), /not valid JSON/],
      [write('array.json', '[{"dataDir":"/x"}]'), /JSON object at the top level, not an array/],
      [write('proto.json', '{"dataDir":"/x","__proto__":{"listen":{"port":1}}}'), /__proto__: Unknown key/],
      [join(dir, 'missing.json'), /no such file/],
      // 300,000 levels in under 1 MiB: recursion over it would overflow the stack.
      // 70,000 keys in under 1 MiB: any per-key work that is not linear would take minutes.
      [write('wide.json', JSON.stringify({ dataDir: '/x', wide: Object.fromEntries(Array.from({ length: 70_000 }, (_, i) => [`k${i}`, i])) })), /wide: Unknown key/],
      [write('deep.json', `{"dataDir":"/x","listen":${'['.repeat(300_000)}${']'.repeat(300_000)}}`), /nested deeper than 64 levels/],
    ];
    const results = await Promise.all(cases.map(([p]) => runCli(['agent', '--check-config', '--config', p], { timeoutMs: 30_000 })));
    results.forEach((r, i) => {
      const [p, re] = cases[i]!;
      expect(r.signal, `${p} hung`).toBeNull();
      expect(r.code, `${p}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(re);
      expect(r.stderr).not.toMatch(/at .*\.ts:\d+/); // a message, not a stack trace
    });
  });
});

describe('smoothtask (other commands)', () => {
  it('hash-token prints the sha256 of the token on stdin (one trailing newline dropped)', async () => {
    const r = await runCli(['hash-token'], { stdin: `${TOKEN}\n` });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${HASH}\n`);
    const crlf = await runCli(['hash-token'], { stdin: `${TOKEN}\r\n` });
    expect(crlf.stdout).toBe(`${HASH}\n`);
    const empty = await runCli(['hash-token'], { stdin: '' });
    expect(empty.code).toBe(2);
    expect(empty.stdout).toBe('');
    const padded = await runCli(['hash-token'], { stdin: ` ${TOKEN}\n` });
    expect(padded.code).toBe(2);
    // HTTP carries the header as latin1, so a non-ASCII token could never match its UTF-8 hash.
    for (const bad of ['tökén-0123456789', 'tab\there', 'nul\0x']) {
      const r = await runCli(['hash-token'], { stdin: bad });
      expect(r.code, JSON.stringify(bad)).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain('printable ASCII');
    }
  });

  it('--version prints the package version; --help exits 0; usage errors exit 2', async () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    const v = await runCli(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toBe(pkg.version);
    const h = await runCli(['--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('smoothtask agent --config');
    const cfg = write('usage.json', base);
    for (const args of [['nope'], ['agent'], ['agent', '--config', cfg, '--port', '80x'], ['agent', '--config', cfg, '--bogus'], ['agent', '--config', cfg, 'extra']]) {
      const r = await runCli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain('Usage:');
    }
  });
});
