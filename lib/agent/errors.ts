/**
 * Errors of the agent. Each carries the HTTP status it maps to; the API answers every error
 * as `{ error: { code, message, issues?, rule? } }`.
 * @module
 */
import { SmoothtaskError, type SmoothtaskErrorOptions } from '../errors/index.js';

/** Options of {@link AgentError}. */
export interface AgentErrorOptions extends SmoothtaskErrorOptions {
  /** HTTP status the API answers with (default 500). */
  status?: number;
  /** Problems found, for validation errors (zod issues as `{ path, message, code }`). */
  issues?: unknown[];
  /** Extra response headers (e.g. `Retry-After`). */
  headers?: Record<string, string>;
}

/** Base class of the agent's errors: a stable code, a message and the HTTP status it maps to. */
export class AgentError extends SmoothtaskError {
  /** HTTP status of the API answer. */
  readonly status: number;
  /** Problems found, when the request failed validation. */
  readonly issues?: unknown[];
  /** Extra response headers. */
  readonly headers: Record<string, string>;
  /** Creates an agent error with a code, a message and its HTTP status. */
  constructor(code: string, message: string, options: AgentErrorOptions = {}) {
    super(code, message, options);
    this.status = options.status ?? 500;
    if (options.issues) this.issues = options.issues;
    this.headers = options.headers ?? {};
  }
}

/** A remote caller's task spec broke the agent's spec policy (HTTP 403); `rule` names the rule that refused it. */
export class PolicyViolationError extends AgentError {
  /** The rule that refused the spec, e.g. `docker.mountRoots`. */
  readonly rule: string;
  /** Creates a policy refusal for `rule`. */
  constructor(rule: string, message: string) {
    super('ERR_POLICY', message, { status: 403 });
    this.rule = rule;
  }
}

/** The request carried no valid credentials (HTTP 401) or lacks a scope (HTTP 403, `ERR_FORBIDDEN`). */
export class AuthError extends AgentError {
  /** Creates an authentication (`401`) or authorisation (`403`) error. */
  constructor(status: 401 | 403, message: string) {
    super(status === 401 ? 'ERR_UNAUTHORIZED' : 'ERR_FORBIDDEN', message, { status });
  }
}

/** The agent is closed or closing (`listen()` after `close()`, HTTP 503 while shutting down). */
export class AgentClosedError extends AgentError {
  /** Creates the error. */
  constructor(message = 'The agent is closed') {
    super('ERR_AGENT_CLOSED', message, { status: 503 });
  }
}
