import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/** Bundles test/store/<name>.ts into one CJS file (plain `node` starts it fast). */
export async function bundleChild(name = 'child', entry: URL = new URL(`./${name}.ts`, import.meta.url)): Promise<string> {
  const out = join(await mkdtemp(join(tmpdir(), 'st-child-')), `${name}.cjs`);
  await build({
    entryPoints: [fileURLToPath(entry)],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    outfile: out,
    logLevel: 'error',
  });
  return out;
}

/** Spawns the child and resolves once a stdout line starts with `waitFor`. */
export function startChild(bundle: string, args: string[], waitFor: string, timeoutMs = 20_000): Promise<ChildProcess> {
  const child = spawn(process.execPath, [bundle, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child ${args.join(' ')} did not print ${waitFor}: ${err}`));
    }, timeoutMs);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.split('\n').some((l) => l.startsWith(waitFor))) {
        clearTimeout(t);
        resolve(child);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`child exited ${code} before ${waitFor}: ${err}`));
    });
  });
}

/** Resolves when the child has exited. */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}
