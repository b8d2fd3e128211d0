// Runs the real `smoothtask` command (lib/cli/index.ts through tsx) as a child process.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const cli = fileURLToPath(new URL('../../lib/cli/index.ts', import.meta.url));
// By file URL, so the child finds tsx whatever its cwd.
export const tsx = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** The command line that runs `smoothtask` (for a shell pipeline). */
export const cliCommand = [process.execPath, '--import', tsx, cli];

/** Environment without any SMOOTHTASK_AGENT__* / SMOOTHTASK_ENV of the test runner, plus `env`. */
export function cleanEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SMOOTHTASK_AGENT__') && k !== 'SMOOTHTASK_ENV') out[k] = v;
  return { ...out, ...env };
}

/** Starts `smoothtask <args>`; the caller owns the child. */
export function startCli(args: string[], opts: { env?: Record<string, string>; cwd?: string; detached?: boolean } = {}): ChildProcess {
  return spawn(process.execPath, ['--import', tsx, cli, ...args], {
    cwd: opts.cwd ?? repoRoot,
    env: cleanEnv(opts.env),
    stdio: ['pipe', 'pipe', 'pipe'],
    // Its own process group, like a command started from a shell (Ctrl-C signals the group).
    detached: opts.detached ?? false,
  });
}

/** Runs `smoothtask <args>` to its end (killed after `timeoutMs`), feeding `stdin`. */
export function runCli(args: string[], opts: { env?: Record<string, string>; cwd?: string; stdin?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const t0 = Date.now();
  const child = startCli(args, opts);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin!.end(opts.stdin ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}
