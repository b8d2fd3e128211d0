// The package as a user gets it: `npm pack` of the existing dist/ (the CI builds dist/ before
// the tests; `npm pack` without --ignore-scripts builds it through "prepack"), installed into a
// fresh project from the tarball (the install hook skips the native build with
// SMOOTHTASK_SKIP_BUILD=1), then every "exports" subpath imported in ESM and required in CJS:
// first without the optional peers (dockerode, bullmq, ioredis), then with them. The public
// types are checked from that project too, with no @types/dockerode in reach.
// Needs the npm registry (or a warm npm cache) for the tarball's dependencies.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installSize, npmEnv, npmInstall, packTarball, root, run } from './tarball.js';

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string;
  exports: Record<string, unknown>;
  peerDependencies: Record<string, string>;
};
const hasDist = existsSync(join(root, 'dist', 'index.js')) && existsSync(join(root, 'dist', 'index.cjs'));
const bin = (name: string) => join(root, 'node_modules', '.bin', name);

/** `smoothtask`, `smoothtask/ebpf`, …: every "exports" key but ./package.json. */
const specifiers = Object.keys(pkg.exports)
  .filter((k) => k !== './package.json')
  .map((k) => (k === '.' ? pkg.name : `${pkg.name}/${k.slice(2)}`));
/** Subpaths that import optional peers statically: without them their import fails (documented). */
const needsPeers: Record<string, string[]> = { [`${pkg.name}/fleet`]: ['bullmq', 'ioredis'] };


type Outcome = { ok: true; keys: number } | { ok: false; code?: string; message: string };

/** Loads each specifier in a fresh node (ESM: import(), CJS: require()) and reports each outcome. */
function loadAll(project: string, mode: 'esm' | 'cjs', mods: string[]): Record<string, Outcome> {
  const body = `
    const out = {};
    for (const m of ${JSON.stringify(mods)}) {
      try { const ns = ${mode === 'esm' ? 'await import(m)' : 'require(m)'}; out[m] = { ok: true, keys: Object.keys(ns).length }; }
      catch (e) { out[m] = { ok: false, code: e && e.code, message: String(e && e.message).split('\\n')[0] }; }
    }
    try { ${mode === 'esm' ? "await import('smoothtask/package.json', { with: { type: 'json' } })" : "require('smoothtask/package.json')"}; out['smoothtask/package.json'] = { ok: true, keys: 1 }; }
    catch (e) { out['smoothtask/package.json'] = { ok: false, code: e && e.code, message: String(e && e.message) }; }
    console.log(JSON.stringify(out));
    process.exit(0);
  `;
  const args = mode === 'esm' ? ['--input-type=module', '-e', `(async () => { ${body} })()`] : ['-e', `(async () => { ${body} })()`];
  return JSON.parse(run(process.execPath, args, project).trim().split('\n').pop()!) as Record<string, Outcome>;
}

/** connectDocker() from the installed package, ESM or CJS: its rejection's code and message. */
function connectDockerOutcome(project: string, mode: 'esm' | 'cjs'): { code?: string; name?: string; message: string } {
  const load = mode === 'esm' ? "await import('smoothtask/docker')" : "require('smoothtask/docker')";
  const body = `(async () => {
    const { connectDocker } = ${load};
    try { await connectDocker(); console.log(JSON.stringify({ message: 'connected' })); }
    catch (e) { console.log(JSON.stringify({ code: e.code, name: e.name, message: e.message })); }
    process.exit(0);
  })()`;
  const args = mode === 'esm' ? ['--input-type=module', '-e', body] : ['-e', body];
  return JSON.parse(run(process.execPath, args, project).trim().split('\n').pop()!) as { code?: string; name?: string; message: string };
}

