/**
 * The built package serves the dashboard as a user's install would: dist/ui holds the page
 * (copied by the build), and both the ESM and the CommonJS build of smoothtask/agent find it
 * and uPlot from their own location.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

function run(type: 'commonjs' | 'module', source: string): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [`--input-type=${type}`, '-e', source], { cwd: root, timeout: 60_000 }, (e, out, err) => (e ? reject(new Error(`${e.message}\n${err}`)) : resolve(out))),
  );
}

const script = (load: string) => `
${load}
(async () => {
  const dir = require('node:fs').mkdtempSync(require('node:path').join(require('node:os').tmpdir(), 'st-dist-ui-'));
  const agent = await createAgent({ dataDir: dir, listen: { host: '127.0.0.1', port: 0 }, auth: { tokens: [{ name: 'r', sha256: hashToken('r'.repeat(20)), scopes: ['read'] }] }, metrics: { enabled: false } });
  const { url } = await agent.listen();
  const out = {};
  for (const p of ['/ui/', '/ui/app.js', '/ui/app.css', '/ui/vendor/uPlot.iife.min.js', '/ui/vendor/uPlot.min.css']) {
    const r = await fetch(url + p);
    out[p] = [r.status, Buffer.from(await r.arrayBuffer()).toString('base64')];
  }
  await agent.close();
  require('node:fs').rmSync(dir, { recursive: true, force: true });
  console.log(JSON.stringify(out));
})();
`;

describe('the built package serves the dashboard', () => {
  for (const [name, load] of [
    ['CommonJS', "const { createAgent, hashToken } = require('./dist/agent/index.cjs');"],
    ['ESM', "import { createRequire } from 'node:module'; import { createAgent, hashToken } from './dist/agent/index.js'; const require = createRequire(process.cwd() + '/');"],
  ] as const) {
    it(`${name}: the page, its script and styles (the bytes of lib/agent/ui) and uPlot`, async () => {
      const out = JSON.parse((await run(name === 'ESM' ? 'module' : 'commonjs', script(load))).trim().split('\n').pop()!) as Record<string, [number, string]>;
      for (const [p, [status, b64]] of Object.entries(out)) {
        expect(status, p).toBe(200);
        expect(Buffer.from(b64, 'base64').length, p).toBeGreaterThan(500);
      }
      for (const f of ['index.html', 'app.js', 'app.css']) {
        const served = Buffer.from(out[f === 'index.html' ? '/ui/' : `/ui/${f}`]![1], 'base64');
        expect(served.equals(readFileSync(join(root, 'lib', 'agent', 'ui', f))), `${f}: dist/ui is stale (npm run build:ts)`).toBe(true);
      }
    });
  }
});
