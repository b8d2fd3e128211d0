/**
 * The spec policy applied to remote callers before a task reaches the queue: allowed
 * commands, images, host mount roots (never the Docker socket unless allowed), network
 * modes and maximum limits. Library users keep their freedom; only the agent applies this.
 * @module
 */
import { realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import type { JsonValue } from '../util/json.js';
import type { AgentConfig } from './config.js';
import { PolicyViolationError } from './errors.js';

/** What a submit asks for, as the policy sees it (the spec already parsed by the kind's schema). */
export interface PolicyRequest {
  /** Task kind: `process`, `container` or `compose`. */
  kind: string;
  /** The spec after the executor's schema filled its defaults. */
  spec: Record<string, unknown>;
  /** The task's `timeoutMs`, if given. */
  timeoutMs?: number | undefined;
}

/** What the policy lets through: the task's timeout and the limits to enforce (caps filled in). */
export interface PolicyDecision {
  /** Task time limit to submit with (capped at `limits.maxTimeoutMs`). */
  timeoutMs: number;
  /** Limits to write into `spec.limits` (caps filled in where the spec set none), for kinds that have limits. */
  limits?: Record<string, number>;
}

/** Docker socket paths refused as mount sources (and any directory above them). */
const DOCKER_SOCKETS = ['/var/run/docker.sock', '/run/docker.sock'];

/** `path` with symlinks resolved as far as it exists (the rest appended), normalised. */
function realish(path: string): string {
  let p = resolve(path);
  const rest: string[] = [];
  for (;;) {
    try {
      return join(realpathSync(p), ...rest.reverse());
    } catch {
      const parent = dirname(p);
      if (parent === p) return resolve(path);
      rest.push(basename(p));
      p = parent;
    }
  }
}

const isUnder = (path: string, root: string): boolean => path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);

/**
 * Checks a submit against `policy` and returns the decision, or throws
 * {@link PolicyViolationError} (HTTP 403) naming the rule that refused it:
 * `process.commands`, `process.shell`, `docker.images`, `docker.build`, `docker.mountRoots`,
 * `docker.allowDockerSocket`, `docker.networkModes`, `docker.ports`, `compose.files`,
 * `limits.maxTimeoutMs`, `limits.maxMemoryBytes`, `limits.maxCpus`, `limits.maxPids`.
 */
export function checkPolicy(policy: AgentConfig['policy'], defaultTimeoutMs: number, req: PolicyRequest): PolicyDecision {
  const { limits } = policy;
  const timeout = req.timeoutMs ?? Math.min(defaultTimeoutMs, limits.maxTimeoutMs);
  if (timeout > limits.maxTimeoutMs) {
    throw new PolicyViolationError('limits.maxTimeoutMs', `timeoutMs ${timeout} exceeds the policy maximum ${limits.maxTimeoutMs}`);
  }
  const specTimeout = req.spec.timeoutMs;
  if (typeof specTimeout === 'number' && specTimeout > limits.maxTimeoutMs) {
    throw new PolicyViolationError('limits.maxTimeoutMs', `spec.timeoutMs ${specTimeout} exceeds the policy maximum ${limits.maxTimeoutMs}`);
  }
  switch (req.kind) {
    case 'process':
      checkProcess(policy, req.spec);
      return { timeoutMs: timeout, limits: capLimits(limits, req.spec.limits) };
    case 'container':
      checkContainer(policy, req.spec);
      return { timeoutMs: timeout, limits: capLimits(limits, req.spec.limits) };
    case 'compose':
      checkCompose(policy, req.spec);
      return { timeoutMs: timeout };
    default:
      // Kinds registered by the embedding application: only the timeout is capped.
      return { timeoutMs: timeout };
  }
}

function capLimits(limits: AgentConfig['policy']['limits'], given: unknown): Record<string, number> {
  const l = { ...((given ?? {}) as Record<string, number>) };
  const caps: Array<[key: string, cap: number | null, rule: string]> = [
    ['memoryBytes', limits.maxMemoryBytes, 'limits.maxMemoryBytes'],
    ['cpus', limits.maxCpus, 'limits.maxCpus'],
    ['pids', limits.maxPids, 'limits.maxPids'],
  ];
  for (const [key, cap, rule] of caps) {
    if (cap === null) continue;
    const v = l[key];
    if (v === undefined) l[key] = cap;
    else if (v > cap) throw new PolicyViolationError(rule, `spec.limits.${key} ${v} exceeds the policy maximum ${cap}`);
  }
  return l;
}

