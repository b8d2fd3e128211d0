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
      `The smoothtask native addon is not built or failed to load. Build it with ` +
        `\`npm run setup && npm run build:native\` (needs clang, libbpf-dev, libelf-dev, zlib1g-dev, cmake). Tried:\n  ` +
        tried.join('\n  '),
    );
    this.tried = tried;
  }
}

let cached: NativeBinding | undefined;
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

/** Directory of the compiled bundled BPF objects (`<root>/build-native/bpf`), or `SMOOTHTASK_BPF_DIR`. */
export function bpfObjectDir(): string {
  return process.env.SMOOTHTASK_BPF_DIR ?? join(packageRoot(), 'build-native', 'bpf');
}

/** Loads the addon once; throws {@link AddonNotBuiltError} listing every path tried. */
export function loadAddon(): NativeBinding {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const base = packageRoot();
  // An explicit SMOOTHTASK_ADDON is the only candidate: a wrong override must not be hidden
  // by a silently loaded other build.
  const override = process.env.SMOOTHTASK_ADDON;
  const candidates = override
    ? [override]
    : [
        join(base, 'build-native', 'Release', 'smoothtask.node'),
        join(base, 'build', 'Release', 'smoothtask.node'),
        join(base, 'prebuilds', `${process.platform}-${process.arch}`, 'smoothtask.node'),
      ];
  const tried: string[] = [];
  for (const p of candidates) {
    const abs = resolve(p);
    if (!existsSync(abs)) {
      tried.push(`${abs}: not found`);
      continue;
    }
    try {
      cached = require(abs) as NativeBinding;
      return cached;
    } catch (e) {
      tried.push(`${abs}: ${(e as Error).message}`);
    }
  }
  throw new AddonNotBuiltError(tried);
}
