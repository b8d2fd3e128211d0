/**
 * The one place that locates and loads `smoothtask.node`. Only `smoothtask/ebpf` and the
 * eBPF backend of `smoothtask/metrics` call it, lazily, so the rest of the library works on
 * a machine where the addon was never built.
 * @internal
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SmoothtaskError } from '../errors/index.js';
import type { NativeBinding } from './binding.js';

/** Thrown when the native addon is not built or cannot be loaded. */
export class AddonNotBuiltError extends SmoothtaskError {
  /** Every path that was tried, with why it failed. */
  readonly tried: string[];
  constructor(tried: string[]) {
    super(
      'ERR_ADDON_NOT_BUILT',
      `The smoothtask native addon could not be loaded: no local build, and no prebuilt one for ` +
        `${process.platform}-${process.arch} (glibc) that loads here. Build it from source: install clang, ` +
        `cmake, libbpf-dev, libelf-dev, zlib1g-dev, pkg-config and bpftool, then ` +
        `\`npm rebuild smoothtask --build-from-source\` (in a checkout of smoothtask: \`npm run build:native\`). Tried:\n  ` +
        tried.join('\n  '),
    );
    this.tried = tried;
  }
}

/** Where one build of the addon lives: the addon file and the BPF objects built with it. */
interface NativeBuild {
  addon: string;
  bpf: string;
}

let cached: NativeBinding | undefined;
let loadedFrom: NativeBuild | undefined;
let root: string | undefined;

/** The package root (the directory holding smoothtask's package.json). */
export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if (JSON.parse(readFileSync(pj, 'utf8')).name === 'smoothtask') return (root = dir);
      } catch {
        /* keep walking */
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new SmoothtaskError('ERR_PACKAGE_ROOT', 'Cannot find the smoothtask package root');
    dir = up;
  }
}

/**
 * The builds to try, in order. A local build first: it exists only where someone asked for
 * one (a development checkout, or `npm rebuild smoothtask --build-from-source`; the install
 * hook does not build when the prebuilt loads), and a deliberate source build must not be
 * shadowed by the shipped binary. Then the prebuilt of `prebuilds/<platform>-<arch>/`
 * (scripts/prebuild.mjs). `build/` is node-gyp's, which builds no BPF objects.
 */
function nativeBuilds(): NativeBuild[] {
  const base = packageRoot();
  const prebuilt = join(base, 'prebuilds', `${process.platform}-${process.arch}`);
  return [
    { addon: join(base, 'build-native', 'Release', 'smoothtask.node'), bpf: join(base, 'build-native', 'bpf') },
    { addon: join(base, 'build', 'Release', 'smoothtask.node'), bpf: join(base, 'build-native', 'bpf') },
    { addon: join(prebuilt, 'smoothtask.node'), bpf: join(prebuilt, 'bpf') },
  ];
}

/**
 * Directory of the bundled BPF objects: `SMOOTHTASK_BPF_DIR`, else those built with the addon
 * that was loaded, else the first build (in {@link loadAddon}'s order) that has them.
 */
export function bpfObjectDir(): string {
  if (process.env.SMOOTHTASK_BPF_DIR) return process.env.SMOOTHTASK_BPF_DIR;
  if (loadedFrom) return loadedFrom.bpf;
  const builds = nativeBuilds();
  return (builds.find((b) => existsSync(b.addon) && existsSync(b.bpf)) ?? builds.find((b) => existsSync(b.bpf)) ?? builds[0]!).bpf;
}

/** Loads the addon once; throws {@link AddonNotBuiltError} listing every path tried. */
export function loadAddon(): NativeBinding {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  // An explicit SMOOTHTASK_ADDON is the only candidate: a wrong override must not be hidden
  // by a silently loaded other build.
  const override = process.env.SMOOTHTASK_ADDON;
  const candidates: Array<NativeBuild | undefined> = override ? [undefined] : nativeBuilds();
  const tried: string[] = [];
  for (const c of candidates) {
    const abs = resolve(c ? c.addon : override!);
    if (!existsSync(abs)) {
      tried.push(`${abs}: not found`);
      continue;
    }
    try {
      cached = require(abs) as NativeBinding;
      loadedFrom = c;
      return cached;
    } catch (e) {
      tried.push(`${abs}: ${(e as Error).message}`);
    }
  }
  throw new AddonNotBuiltError(tried);
}
