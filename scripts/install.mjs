// npm "install" hook. It never fails the install: without a loadable addon, smoothtask/ebpf
// (and the eBPF backends of smoothtask/metrics) throw a typed AddonNotBuiltError that says how
// to build, and every other module works.
//
// 1. The package ships a prebuilt addon for linux-x64 (glibc) in prebuilds/ (scripts/prebuild.mjs
//    in the repository). When it loads here, nothing is built and no tool is needed.
// 2. Otherwise, or when a source build is asked for (`SMOOTHTASK_BUILD_FROM_SOURCE=1`, or
//    `npm install --build-from-source`, which npm passes as npm_config_build_from_source), it
//    builds with cmake-js into build-native/ when the toolchain and the build peers (cmake-js,
//    node-addon-api) are present, and prints one message naming what is missing when not.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const say = (msg) => console.warn(`[smoothtask] ${msg}`);
if (process.env.SMOOTHTASK_SKIP_BUILD === '1' || process.platform !== 'linux') process.exit(0);

const flag = process.env.npm_config_build_from_source;
const fromSource = process.env.SMOOTHTASK_BUILD_FROM_SOURCE === '1' || flag === 'true' || flag === 'smoothtask';
const target = `${process.platform}-${process.arch}`;
const prebuilt = join(root, 'prebuilds', target, 'smoothtask.node');

if (!fromSource) {
  if (existsSync(prebuilt)) {
    // Loaded in a child: a prebuilt that does not fit this machine (musl, an older glibc)
    // must not take this process down.
    const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(prebuilt)})`], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
    if (r.status === 0) process.exit(0);
    const why = (r.stderr || `exit ${r.status ?? r.signal}`).split('\n').find((l) => /Error|error/.test(l)) ?? r.stderr.split('\n')[0];
    say(`the prebuilt addon for ${target} does not load here (${why.trim()}); trying a build from source.`);
  } else {
    say(`no prebuilt addon for ${target}; trying a build from source.`);
  }
}

const has = (cmd, args) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
const missing = [];
if (!has('pkg-config', ['--exists', 'libbpf', 'libelf', 'zlib'])) missing.push('libbpf-dev libelf-dev zlib1g-dev pkg-config');
if (!has('clang', ['--version'])) missing.push('clang');
if (!has('cmake', ['--version'])) missing.push('cmake');
if (!has('c++', ['--version'])) missing.push('g++ make');
if (!existsSync('/usr/sbin/bpftool') && !has('bpftool', ['version'])) missing.push('bpftool');
if (missing.length) {
  // Debian/Ubuntu package names. The rest of smoothtask works without the addon.
  say(`native addon not built: missing ${missing.join(', ')}. Install them (Debian/Ubuntu: ` +
    `\`sudo apt-get install ${missing.join(' ')}\`), then \`SMOOTHTASK_BUILD_FROM_SOURCE=1 npm rebuild smoothtask\`. ` +
    `Only smoothtask/ebpf and the eBPF backends of smoothtask/metrics need it.`);
  process.exit(0);
}
// cmake-js and node-addon-api are optional peers: only a source build needs them (sharp does
// the same with node-addon-api and node-gyp), so an install with the prebuilt stays small.
const requireHere = createRequire(join(root, 'package.json'));
const { peerDependencies = {} } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const buildPeers = ['cmake-js', 'node-addon-api'];
const absent = buildPeers.filter((name) => {
  try {
    requireHere.resolve(`${name}/package.json`);
    return false;
  } catch {
    return true;
  }
});
if (absent.length) {
  say(`native addon not built: a build from source needs ${absent.join(' and ')}. Install ` +
    `\`npm install --save-dev ${buildPeers.map((n) => `${n}@${peerDependencies[n] ?? 'latest'}`).join(' ')}\`, then ` +
    `\`SMOOTHTASK_BUILD_FROM_SOURCE=1 npm rebuild smoothtask\`.`);
  process.exit(0);
}
const cmakeJs = requireHere.resolve('cmake-js/bin/cmake-js');
const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', 'build-native'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) say('native build failed (output above); smoothtask/ebpf will report AddonNotBuiltError.');
