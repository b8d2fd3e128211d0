/**
 * smoothtask/docker: container and compose tasks on the task core — typed specs, logs
 * persisted and streamed live, outputs zipped, every resource labeled and removed whatever the
 * ending, a reaper for crashed runs, host-port collision checks, and per-container cgroup
 * ids and usage.
 * @module
 */
export { connectDocker, DockerEngineOptionsSchema } from './engine.js';
export type { DockerEngine, DockerEngineOptions } from './engine.js';
export {
  DockerUnavailableError,
  DockerError,
  DockerBuildError,
  ComposeError,
  ComposeUnavailableError,
  PortCollisionError,
  OutputTooLargeError,
  DockerOwnerIdError,
  DockerCleanupError,
} from './errors.js';
export { LABELS, taskLabels, ownedBy, instanceId, instanceAlive, newOwnerId, isValidOwnerId, persistentOwnerId, OWNER_ID_FILE } from './labels.js';
export {
  ContainerTaskSpecSchema,
  ComposeTaskSpecSchema,
  PortSpecSchema,
  PortConflictPolicySchema,
  LimitsSchema,
  BuildSpecSchema,
  OutputsSchema,
} from './spec.js';
export type { ContainerTaskSpec, ContainerTaskConfig, ComposeTaskSpec, ComposeTaskConfig, PortSpec } from './spec.js';
export { createDemuxer } from './demux.js';
export type { OutputStream, ChunkSink } from './demux.js';
export { TaskLogWriter, readTaskLog } from './logs.js';
export type { LogChunk, LogListener } from './logs.js';
export { zipDirectory } from './artifacts.js';
export type { ArchiveInfo, ZipOptions } from './artifacts.js';
export { UnsafePathError, WorkspaceError, type UnsafePathReason } from '../workspace/errors.js';
export { buildTaskImage } from './build.js';
export type { BuildRequest, BuiltImage } from './build.js';
export { listeningSockets, socketOwner, hostPortHolder, InMemoryPortLeases, portLeasesFrom, freeTcpPort, resolvePorts } from './ports.js';
export type { ListeningSocket, PortLeaseBook, ResolvedPort, SocketOwner, LeaseManagerLike } from './ports.js';
export { cgroupIdOfPid, cgroupUsageOfPid, processCgroups } from './cgroup.js';
export type { CgroupUsage, ProcessCgroups } from './cgroup.js';
export { runContainer, taskPaths, containerChannel } from './container.js';
export type { TaskPaths, DockerRunContext, RunningContainer, RunOutcome, ContainerRunResult } from './container.js';
export { runCompose, composeProjectName, composeChannel } from './compose.js';
export type { ComposeRunResult, ServiceResult } from './compose.js';
export { detectCompose } from './compose-cli.js';
export type { ComposeCli } from './compose-cli.js';
export { reapLeftovers, managedResources, ReapOptionsSchema, reaperChannel } from './reaper.js';
export type { ReapOptions, ReapReport, ManagedResources } from './reaper.js';
export { createDockerExecutors, registerDockerExecutors, dockerCleanupTrigger, dockerTaskLayout } from './executors.js';
export type { DockerExecutorOptions, DockerExecutors, ExecutorRegistry, TaskUsage, TaskMetricsFilter } from './executors.js';
export { containerUsage } from './usage.js';
export type { ContainerUsage } from './usage.js';