describe.skipIf(!hasDist)('the packed tarball, installed in a fresh project', () => {
  let tmp = '';
  let tarball = '';
  let files: string[] = [];
  let project = '';
  const timings: Record<string, number> = {};
  const sizes: Record<string, { packages: number; megabytes: number }> = {};
  const measure = (what: string) => (sizes[what] = installSize(project));
  const timed = <T>(what: string, f: () => T): T => {
    const t0 = Date.now();
    try {
      return f();
    } finally {
      timings[what] = Date.now() - t0;
    }
  };

  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'smoothtask-pack-'));
    ({ tarball, files } = timed('npm pack', () => packTarball(tmp)));
    project = join(tmp, 'project');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'pack-check', version: '1.0.0', private: true }, null, 2));
    // zod is a regular dependency of smoothtask (its schemas are part of the API), so the
    // tarball alone brings it; the optional peers are not installed by npm.
    timed('npm install tarball', () => npmInstall(project, [tarball], { env: { SMOOTHTASK_SKIP_BUILD: '1' } }));
    // What a service that imports only smoothtask/task and smoothtask/process installs.
    measure('without the optional peers');
  }, 240_000);

  afterAll(() => {
    // Removing ~270 installed packages can take 20 s on a loaded disk: done in the background.
    if (tmp) spawn('rm', ['-rf', tmp], { detached: true, stdio: 'ignore' }).unref();
    console.log(`[pack.test] timings (ms): ${JSON.stringify(timings)}`);
    console.log(`[pack.test] install size: ${JSON.stringify(sizes)}`);
  });

  it('ships dist (ESM, CJS, types), LICENSE, README, the native sources and the install hook; no tests, benchmarks or dev scripts', () => {
    for (const f of ['package.json', 'LICENSE', 'README.md', 'dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', 'dist/cli/index.js', 'dist/ui/index.html', 'scripts/install.mjs', 'scripts/cmake/BpfObject.cmake', 'CMakeLists.txt', 'binding.gyp', 'native/addon.cc', 'bpf/sched.bpf.c']) {
      expect(files, f).toContain(f);
    }
    const forbidden = files.filter((f) => /^(test|bench|examples|docs|lib|build|build-native|node_modules)\//.test(f) || (f.startsWith('scripts/') && f !== 'scripts/install.mjs' && !f.startsWith('scripts/cmake/')));
    expect(forbidden).toEqual([]);
    // every "exports" target is in the tarball
    const targets = JSON.stringify(pkg.exports).match(/"\.\/dist\/[^"]+"/g)!.map((t) => t.slice(3, -1));
    expect(targets.length).toBeGreaterThan(40);
    expect(targets.filter((t) => !files.includes(t))).toEqual([]);
    expect(existsSync(join(project, 'node_modules', 'smoothtask', 'dist', 'index.js'))).toBe(true);
  });

  it('without the optional peers: every subpath loads in ESM and CJS except those that import them, which name the missing package', () => {
    for (const peer of Object.keys(pkg.peerDependencies)) expect(existsSync(join(project, 'node_modules', peer)), peer).toBe(false);
    for (const mode of ['esm', 'cjs'] as const) {
      const out = timed(`load ${mode} without peers`, () => loadAll(project, mode, specifiers));
      for (const m of [...specifiers, 'smoothtask/package.json']) {
        const r = out[m]!;
        if (needsPeers[m]) {
          expect(r.ok, `${mode} ${m}`).toBe(false);
          if (!r.ok) {
            expect(r.code, `${mode} ${m}`).toMatch(/^(ERR_)?MODULE_NOT_FOUND$/);
            expect(needsPeers[m]!.some((p) => r.message.includes(`'${p}'`)), `${mode} ${m}: ${r.message}`).toBe(true);
          }
        } else {
          expect(r, `${mode} ${m}`).toMatchObject({ ok: true });
        }
      }
    }
  }, 60_000);

  it('a build from source asked for without cmake-js and node-addon-api (optional peers): one message with the install command; the hook still exits 0', () => {
    const dir = join(project, 'node_modules', 'smoothtask');
    const r = spawnSync(process.execPath, ['scripts/install.mjs'], { cwd: dir, env: { ...npmEnv, SMOOTHTASK_BUILD_FROM_SOURCE: '1' }, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.includes('[smoothtask]'));
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toContain(`npm install --save-dev cmake-js@${pkg.peerDependencies['cmake-js']} node-addon-api@${pkg.peerDependencies['node-addon-api']}`);
    expect(existsSync(join(dir, 'build-native'))).toBe(false);
  });

  it('without dockerode, connectDocker() rejects with ERR_MISSING_PEER naming dockerode and the install command (ESM and CJS)', () => {
    for (const mode of ['esm', 'cjs'] as const) {
      const r = connectDockerOutcome(project, mode);
      expect(r.code, `${mode}: ${r.message}`).toBe('ERR_MISSING_PEER');
      expect(r.name).toBe('MissingPeerError');
      expect(r.message).toContain("'dockerode' is not installed");
      expect(r.message).toContain(`npm install dockerode@${pkg.peerDependencies.dockerode}`);
    }
  }, 60_000);

  it('without the peers, an agent with fleet.enabled or the docker executor rejects with ERR_MISSING_PEER; the default agent runs', () => {
    const script = `
      const { createAgent } = await import('smoothtask/agent');
      const { mkdtempSync } = await import('node:fs');
      const out = [];
      for (const cfg of [{}, { fleet: { enabled: true } }, { executors: { process: true, docker: true } }]) {
        let agent;
        try {
          agent = await createAgent({ dataDir: mkdtempSync(${JSON.stringify(join(tmp, 'agent-'))}), listen: { host: '127.0.0.1', port: 0 }, ...cfg });
          await agent.listen();
          out.push({ ok: true });
        } catch (e) { out.push({ code: e.code, message: e.message }); }
        finally { await agent?.close().catch(() => undefined); }
      }
      console.log(JSON.stringify(out));
      process.exit(0);
    `;
    const [plain, fleet, docker] = JSON.parse(run(process.execPath, ['--input-type=module', '-e', script], project).trim().split('\n').pop()!) as Array<{ ok?: true; code?: string; message?: string }>;
    expect(plain).toEqual({ ok: true });
    expect(fleet!.code, fleet!.message).toBe('ERR_MISSING_PEER');
    expect(fleet!.message).toContain(`npm install bullmq@${pkg.peerDependencies.bullmq} ioredis@${pkg.peerDependencies.ioredis}`);
    expect(docker!.code, docker!.message).toBe('ERR_MISSING_PEER');
    expect(docker!.message).toContain(`npm install dockerode@${pkg.peerDependencies.dockerode}`);
  }, 60_000);

  describe('with the optional peers installed', () => {
    beforeAll(() => {
      const peers = Object.entries(pkg.peerDependencies).map(([n, r]) => `${n}@${r}`);
      // --ignore-scripts: ssh2's optional native speed-up (cpu-features) is not needed here.
      timed('npm install peers', () => npmInstall(project, peers, { flags: ['--ignore-scripts'] }));
      // What every install got while dockerode, bullmq and ioredis were dependencies.
      measure('with the optional peers');
    }, 240_000);

    it('every subpath loads in ESM and in CJS', () => {
      for (const mode of ['esm', 'cjs'] as const) {
        const out = timed(`load ${mode} with peers`, () => loadAll(project, mode, specifiers));
        for (const m of [...specifiers, 'smoothtask/package.json']) expect(out[m], `${mode} ${m}`).toMatchObject({ ok: true });
        for (const m of specifiers) expect((out[m] as { keys: number }).keys, `${mode} ${m} exports something`).toBeGreaterThan(0);
      }
    }, 60_000);

    it('the public types name only Node, dependencies and peers that ship their own types (never @types/* from devDependencies)', () => {
      // A consumer with skipLibCheck off fails on a .d.ts import it cannot type (TS7016 for
      // dockerode without @types/dockerode): every bare import of the shipped .d.ts / .d.cts
      // must be a Node built-in or a dependency / peer whose own package.json gives types.
      const installed = join(project, 'node_modules', 'smoothtask');
      const { dependencies = {}, peerDependencies = {} } = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
      const specs = new Map<string, string>();
      for (const f of files.filter((f) => /\.d\.c?ts$/.test(f))) {
        const code = readFileSync(join(installed, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
        for (const m of code.matchAll(/(?:from|import\(|require\()\s*['"]([^'"./][^'"]*)['"]/g)) specs.set(m[1]!, f);
      }
      const untyped: string[] = [];
      for (const [spec, where] of specs) {
        if (spec.startsWith('node:') || builtinModules.includes(spec)) continue;
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        if (!(name in dependencies) && !(name in peerDependencies)) {
          untyped.push(`${where}: '${spec}' is neither a dependency nor a peer`);
          continue;
        }
        const manifest = JSON.parse(readFileSync(join(project, 'node_modules', name, 'package.json'), 'utf8')) as Record<string, unknown>;
        const ownTypes = manifest.types !== undefined || manifest.typings !== undefined || JSON.stringify(manifest.exports ?? {}).includes('"types"');
        if (!ownTypes) untyped.push(`${where}: '${spec}' has no types of its own (they would come from @types/${name})`);
      }
      expect([...specs.keys()].length).toBeGreaterThan(0);
      expect(untyped).toEqual([]);
    });

    it('the public types resolve in a strict TypeScript consumer (node16 ESM and CJS; bundler) that has no @types/dockerode', () => {
      expect(existsSync(join(project, 'node_modules', '@types', 'dockerode'))).toBe(false);
      // @types/node only (a Node service has it); typeRoots keeps the repository's other @types out.
      mkdirSync(join(project, 'types'));
      symlinkSync(join(root, 'node_modules', '@types', 'node'), join(project, 'types', 'node'));
      const names = specifiers.map((s, i) => [`m${i}`, s] as const);
      const all = `export const all = [${names.map(([n]) => n).join(', ')}];\n`;
      writeFileSync(
        join(project, 'esm.mts'),
        names.map(([n, s]) => `import * as ${n} from '${s}';`).join('\n') +
          `\nimport type { DockerEngine } from 'smoothtask/docker';\n${all}` +
          // DockerEngine.docker is \`unknown\` (not an \`any\` from an unresolved dockerode)
          `type IsAny<T> = 0 extends 1 & T ? true : false;\nexport const dockerIsAny: IsAny<DockerEngine['docker']> = false;\n` +
          `export const version: string = m0.version;\n`,
      );
      writeFileSync(join(project, 'cjs.cts'), names.map(([n, s]) => `import ${n} = require('${s}');`).join('\n') + `\n${all}export const version: string = m0.version;\n`);
      // skipLibCheck on: checking every dependency's own .d.ts doubles the time (~20 s); the
      // test above covers what a skipLibCheck-off consumer would add for our .d.ts imports.
      writeFileSync(
        join(project, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: { module: 'node16', moduleResolution: 'node16', target: 'es2022', strict: true, skipLibCheck: true, noEmit: true, typeRoots: ['./types'], types: ['node'] },
          files: ['esm.mts', 'cjs.cts'],
        }),
      );
      // The same consumer under bundler resolution (Vite, esbuild, webpack users): the ESM file
      // only, as a bundler-resolved project has no CommonJS `import x = require()`.
      writeFileSync(
        join(project, 'tsconfig.bundler.json'),
        JSON.stringify({
          compilerOptions: { module: 'esnext', moduleResolution: 'bundler', target: 'es2022', strict: true, skipLibCheck: true, noEmit: true, typeRoots: ['./types'], types: ['node'] },
          files: ['esm.mts'],
        }),
      );
      for (const config of ['tsconfig.json', 'tsconfig.bundler.json']) {
        let output = '';
        try {
          timed(`tsc consumer ${config}`, () => run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', config], project));
        } catch (e) {
          output = String((e as { stdout?: string }).stdout ?? e);
        }
        expect(output, config).toBe('');
      }
    }, 180_000);
  });

  // Linters of the packed tarball (devDependencies; skipped only where they are not installed).
  it.skipIf(!existsSync(bin('publint')))('publint finds no errors in the tarball', () => {
    expect(() => run(bin('publint'), ['run', tarball, '--level', 'error'], root)).not.toThrow();
  }, 60_000);
  it.skipIf(!existsSync(bin('attw')))('@arethetypeswrong/cli finds no problems in the tarball (node16 and bundler resolution)', () => {
    // node16 profile: node16 (ESM and CJS) and bundler resolution; TypeScript's legacy `node10`
    // resolution cannot see subpath exports (it would need typesVersions), and is not supported.
    expect(() => run(bin('attw'), ['--profile', 'node16', tarball], root)).not.toThrow();
  }, 60_000);
});

if (!hasDist) {
  describe('the packed tarball', () => {
    it.skip('skipped: dist/ is missing; build it with `npx tsup` (the CI builds dist/ before the tests)', () => {});
  });
}
