// The root entry and the addon-free modules must never load smoothtask.node: a service that
// only runs tasks works on a machine where the addon was never built.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

function mappedAddonAfterImport(modules: string[], env: NodeJS.ProcessEnv = {}): string {
  const script = `
    for (const m of ${JSON.stringify(modules)}) await import(m);
    const maps = (await import('node:fs')).readFileSync('/proc/self/maps', 'utf8');
    console.log(maps.includes('smoothtask.node') ? 'LOADED' : 'CLEAN');
  `;
  return execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
  }).trim();
}

describe('package barrels', () => {
  it('root, task, store, process, webhook, aggregate, notify, status, docker and fleet do not load the addon', () => {
    const mods = ['root', 'task', 'store', 'process', 'webhook', 'aggregate', 'notify', 'status', 'docker', 'fleet'].map((m) =>
      m === 'root' ? './lib/index.ts' : `./lib/${m}/index.ts`,
    );
    expect(mappedAddonAfterImport(mods)).toBe('CLEAN');
  });

  it('importing smoothtask/ebpf alone does not load the addon (it is loaded lazily)', () => {
    expect(mappedAddonAfterImport(['./lib/ebpf/index.ts'])).toBe('CLEAN');
  });

  it('a missing addon gives a typed AddonNotBuiltError naming the path and the fix', () => {
    const script = `
      const { loadAddon, AddonNotBuiltError } = await import('./lib/native/addon.ts');
      try { loadAddon(); console.log('NO ERROR'); }
      catch (e) { console.log(JSON.stringify({ typed: e instanceof AddonNotBuiltError, code: e.code, msg: e.message })); }
    `;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: root,
      env: { ...process.env, SMOOTHTASK_ADDON: '/nonexistent/smoothtask.node' },
      encoding: 'utf8',
    });
    const r = JSON.parse(out) as { typed: boolean; code: string; msg: string };
    expect(r.typed).toBe(true);
    expect(r.code).toBe('ERR_ADDON_NOT_BUILT');
    expect(r.msg).toContain('/nonexistent/smoothtask.node: not found');
    expect(r.msg).toContain('npm rebuild smoothtask --build-from-source');
    expect(r.msg).toContain('libbpf-dev');
  });
});

describe('SmoothtaskError', () => {
  it('instanceof works through the brand across separate module copies', async () => {
    type Errors = typeof import('../../lib/errors/index.js');
    const a = (await import('../../lib/errors/index.js')) as Errors;
    // A second copy of the module (the query string defeats the module cache).
    const copy = '../../lib/errors/index.ts?copy=2';
    const b = (await import(/* @vite-ignore */ copy)) as Errors;
    const e = new b.ConfigError('bad', ['x: wrong']);
    expect(e).toBeInstanceOf(a.SmoothtaskError);
    expect(e).toBeInstanceOf(a.ConfigError);
    expect(e.code).toBe('ERR_CONFIG');
    expect(new a.SmoothtaskError('ERR_X', 'y')).not.toBeInstanceOf(b.ConfigError);
  });
});
