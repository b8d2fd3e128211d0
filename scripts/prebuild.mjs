// Builds the prebuilt addon the package ships: prebuilds/<platform>-<arch>/ with
//   smoothtask.node        the addon, C++ runtime linked statically, RPATH $ORIGIN, stripped
//   smoothtask-precheck    the loader's ELF pre-check helper (an executable the addon spawns),
//                          built the same way
//   libbpf.so.1, libelf.so.1, libz.so.1
//                          copied from the build machine (Debian's .a files are not position
//                          independent, so they cannot be linked into a shared object)
//   bpf/*.bpf.o            the bundled CO-RE objects (portable across kernels with BTF), DWARF
//                          stripped (BTF kept)
//   manifest.json          versions, the newest glibc symbol version needed, sha256 of each file
// and checks that the addon and the copied libraries need nothing but glibc and each other.
//
//   node scripts/prebuild.mjs [--out DIR] [--build-dir DIR]
//
// Run by "prepack" and by the CI before the tests (test/package checks the result from a user's
// side). Needs the development toolchain (clang, cmake, libbpf-dev, libelf-dev, zlib1g-dev).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 && process.argv[i + 1] ? resolve(process.argv[i + 1]) : dflt;
};
const target = `${process.platform}-${process.arch}`;
const out = arg('--out', join(root, 'prebuilds', target));
const buildDir = arg('--build-dir', join(root, 'build-prebuild'));
const fail = (msg) => {
  console.error(`[prebuild] ${msg}`);
  process.exit(1);
};
if (process.platform !== 'linux') fail('prebuilt addons are built on Linux only');

/** Libraries that ship with the addon (sonames). */
const BUNDLED = ['libbpf.so.1', 'libelf.so.1', 'libz.so.1'];
/** Libraries every glibc system has: the addon and the bundled ones may need only these. */
const GLIBC = new Set(['libc.so.6', 'libm.so.6', 'libpthread.so.0', 'libdl.so.2', 'librt.so.1', 'ld-linux-x86-64.so.2', 'ld-linux-aarch64.so.1']);

const r = spawnSync('npx', ['--no-install', 'cmake-js', 'compile', '--out', buildDir, '--CDSMOOTHTASK_PREBUILT=ON'], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'pipe'],
  encoding: 'utf8',
  maxBuffer: 64 << 20,
});
if (r.status !== 0) fail(`cmake-js failed:\n${(r.stdout + r.stderr).split('\n').slice(-40).join('\n')}`);
const addon = join(buildDir, 'Release', 'smoothtask.node');
const helper = join(buildDir, 'Release', 'smoothtask-precheck');

/** NEEDED entries and RPATH of an ELF shared object (readelf, from binutils). */
function dynamic(file) {
  const text = execFileSync('readelf', ['-dW', file], { encoding: 'utf8' });
  return {
    needed: [...text.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]),
    rpath: /\((?:RPATH|RUNPATH)\)\s+Library r(?:un)?path: \[([^\]]+)\]/.exec(text)?.[1],
  };
}
/** Where the dynamic loader finds each library of `file` on this machine (ldd). */
function resolved(file) {
  const map = new Map();
  for (const m of execFileSync('ldd', [file], { encoding: 'utf8' }).matchAll(/^\s*(\S+) => (\/\S+)/gm)) map.set(m[1], m[2]);
  return map;
}
/** The newest GLIBC_x.y symbol version `file` needs. */
function glibcNeeded(file) {
  const text = execFileSync('readelf', ['-VW', file], { encoding: 'utf8' });
  const versions = [...text.matchAll(/Name: GLIBC_([0-9.]+)/g)].map((m) => m[1].split('.').map(Number));
  versions.sort((a, b) => a[0] - b[0] || (a[1] ?? 0) - (b[1] ?? 0) || (a[2] ?? 0) - (b[2] ?? 0));
  return versions.length ? versions[versions.length - 1].join('.') : undefined;
}

for (const f of [addon, helper]) {
  const d = dynamic(f);
  if (d.rpath !== '$ORIGIN') fail(`${f}: RPATH is ${d.rpath ?? 'missing'}, expected $ORIGIN`);
}
const where = resolved(addon);

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'bpf'), { recursive: true });
// Symbols the dynamic linker does not need go (the static C++ runtime makes them many).
execFileSync('strip', ['--strip-unneeded', '-o', join(out, 'smoothtask.node'), addon]);
execFileSync('strip', ['--strip-unneeded', '-o', join(out, 'smoothtask-precheck'), helper]);
chmodSync(join(out, 'smoothtask-precheck'), 0o755);
for (const lib of BUNDLED) {
  const from = where.get(lib);
  if (!from) fail(`ldd ${addon} does not resolve ${lib}`);
  copyFileSync(realpathSync(from), join(out, lib));
}
// DWARF goes, BTF and BTF.ext stay (CO-RE relocation needs them, not the debug info).
const llvmStrip = ['llvm-strip', 'llvm-strip-16', 'llvm-strip-15', 'llvm-strip-14'].find((c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0);
if (!llvmStrip) fail('llvm-strip not found (Debian: apt-get install llvm)');
for (const f of readdirSync(join(buildDir, 'bpf'))) {
  if (f.endsWith('.bpf.o')) execFileSync(llvmStrip, ['-g', '-o', join(out, 'bpf', f), join(buildDir, 'bpf', f)]);
}

// Nothing shipped may need a library that is neither glibc's nor shipped.
const files = ['smoothtask.node', 'smoothtask-precheck', ...BUNDLED];
const glibc = {};
for (const f of files) {
  const bad = dynamic(join(out, f)).needed.filter((n) => !GLIBC.has(n) && !BUNDLED.includes(n));
  if (bad.length) fail(`${f} needs ${bad.join(', ')}: neither glibc nor shipped`);
  glibc[f] = glibcNeeded(join(out, f));
}
const newest = Object.values(glibc).filter(Boolean).sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).pop();

const sha256 = (p) => createHash('sha256').update(readFileSync(p)).digest('hex');
const libbpfVersion = (() => {
  try {
    return execFileSync('pkg-config', ['--modversion', 'libbpf'], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
})();
const shipped = [...files, ...readdirSync(join(out, 'bpf')).map((f) => `bpf/${f}`)];
const manifest = {
  target,
  napi: 8,
  libbpf: libbpfVersion,
  glibc: newest,
  node: process.version,
  files: Object.fromEntries(shipped.map((f) => [f, sha256(join(out, f))])),
};
writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');

// The copy loads on its own: through its RPATH, not the build machine's libraries.
const check = spawnSync(process.execPath, ['-e', `const b = require(${JSON.stringify(join(out, 'smoothtask.node'))}); if (!Array.isArray(b.parts)) process.exit(3);`], { encoding: 'utf8' });
if (check.status !== 0) fail(`the prebuilt addon does not load: ${check.stderr}`);
console.log(`[prebuild] ${basename(out)}: ${shipped.length} files, needs glibc >= ${newest}, libbpf ${libbpfVersion}`);
