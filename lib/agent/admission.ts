/**
 * What the agent checks before a task from outside reaches its queue, whoever sends it (the
 * HTTP API, or a fleet job from Redis): the kind is enabled here, the spec has its kind's shape
 * (strict for process specs), and the agent's policy allows it (limits and time cap filled in).
 * @module
 */
import type { z } from 'zod';
import { validate } from '../errors/validate.js';
import { ComposeTaskSpecSchema, ContainerTaskSpecSchema } from '../docker/spec.js';
import { ProcessSpecSchema } from '../process/executor.js';
import type { TaskQueue } from '../task/queue.js';
import type { JsonValue } from '../util/json.js';
import type { AgentConfig } from './config.js';
import { AgentError } from './errors.js';
import { checkPolicy, withLimits } from './policy.js';

const SPEC_SCHEMAS: Record<string, z.ZodType> = {
  // Strict for remote callers: an unknown field is an error, not silently dropped.
  process: ProcessSpecSchema.strict(),
  container: ContainerTaskSpecSchema,
  compose: ComposeTaskSpecSchema,
};

/** What passed: the spec to submit (policy limits written in) and the time limit. */
export interface Admitted {
  /** The spec as sent, with the policy's limits filled in. */
  spec: JsonValue;
  /** The task's time limit (the policy's cap applied, the queue's default when none was asked). */
  timeoutMs: number;
}

/**
 * Checks a task from outside: `ERR_UNKNOWN_TASK_KIND` (400) when its kind is not enabled,
 * `ConfigError` (400) when the spec has the wrong shape, `PolicyViolationError` (403) when the
 * policy refuses it.
 * @internal
 */
export function admitTask(cfg: AgentConfig, queue: TaskQueue, b: { kind: string; spec?: unknown; timeoutMs?: number | undefined }): Admitted {
  if (!queue.hasExecutor(b.kind)) {
    throw new AgentError('ERR_UNKNOWN_TASK_KIND', `Task kind '${b.kind}' is not enabled on this agent`, {
      status: 400,
      issues: [{ path: 'body.kind', message: `not enabled (enabled: ${['process', 'container', 'compose'].filter((k) => queue.hasExecutor(k)).join(', ') || 'none'})` }],
    });
  }
  const specSchema = SPEC_SCHEMAS[b.kind];
  const parsed = specSchema ? (validate(specSchema, b.spec ?? null, `'${b.kind}' task spec`) as Record<string, unknown>) : {};
  const decision = checkPolicy(cfg.policy, cfg.queue.defaultTimeoutMs, { kind: b.kind, spec: parsed, timeoutMs: b.timeoutMs });
  return { spec: withLimits((b.spec ?? null) as JsonValue, decision.limits), timeoutMs: decision.timeoutMs };
}
