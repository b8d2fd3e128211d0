/**
 * The `smoothtask` command line: `agent` (start the agent, or `--check-config`),
 * `hash-token`, `--help`, `--version`. Exit codes: 0 success, 1 runtime failure (or a forced
 * shutdown), 2 usage or configuration error.
 * @module
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError } from '../errors/index.js';
import { runAgent } from './agent.js';
import { hashTokenCommand } from './hash-token.js';

/** Exit status of a usage or configuration error. */
export const EXIT_USAGE = 2;

const USAGE = `Usage:
  smoothtask agent --config <agent.json> [--env <name>] [--host <addr>] [--port <n>] [--data-dir <dir>]
      Start the agent (HTTP API). SIGTERM/SIGINT stop it gracefully (shutdown.graceMs);
      a second signal stops running tasks at once (cancelled, or requeued with
      shutdown.onTimeout "requeue") and exits 1.
  smoothtask agent --check-config --config <agent.json> [--env <name>] [flags as above]
      Print the effective configuration (secrets redacted) and exit 0, or every error
      with its path and exit 2.
  smoothtask hash-token
      Read a bearer token on stdin, print its SHA-256 (for auth.tokens[].sha256).
  smoothtask --help | --version

Configuration precedence, lowest first: schema defaults < <config> < <config-stem>.<env>.json
  < SMOOTHTASK_AGENT__<KEY>__<KEY>=<json|string> variables < --host/--port/--data-dir.
The environment name comes from --env, else SMOOTHTASK_ENV.
Exit codes: 0 ok, 1 runtime failure or forced shutdown, 2 usage or configuration error.
`;

/** The package version: the nearest `package.json` named `smoothtask` above this module (lib/cli, dist/cli or a dist chunk). */
function version(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++, dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'smoothtask' && pkg.version) return pkg.version;
    } catch {
      // not here; look one folder up
    }
  }
  return 'unknown';
}

/** Writes the usage error and returns {@link EXIT_USAGE}. */
function usageError(message: string): number {
  process.stderr.write(`smoothtask: ${message}\n\n${USAGE}`);
  return EXIT_USAGE;
}

/** Prints a configuration error with each problem on its own line. */
export function printConfigError(e: ConfigError): void {
  const lines = e.issues.length ? e.issues : [e.message];
  process.stderr.write(`smoothtask: invalid configuration (${lines.length} problem${lines.length === 1 ? '' : 's'}):\n${lines.map((l) => `  ${l}\n`).join('')}`);
}

/**
 * Runs the command line `argv` (without `node` and the script) and resolves with the exit
 * status. `agent` resolves only once the agent has shut down.
 */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? EXIT_USAGE : 0;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  try {
    if (command === 'agent') {
      let parsed;
      try {
        parsed = parseArgs({
          args: rest,
          strict: true,
          allowPositionals: false,
          options: {
            config: { type: 'string', short: 'c' },
            env: { type: 'string', short: 'e' },
            'check-config': { type: 'boolean' },
            host: { type: 'string' },
            port: { type: 'string' },
            'data-dir': { type: 'string' },
            help: { type: 'boolean', short: 'h' },
          },
        });
      } catch (e) {
        return usageError((e as Error).message);
      }
      const v = parsed.values;
      if (v.help) {
        process.stdout.write(USAGE);
        return 0;
      }
      if (v.config === undefined || v.config === '') return usageError('agent: --config <file> is required');
      const overrides: Record<string, unknown> = {};
      if (v.host !== undefined || v.port !== undefined) {
        const listen: Record<string, unknown> = {};
        if (v.host !== undefined) listen.host = v.host;
        if (v.port !== undefined) {
          if (!/^\d{1,5}$/.test(v.port)) return usageError(`agent: --port must be an integer 0-65535, not '${v.port}'`);
          listen.port = Number(v.port);
        }
        overrides.listen = listen;
      }
      if (v['data-dir'] !== undefined) overrides.dataDir = v['data-dir'];
      return await runAgent({ configPath: v.config, env: v.env, overrides, checkOnly: v['check-config'] === true });
    }
    if (command === 'hash-token') {
      try {
        const { values } = parseArgs({ args: rest, strict: true, allowPositionals: false, options: { help: { type: 'boolean', short: 'h' } } });
        if (values.help) {
          process.stdout.write(USAGE);
          return 0;
        }
      } catch (e) {
        return usageError((e as Error).message);
      }
      return await hashTokenCommand();
    }
    return usageError(`unknown command '${command}'`);
  } catch (e) {
    if (e instanceof ConfigError) {
      printConfigError(e);
      return EXIT_USAGE;
    }
    throw e;
  }
}