function checkProcess(policy: AgentConfig['policy'], spec: Record<string, unknown>): void {
  const allowed = policy.process.commands;
  if (allowed.length === 0) throw new PolicyViolationError('process.commands', 'process tasks are not allowed by the agent policy (policy.process.commands is empty)');
  const command = String(spec.command);
  if (spec.shell === true && !allowed.includes('/bin/sh') && !allowed.includes('sh')) {
    throw new PolicyViolationError('process.shell', 'shell: true runs /bin/sh, which is not in policy.process.commands');
  }
  if (spec.shell !== true && !allowed.includes(command)) {
    throw new PolicyViolationError('process.commands', `command '${command}' is not allowed (allowed: ${allowed.join(', ')})`);
  }
}

function matchesImage(image: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => (p.endsWith('*') ? image.startsWith(p.slice(0, -1)) : image === p));
}

function checkHostPath(policy: AgentConfig['policy'], path: string, what: string): void {
  if (!isAbsolute(path)) throw new PolicyViolationError('docker.mountRoots', `${what} '${path}' must be an absolute host path`);
  const real = realish(path);
  if (!policy.docker.allowDockerSocket) {
    for (const sock of DOCKER_SOCKETS) {
      const s = realish(sock);
      if (isUnder(s, real) || isUnder(sock, real) || basename(real) === 'docker.sock') {
        throw new PolicyViolationError('docker.allowDockerSocket', `${what} '${path}' exposes the Docker socket (${sock}); it is never mounted unless policy.docker.allowDockerSocket is true`);
      }
    }
  }
  const roots = policy.docker.mountRoots.map(realish);
  if (real === '/' && !roots.includes('/')) throw new PolicyViolationError('docker.mountRoots', `${what} '/' (the host root) is not allowed`);
  if (!roots.some((r) => isUnder(real, r))) {
    throw new PolicyViolationError(
      'docker.mountRoots',
      roots.length ? `${what} '${path}' is outside the allowed mount roots (${policy.docker.mountRoots.join(', ')})` : `${what} '${path}': host mounts are not allowed (policy.docker.mountRoots is empty)`,
    );
  }
}

function checkContainer(policy: AgentConfig['policy'], spec: Record<string, unknown>): void {
  const d = policy.docker;
  if (typeof spec.image === 'string' && !matchesImage(spec.image, d.images)) {
    throw new PolicyViolationError('docker.images', d.images.length ? `image '${spec.image}' is not allowed (allowed: ${d.images.join(', ')})` : `image '${spec.image}': no images are allowed (policy.docker.images is empty)`);
  }
  const build = spec.build as { context?: string } | undefined;
  if (build?.context !== undefined) checkHostPath(policy, build.context, 'build context');
  for (const m of (spec.mounts ?? []) as Array<{ source: string }>) checkHostPath(policy, m.source, 'mount source');
  const network = String(spec.network ?? 'bridge');
  if (!d.networkModes.includes(network)) {
    throw new PolicyViolationError('docker.networkModes', `network '${network}' is not allowed (allowed: ${d.networkModes.join(', ')})`);
  }
  for (const p of (spec.ports ?? []) as Array<{ hostIp?: string }>) {
    const ip = p.hostIp ?? '127.0.0.1';
    if (ip !== '127.0.0.1' && ip !== '::1') {
      throw new PolicyViolationError('docker.ports', `publishing a port on ${ip} is not allowed: ports are published on loopback only`);
    }
  }
}

function checkCompose(policy: AgentConfig['policy'], spec: Record<string, unknown>): void {
  const files = (spec.files ?? []) as string[];
  const projectDir = spec.projectDir as string | undefined;
  if (policy.docker.mountRoots.length === 0) {
    throw new PolicyViolationError('compose.files', 'compose tasks are not allowed: their files must live under policy.docker.mountRoots, which is empty');
  }
  for (const f of files) {
    const abs = isAbsolute(f) ? f : projectDir ? join(projectDir, f) : f;
    checkHostPath(policy, abs, 'compose file');
  }
  if (projectDir !== undefined) checkHostPath(policy, projectDir, 'compose projectDir');
}

/** @internal The spec with `limits` replaced (JSON copy). */
export function withLimits(spec: JsonValue, limits: Record<string, number> | undefined): JsonValue {
  if (!limits || !Object.keys(limits).length || spec === null || typeof spec !== 'object' || Array.isArray(spec)) return spec;
  return { ...spec, limits };
}
