// The prebuilt addon from a user's side, on a machine without the toolchain.
//
// The packed tarball (with prebuilds/linux-x64, made by scripts/prebuild.mjs; setup.sh and
// the CI make it, as "prepack" does) is installed into a fresh project here with
// --ignore-scripts (the dependencies come from the npm registry or its cache). That project is
// then used inside a bare container built by this test from Debian packages of this machine:
// glibc (libc6), the C++ runtime node itself needs (libstdc++6, libgcc-s1), dash, node and npm.
// No clang, cmake, pkg-config, libbpf, libelf or zlib. There:
//   - `npm rebuild smoothtask` runs the install hook: the prebuilt loads, nothing is built;
//   - a source build asked for gives one message naming the missing tools, and the install
//     still succeeds;
//   - every subpath imports in ESM and requires in CommonJS (fleet needs its optional peers);
//   - createMonitor loads the bundled CO-RE objects of the cpu and process families through
//     the prebuilt addon (checked in /proc/self/maps: the addon, libbpf, libelf and zlib all
//     mapped from node_modules/smoothtask/prebuilds/linux-x64) and reads this container's
//     processes.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { npmInstall, packTarball, root, run } from './tarball.js';

const target = `${process.platform}-${process.arch}`;
const prebuilt = join(root, 'prebuilds', target);
const hasDist = existsSync(join(root, 'dist', 'index.js'));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; exports: Record<string, unknown> };
const specifiers = Object.keys(pkg.exports)
  .filter((k) => k !== './package.json')
  .map((k) => (k === '.' ? pkg.name : `${pkg.name}/${k.slice(2)}`));


/** The image: Debian's glibc, C++ runtime and dash from this machine's packages, plus node and npm. */
let IMAGE = '';
function buildImage(): void {
  // Tagged by node version and recipe: a changed recipe builds a new image.
  IMAGE = `smoothtask/bare-node:${process.version.replace(/^v/, '')}-${createHash('sha256').update(buildImage.toString()).digest('hex').slice(0, 8)}`;
  try {
    run('docker', ['image', 'inspect', IMAGE], root);
    return;
  } catch {
    /* build it */
  }
  const script = `
    set -euo pipefail
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    mkdir -p "$rootfs/usr/bin" "$rootfs/usr/lib" "$rootfs/usr/lib64" "$rootfs/usr/sbin" "$rootfs/tmp" "$rootfs/etc" "$rootfs/app" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
    chmod 1777 "$rootfs/tmp"
    for l in bin lib lib64 sbin; do ln -s usr/$l "$rootfs/$l"; done
    # Files (and symlinks) of the packages, under their /usr paths (Debian 12 merges /usr).
    for f in $(dpkg -L libc6 libstdc++6 libgcc-s1 dash | sort -u); do
      [ -d "$f" ] && [ ! -L "$f" ] && continue
      [ -e "$f" ] || [ -L "$f" ] || continue
      real="$(readlink -f "$(dirname "$f")")/$(basename "$f")"
      mkdir -p "$rootfs$(dirname "$real")"
      cp -a "$real" "$rootfs$real"
    done
    ln -sf dash "$rootfs/usr/bin/sh"
    cp -a "$(readlink -f "$(command -v node)")" "$rootfs/usr/bin/node"
    npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
    mkdir -p "$rootfs/usr/lib/node_modules"
    cp -a "$npm_dir" "$rootfs/usr/lib/node_modules/npm"
    # npm-cli.js starts with #!/usr/bin/env node, and there is no env (coreutils) here.
    printf '#!/bin/sh\nexec node /usr/lib/node_modules/npm/bin/npm-cli.js "$@"\n' > "$rootfs/usr/bin/npm"
    chmod 755 "$rootfs/usr/bin/npm"
    echo 'root:x:0:0:root:/tmp:/bin/sh' > "$rootfs/etc/passwd"
    echo 'root:x:0:' > "$rootfs/etc/group"
    tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/usr/bin:/bin HOME=/tmp' -c 'WORKDIR /app' - "__IMAGE__" >/dev/null
  `;
  run('bash', ['-c', script.replace('__IMAGE__', IMAGE)], root);
}

/**
 * What loading and attaching BPF programs needs in a container. Not --privileged: that asks
 * for every capability, and runc fails where the host's own bounding set lacks one (here
 * CAP_SYS_RESOURCE). Docker 20.10 does not know CAP_BPF / CAP_PERFMON; CAP_SYS_ADMIN covers
 * both. Its default seccomp profile refuses bpf() and perf_event_open() for a container.
 */
