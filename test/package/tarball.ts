// The packed package as a user gets it: shared by the package tests and bench/install.ts.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const root = fileURLToPath(new URL('../../', import.meta.url));

/** This process's environment without npm_* variables: those of an enclosing `npm test` would steer the inner npm commands. */
export const npmEnv: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));

/** Runs a command to its end; its stdout (throws with stdout/stderr on a non-zero exit). */
export function run(cmd: string, args: string[], cwd: string, o: { env?: NodeJS.ProcessEnv; input?: string } = {}): string {
  return execFileSync(cmd, args, {
    cwd,
    env: { ...npmEnv, ...o.env },
    encoding: 'utf8',
    input: o.input,
    stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
  });
}

/** `npm pack` of the repository as it is (dist/, prebuilds/; no prepack) into `dest`. */
export function packTarball(dest: string): { tarball: string; files: string[] } {
  const packed = JSON.parse(run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dest], root)) as Array<{ filename: string; files: Array<{ path: string }> }>;
  return { tarball: join(dest, packed[0]!.filename), files: packed[0]!.files.map((f) => f.path) };
}

/** `npm install` of `specs` into `project` (quiet, from the cache where it can). */
export function npmInstall(project: string, specs: string[], o: { flags?: string[]; env?: NodeJS.ProcessEnv } = {}): string {
  return run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', '--prefer-offline', ...(o.flags ?? []), ...specs], project, { env: o.env });
}

/** Installed packages (`npm query '*'`) and the size of `node_modules` on disk (`du`), of `project`. */
export function installSize(project: string): { packages: number; megabytes: number } {
  const packages = (JSON.parse(run('npm', ['query', '*'], project)) as unknown[]).length;
  const bytes = Number(run('du', ['-sb', 'node_modules'], project).split(/\s/)[0]);
  return { packages, megabytes: Math.round(bytes / 1e5) / 10 };
}
