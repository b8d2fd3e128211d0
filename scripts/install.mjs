// npm "install" hook: builds the addon and the BPF objects when the toolchain is present.
// It never fails the install: without a build, smoothtask/ebpf throws a typed
// AddonNotBuiltError that says how to build, and every other module works.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

if (process.env.SMOOTHTASK_SKIP_BUILD === '1' || process.platform !== 'linux') process.exit(0);
const has = (cmd, args) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
const missing = [];
if (!has('pkg-config', ['--exists', 'libbpf', 'libelf', 'zlib'])) missing.push('libbpf-dev libelf-dev zlib1g-dev pkg-config');
if (!has('clang', ['--version'])) missing.push('clang');
if (!has('cmake', ['--version'])) missing.push('cmake');
if (!existsSync('/usr/sbin/bpftool') && !has('bpftool', ['version'])) missing.push('bpftool');
if (missing.length) {
  // The names are Debian/Ubuntu packages. scripts/setup.sh is the repository's development
  // set-up (it runs npm install and tsup in place) and is not shipped in the package.
  console.warn(`[smoothtask] native addon not built: missing ${missing.join(', ')}. ` +
    `Install them (Debian/Ubuntu: \`sudo apt-get install ${missing.join(' ')}\`), then \`npm rebuild smoothtask\`.`);
  process.exit(0);
}
const r = spawnSync('npx', ['--no-install', 'cmake-js', 'compile', '--out', 'build-native'], { stdio: 'inherit' });
if (r.status !== 0) console.warn('[smoothtask] native build failed; smoothtask/ebpf will report AddonNotBuiltError.');
