// `smoothtask agent` start-up failures, as real processes: each exits 1 promptly with one clear
// line (no stack trace), and never hangs holding the port or the store.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './cli-run.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'st-cli-start-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function config(name: string, value: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, JSON.stringify(value));
  return p;
}

describe('smoothtask agent start-up failures', () => {
  it('the port is taken: exit 1 naming the address', async () => {
    const server: Server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const cfg = config('port.json', { dataDir: './port-data', metrics: { enabled: false } });
      const r = await runCli(['agent', '--config', cfg, '--port', String(port)], { timeoutMs: 60_000 });
      expect(r.signal).toBeNull();
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`could not listen on 127.0.0.1:${port}`);
      expect(r.stderr).toContain('EADDRINUSE');
      expect(r.stdout).not.toContain('listening on');
    } finally {
      server.close();
    }
  });

  it('dataDir is a file: exit 1 with the reason, not a stack trace', async () => {
    const file = join(dir, 'not-a-dir');
    writeFileSync(file, 'x');
    const cfg = config('datafile.json', { dataDir: file, metrics: { enabled: false } });
    const r = await runCli(['agent', '--config', cfg], { timeoutMs: 60_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/could not start: .*EEXIST/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('an invalid configuration never starts the agent: exit 2, nothing created', async () => {
    const cfg = config('invalid.json', { dataDir: './never-created', listen: { port: 70000 } });
    const r = await runCli(['agent', '--config', cfg], { timeoutMs: 60_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('listen.port: Too big');
    expect(existsSync(join(dir, 'never-created'))).toBe(false);
  });
});
