/**
 * `smoothtask/agent` imports, serves and runs tasks without the native addon (metrics on
 * procfs or off): checked in a child process through /proc/self/maps.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

function run(script: string): string {
  return execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 120_000 }).trim();
}

describe('smoothtask/agent without the addon', () => {
  it('import, createAgent (procfs metrics), listen, a task over HTTP, close: smoothtask.node never mapped', () => {
    const out = run(`
      const { mkdtempSync, rmSync, readFileSync } = await import('node:fs');
      const { createAgent, hashToken } = await import('./lib/agent/index.ts');
      const mapped = () => readFileSync('/proc/self/maps', 'utf8').includes('smoothtask.node');
      const after = [mapped()];
      const dir = mkdtempSync('/tmp/st-agent-a-addon-');
      const agent = await createAgent({ dataDir: dir, listen: { port: 0 }, auth: { tokens: [{ name: 'a', sha256: hashToken('t0123456789'), scopes: ['admin'] }] },
        policy: { process: { commands: ['/bin/true'] } }, metrics: { enabled: true, backend: 'procfs', families: ['cpu'] } });
      const { url } = await agent.listen();
      const h = { authorization: 'Bearer t0123456789', 'content-type': 'application/json' };
      const r = await fetch(url + '/v1/tasks', { method: 'POST', headers: h, body: JSON.stringify({ kind: 'process', id: 'x', spec: { command: '/bin/true' } }) });
      const done = await agent.queue.wait('x');
      await fetch(url + '/metrics', { headers: h }).then((x) => x.text());
      await fetch(url + '/v1/node/cache', { headers: h }).then((x) => x.text());
      after.push(mapped());
      await agent.close();
      rmSync(dir, { recursive: true, force: true });
      console.log(JSON.stringify({ status: r.status, state: done.state, mapped: after }));
    `);
    expect(JSON.parse(out.split('\n').at(-1)!)).toEqual({ status: 201, state: 'succeeded', mapped: [false, false] });
  });
});
