/**
 * `smoothtask agent`: loads the configuration, prints it (`--check-config`) or starts the agent
 * and shuts it down on SIGTERM/SIGINT.
 * @module
 */
import { ENV_OVERRIDE_PREFIX, loadAgentConfig, redactConfig } from '../agent/config-file.js';
import { ConfigError } from '../errors/index.js';

/** Options of {@link runAgent}. */
export interface RunAgentOptions {
  /** `--config`. */
  configPath: string;
  /** `--env` (else `SMOOTHTASK_ENV`). */
  env?: string | undefined;
  /** `--host`, `--port`, `--data-dir` as a partial configuration. */
  overrides: Record<string, unknown>;
  /** `--check-config`: print the effective configuration and return. */
  checkOnly: boolean;
}

/** Time the process waits for the agent to finish closing after a second signal, before it exits 1 anyway. */
const FORCED_EXIT_MS = 5000;
/** Slack on top of `shutdown.graceMs + queue.killAfterMs` before a stuck close is abandoned. */
const CLOSE_WATCHDOG_SLACK_MS = 30_000;

const log = (line: string): void => {
  process.stderr.write(`smoothtask agent: ${line}\n`);
};

/**
 * Runs `smoothtask agent`. With `checkOnly`, prints the effective configuration (secrets
 * redacted) as JSON on stdout and resolves 0. Otherwise starts the agent, prints
 * `listening on <url>` on stdout, and on the first SIGTERM/SIGINT closes it with
 * `shutdown.graceMs` (running tasks may finish, then are cancelled or requeued per
 * `shutdown.onTimeout`; the store and webhook outbox are flushed) and resolves 0. A second
 * signal closes the queue at once (running tasks cancelled or requeued now) and resolves 1.
 * @throws {@link ConfigError} when the configuration is invalid (the caller prints every problem).
 */
export async function runAgent(options: RunAgentOptions): Promise<number> {
  const loaded = await loadAgentConfig({ configPath: options.configPath, env: options.env, overrides: options.overrides });
  if (options.checkOnly) {
    process.stdout.write(`${JSON.stringify(redactConfig(loaded.config), null, 2)}\n`);
    log(`configuration OK (${loaded.sources.map((s) => s.name).join(' < ')})`);
    return 0;
  }
  const cfg = loaded.config;
  // The overrides may carry secrets; process tasks inherit this environment (inheritEnv), so
  // they leave it once read.
  for (const k of Object.keys(process.env)) if (k.startsWith(ENV_OVERRIDE_PREFIX)) delete process.env[k];

  // Signals are caught from the start, so one that arrives while the agent starts still closes it.
  let signals = 0;
  let onSignal: ((sig: NodeJS.Signals) => void) | undefined;
  const firstSignal = new Promise<NodeJS.Signals>((resolve) => (onSignal = resolve));
  let escalate: (() => void) | undefined;
  const handler = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      log(`${sig}: stopping (running tasks may finish for ${cfg.shutdown.graceMs} ms, then ${cfg.shutdown.onTimeout === 'requeue' ? 'are requeued' : 'are cancelled'}; send it again to stop now)`);
      onSignal!(sig);
    } else if (signals === 2) {
      log(`${sig} again: stopping now (running tasks ${cfg.shutdown.onTimeout === 'requeue' ? 'requeued' : 'cancelled'}); exit 1`);
      escalate?.();
      setTimeout(() => {
        log(`did not finish closing within ${FORCED_EXIT_MS} ms; exiting`);
        process.exit(1);
      }, FORCED_EXIT_MS).unref();
    }
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);

  const { createAgent } = await import('../agent/agent.js');
  let agent;
  try {
    agent = await createAgent(loaded.input);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    log(`could not start: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
  const a = agent;
  escalate = () => {
    // Closing the queue aborts running attempts now; the pending close() then finishes its flush.
    void a.close({ graceMs: 0 }).catch(() => {});
    void a.queue.close().catch(() => {});
  };
  if (signals === 0) {
    try {
      const { url } = await a.listen();
      process.stdout.write(`smoothtask agent listening on ${url} (pid ${process.pid})\n`);
      log(`configuration: ${loaded.sources.map((s) => s.name).join(' < ')}; data in ${cfg.dataDir}`);
    } catch (e) {
      log(`could not listen on ${cfg.listen.host}:${cfg.listen.port}: ${e instanceof Error ? e.message : String(e)}`);
      await a.close({ graceMs: 0 }).catch(() => {});
      return 1;
    }
  }
  if (signals >= 2) escalate();

  await firstSignal;
  const watchdogMs = cfg.shutdown.graceMs + cfg.queue.killAfterMs + CLOSE_WATCHDOG_SLACK_MS;
  let watchdog: NodeJS.Timeout | undefined;
  const stuck = new Promise<'stuck'>((resolve) => {
    watchdog = setTimeout(() => resolve('stuck'), watchdogMs);
  });
  try {
    const r = await Promise.race([a.close({ graceMs: cfg.shutdown.graceMs }), stuck]);
    if (r === 'stuck') {
      log(`close did not finish within ${watchdogMs} ms; exiting`);
      return 1;
    }
  } catch (e) {
    log(`close failed: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  } finally {
    clearTimeout(watchdog);
  }
  log(signals >= 2 ? 'stopped (forced)' : 'stopped');
  return signals >= 2 ? 1 : 0;
}