const PRIVILEGES = ['--cap-add', 'SYS_ADMIN', '--security-opt', 'seccomp=unconfined', '--security-opt', 'apparmor=unconfined'];

/** Runs `script` (sh) in the bare container with the project at /app; stdout, stderr, status. */
function inContainer(project: string, script: string, extraEnv: string[] = []): { out: string; status: number } {
  try {
    const out = run(
      'docker',
      ['run', '--rm', '-i', ...PRIVILEGES, '--network', 'none', '--label', 'smoothtask.test=prebuilt', '-v', `${project}:/app`, ...extraEnv.flatMap((e) => ['-e', e]), IMAGE, 'sh', '-s'],
      root,
      { input: `exec 2>&1\n${script}\n` },
    );
    return { out, status: 0 };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; status?: number };
    return { out: `${err.stdout ?? ''}${err.stderr ?? ''}`, status: err.status ?? -1 };
  }
}

describe.skipIf(!hasDist)('the prebuilt addon, installed on a machine without clang, cmake or libbpf', () => {
  let tmp = '';
  let project = '';
  let files: string[] = [];

  beforeAll(() => {
    if (!existsSync(join(prebuilt, 'smoothtask.node'))) throw new Error(`${prebuilt} is missing: run \`node scripts/prebuild.mjs\` (scripts/setup.sh does)`);
    tmp = mkdtempSync(join(tmpdir(), 'smoothtask-prebuilt-'));
    let tarball: string;
    ({ tarball, files } = packTarball(tmp));
    project = join(tmp, 'project');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'prebuilt-check', version: '1.0.0', private: true }, null, 2));
    npmInstall(project, [tarball], { flags: ['--ignore-scripts'] });
    buildImage();
  }, 300_000);

  afterAll(() => {
    if (tmp) spawn('rm', ['-rf', tmp], { detached: true, stdio: 'ignore' }).unref();
  });

  it('the tarball ships the prebuilt addon, its libraries and the CO-RE objects (not the test objects)', () => {
    for (const f of ['smoothtask.node', 'smoothtask-precheck', 'libbpf.so.1', 'libelf.so.1', 'libz.so.1', 'manifest.json', 'bpf/sched.bpf.o', 'bpf/proc.bpf.o']) {
      expect(files, f).toContain(`prebuilds/${target}/${f}`);
    }
    expect(files.filter((f) => f.startsWith('prebuilds/') && f.includes('/test/'))).toEqual([]);
    const manifest = JSON.parse(readFileSync(join(project, 'node_modules', 'smoothtask', 'prebuilds', target, 'manifest.json'), 'utf8')) as { glibc: string; files: Record<string, string> };
    expect(Object.keys(manifest.files)).toContain('smoothtask.node');
    expect(manifest.glibc).toMatch(/^2\.\d+$/);
  });

  it('the container has no toolchain: no clang, cmake, pkg-config, libbpf or libelf', () => {
    const r = inContainer(project, `
      for t in clang cmake pkg-config cc c++ bpftool; do command -v $t && echo "HAS $t"; done
      for f in /usr/include/bpf/libbpf.h /usr/lib/x86_64-linux-gnu/libbpf.so.1 /usr/lib/x86_64-linux-gnu/libelf.so.1 /usr/lib/x86_64-linux-gnu/libz.so.1; do [ -e $f ] && echo "HAS $f"; done
      node --version`);
    expect(r.status, r.out).toBe(0);
    expect(r.out).not.toContain('HAS ');
    expect(r.out.trim()).toBe(process.version);
  }, 60_000);

  it('npm rebuild runs the install hook: the prebuilt loads and nothing is built', () => {
    const r = inContainer(project, 'npm rebuild smoothtask --foreground-scripts --offline --no-audit --no-fund; echo "rc=$?"; ls node_modules/smoothtask/build-native 2>/dev/null && echo BUILT');
    expect(r.out, r.out).toContain('rc=0');
    expect(r.out).not.toContain('[smoothtask]');
    expect(r.out).not.toContain('BUILT');
  }, 120_000);

  it('a source build asked for without the tools: one message naming them, and the install still succeeds', () => {
    const r = inContainer(project, 'npm rebuild smoothtask --foreground-scripts --offline --no-audit --no-fund; echo "rc=$?"', ['SMOOTHTASK_BUILD_FROM_SOURCE=1']);
    expect(r.out, r.out).toContain('rc=0');
    const lines = r.out.split('\n').filter((l) => l.includes('[smoothtask]'));
    expect(lines, r.out).toHaveLength(1);
    for (const w of ['missing', 'clang', 'cmake', 'libbpf-dev', 'SMOOTHTASK_BUILD_FROM_SOURCE=1 npm rebuild smoothtask']) expect(lines[0], w).toContain(w);
  }, 120_000);

  it('every subpath imports in ESM and requires in CommonJS (fleet names its missing optional peers)', () => {
    const body = (mode: 'esm' | 'cjs') => `(async () => {
      const out = {};
      for (const m of ${JSON.stringify(specifiers)}) {
        try { const ns = ${mode === 'esm' ? 'await import(m)' : 'require(m)'}; out[m] = Object.keys(ns).length > 0 ? 'ok' : 'empty'; }
        catch (e) { out[m] = String(e && e.code) + ' ' + String(e && e.message).split('\\n')[0]; }
      }
      console.log('RESULT ' + JSON.stringify(out));
    })()`;
    writeFileSync(join(project, 'subpaths.mjs'), body('esm'));
    writeFileSync(join(project, 'subpaths.cjs'), body('cjs'));
    const r = inContainer(project, 'node subpaths.mjs && node subpaths.cjs');
    expect(r.status, r.out).toBe(0);
    const results = r.out.split('\n').filter((l) => l.startsWith('RESULT ')).map((l) => JSON.parse(l.slice(7)) as Record<string, string>);
    expect(results).toHaveLength(2);
    for (const res of results) {
      for (const m of specifiers) {
        if (m === 'smoothtask/fleet') expect(res[m], m).toMatch(/MODULE_NOT_FOUND.*'(bullmq|ioredis)'/);
        else expect(res[m], m).toBe('ok');
      }
    }
  }, 120_000);

  it('createMonitor loads the bundled CO-RE programs through the prebuilt addon and its own libbpf, libelf and zlib', () => {
    writeFileSync(
      join(project, 'monitor.mjs'),
      `import { createMonitor } from 'smoothtask/metrics';
       import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
       const m = await createMonitor({ families: ['cpu', 'process'], required: true });
       // the loader's pre-check helper, spawned for the bundled objects (new bytes to this process)
       const helpers = readdirSync('/proc/self/task').flatMap((t) => readFileSync('/proc/self/task/' + t + '/children', 'utf8').trim().split(/\\s+/).filter(Boolean))
         .map((k) => { try { return readlinkSync('/proc/' + k + '/exe'); } catch { return ''; } }).filter((e) => e.endsWith('/smoothtask-precheck'));
       try {
         const backends = [...m.readers.values()].map((r) => r.backend);
         const { snapshots, errors } = await m.read();
         const maps = readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/).slice(5).join(' ')).filter((p) => p.startsWith('/'));
         const mapped = (name) => [...new Set(maps.filter((p) => p.endsWith('/' + name)))];
         console.log('RESULT ' + JSON.stringify({
           backends, errors: Object.keys(errors),
           // host pids (the programs run in the kernel), not this container's namespace
           seesNode: snapshots.process.processes.filter((p) => p.comm === 'node').length,
           processes: snapshots.process.processes.length,
           cpus: snapshots.cpu.cpus?.length ?? Object.keys(snapshots.cpu).length,
           helpers, addon: mapped('smoothtask.node'), libbpf: mapped('libbpf.so.1'), libelf: mapped('libelf.so.1'), libz: mapped('libz.so.1'),
         }));
       } finally { m.close(); }`,
    );
    const r = inContainer(project, 'node monitor.mjs');
    expect(r.status, r.out).toBe(0);
    const line = r.out.split('\n').find((l) => l.startsWith('RESULT '));
    expect(line, r.out).toBeDefined();
    const res = JSON.parse(line!.slice(7)) as { helpers: string[]; backends: string[]; errors: string[]; seesNode: number; processes: number; addon: string[]; libbpf: string[]; libelf: string[]; libz: string[] };
    expect(res.backends).toEqual(['ebpf', 'ebpf']);
    expect(res.errors).toEqual([]);
    expect(res.seesNode, JSON.stringify(res)).toBeGreaterThan(0);
    const dir = `/app/node_modules/smoothtask/prebuilds/${target}`;
    expect(res.addon).toEqual([`${dir}/smoothtask.node`]);
    expect(res.helpers.length, JSON.stringify(res)).toBeGreaterThan(0);
    expect(new Set(res.helpers)).toEqual(new Set([`${dir}/smoothtask-precheck`]));
    expect(res.libbpf).toEqual([`${dir}/libbpf.so.1`]);
    expect(res.libelf).toEqual([`${dir}/libelf.so.1`]);
    expect(res.libz).toEqual([`${dir}/libz.so.1`]);
  }, 120_000);
});
