// Fleet agents as real processes: `smoothtask agent --config <file>` (lib/cli through tsx),
// each with its own data folder, on 127.0.0.1 with a port of its own choosing.
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashToken } from '../../lib/agent/config.js';
import { startCli } from '../agent/cli-run.js';

/** The admin token of the fleet test agents. */
export const ADMIN_TOKEN = 'fleet-admin-token-0123456789';

export interface AgentProc {
  name: string;
  child: ChildProcess;
  url: string;
  out: () => string;
}

export interface FleetAgentSpec {
  name: string;
  classes: string[];
  labels?: Record<string, string>;
  gpus?: number;
}

/** Starts an agent in the fleet on `redisUrl`/`prefix`; resolves once it listens. */
export async function startFleetAgent(dir: string, redisUrl: string, prefix: string, s: FleetAgentSpec, over: Record<string, unknown> = {}): Promise<AgentProc> {
  const cfg = join(dir, `${s.name}.json`);
  writeFileSync(
    cfg,
    JSON.stringify({
      dataDir: join(dir, s.name),
      listen: { host: '127.0.0.1', port: 0 },
      auth: { tokens: [{ name: 'admin', sha256: hashToken(ADMIN_TOKEN), scopes: ['admin'] }] },
      webhooks: { network: { allowPrivate: false, allow: ['127.0.0.1/32'], block: [] } },
      metrics: { enabled: false },
      queue: { concurrency: 8 },
      policy: { process: { commands: ['/bin/sh', '/bin/true', '/bin/sleep', '/bin/echo'] } },
      shutdown: { graceMs: 0 },
      fleet: {
        enabled: true,
        redis: { url: redisUrl },
        prefix,
        classes: s.classes,
        node: { name: s.name, labels: s.labels ?? {}, gpus: s.gpus ?? 0 },
        lockDurationMs: 4000,
        stalledIntervalMs: 2000,
        ...over,
      },
    }),
  );
  const child = startCli(['agent', '--config', cfg], { detached: true });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`agent ${s.name} did not start: ${out}`)), 60_000);
    const check = () => {
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`agent ${s.name} exited ${code}: ${out}`));
    });
  });
  return { name: s.name, child, url, out: () => out };
}

/** SIGKILL of the agent's whole process group (its task processes too, as a node that dies). */
export function killHard(a: AgentProc): void {
  try {
    process.kill(-a.child.pid!, 'SIGKILL');
  } catch {
    a.child.kill('SIGKILL');
  }
}

/** SIGTERM, then wait for the exit (SIGKILL after `ms`). */
export async function stopAgent(a: AgentProc, ms = 15_000): Promise<void> {
  if (a.child.exitCode !== null || a.child.signalCode !== null) return;
  const gone = new Promise((r) => a.child.once('exit', r));
  a.child.kill('SIGTERM');
  const t = setTimeout(() => killHard(a), ms);
  await gone;
  clearTimeout(t);
}
