/**
 * Locating the CUDA driver library (`libcuda.so.1`) the uprobes attach to, the way the dynamic
 * loader would find it: an explicit path, `SMOOTHTASK_LIBCUDA`, `LD_LIBRARY_PATH`, the
 * `ldconfig -p` cache, then the usual install directories (distribution packages, the CUDA
 * toolkit's compat libraries, WSL).
 * @module
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';

/** Where a library was found and how. */
export interface LibraryLocation {
  /** Path as found (may be a symlink). */
  path: string;
  /** The file the symlinks lead to: uprobes attach to this inode. */
  realPath: string;
  /** `option`, `env`, `LD_LIBRARY_PATH`, `ldconfig` or `default-dirs`. */
  source: 'option' | 'env' | 'LD_LIBRARY_PATH' | 'ldconfig' | 'default-dirs';
}

const NAMES = ['libcuda.so.1', 'libcuda.so'];

function defaultDirs(): string[] {
  const dirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib64', '/lib/x86_64-linux-gnu', '/usr/lib/wsl/lib'];
  try {
    for (const d of readdirSync('/usr/local').sort().reverse()) {
      if (/^cuda(-[\d.]+)?$/.test(d)) dirs.push(join('/usr/local', d, 'lib64'), join('/usr/local', d, 'compat'), join('/usr/local', d, 'lib64', 'stubs'));
    }
  } catch {
    /* no /usr/local */
  }
  return dirs;
}

function ldconfigPaths(name: string): string[] {
  for (const bin of ['/sbin/ldconfig', '/usr/sbin/ldconfig', 'ldconfig']) {
    try {
      const out = execFileSync(bin, ['-p'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
      const arch = process.arch === 'arm64' ? 'AArch64' : 'x86-64';
      return out
        .split('\n')
        .filter((l) => l.trim().startsWith(`${name} `) && (l.includes(arch) || !l.includes(',')))
        .map((l) => l.split('=>')[1]?.trim())
        .filter((p): p is string => !!p);
    } catch {
      /* try the next */
    }
  }
  return [];
}

function located(path: string, source: LibraryLocation['source']): LibraryLocation | null {
  if (!existsSync(path)) return null;
  try {
    return { path, realPath: realpathSync(path), source };
  } catch {
    return null;
  }
}

/**
 * Finds libcuda. `path` (a file) wins and must exist; otherwise the search order above.
 * Returns null when no CUDA driver is installed. The toolkit's `stubs/libcuda.so` (link-time
 * stub, never loaded at run time) is found only as a last resort.
 */
export function findLibcuda(options: { path?: string; env?: NodeJS.ProcessEnv } = {}): LibraryLocation | null {
  const env = options.env ?? process.env;
  if (options.path) return located(options.path, 'option');
  if (env.SMOOTHTASK_LIBCUDA) return located(env.SMOOTHTASK_LIBCUDA, 'env');
  for (const dir of (env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean)) {
    for (const n of NAMES) {
      const l = located(join(dir, n), 'LD_LIBRARY_PATH');
      if (l) return l;
    }
  }
  for (const n of NAMES) {
    for (const p of ldconfigPaths(n)) {
      const l = located(p, 'ldconfig');
      if (l) return l;
    }
  }
  for (const dir of defaultDirs()) {
    for (const n of NAMES) {
      const l = located(join(dir, n), 'default-dirs');
      if (l) return l;
    }
  }
  return null;
}
