/**
 * smoothtask/agent: the agent as a service. `createAgent(config)` composes the task queue,
 * the process/container/compose executors, the JSON store, the webhook dispatcher, alerts,
 * metrics and node status, and serves them over a versioned HTTP API (Fastify 5, zod
 * schemas, an OpenAPI 3.1 document at `/openapi.json`, a reference page at `/docs`) with
 * bearer-token scopes and a spec policy for remote callers.
 * @module
 */
export { createAgent, Agent } from './agent.js';
export type { ListenInfo, CloseOptions } from './agent.js';
export { AgentConfigSchema, TokenEntrySchema, SCOPES, hashToken, isLoopbackHost } from './config.js';
export type { AgentConfig, AgentConfigInput, Scope } from './config.js';
export { FtpConfigSchema } from './config.js';
export type { FtpConfig, FtpConfigInput } from './config.js';
// Task workspaces as files (what the HTTP file routes and the FTP door both go through).
export { WorkspaceFiles, INPUTS_DIR, QuotaExceededError, ChecksumMismatchError } from './files.js';
export type { FileLimits, FileEntry, WrittenFile, WorkspaceZip, WorkspaceReadFile } from './files.js';
export type { DirEntry, EntryKind, FolderZip, OpenedFile } from '../workspace/index.js';
// Task workspaces over FTP(S) (ftp-srv, wrapped): started by listen() when ftp.enabled, or alone.
export { startFtpServer, silentFtpLogger, FTP_BLACKLIST } from './ftp.js';
export type { FtpDeps, FtpLogger, FtpServerHandle } from './ftp.js';
// Loading config files, environment overrides, per-environment files, redaction (the launcher's side).
export * from './config-file.js';
export { AgentError, PolicyViolationError, AuthError, AgentClosedError } from './errors.js';
// What createAgent and the config loaders throw for an invalid configuration.
export { ConfigError, SmoothtaskError } from '../errors/index.js';
export type { AgentErrorOptions } from './errors.js';
export { createAuthenticator, hasScope } from './auth.js';
export { checkPolicy } from './policy.js';
export type { PolicyRequest, PolicyDecision } from './policy.js';
export type { Principal } from './auth.js';
export { NodeServices } from './node.js';
export type { ProgramCacheInfo, MetricsSnapshot } from './node.js';
export { ErrorBodySchema, IssueSchema, errorAnswer } from './http/errors.js';
export type { ErrorBody } from './http/errors.js';
export type { RegisterOptions } from './http/routes.js';
