/**
 * smoothtask/process: the `process` task executor (a cgroup per task, limits, TERM -> grace -> KILL),
 * a supervisor for long-running programs (health checks, restart with backoff and a budget,
 * graceful stop) and a resource lease manager (GPU ids, ports, memory).
 * @module
 */
export { ProcessExecutor, ProcessSpecSchema, ProcessExecutorOptionsSchema } from './executor.js';
export type { ProcessSpec, ProcessExecutorOptions, ProcessTaskUsage } from './executor.js';
export { cgroupSupport, createTaskCgroup, reapStaleCgroups, TaskCgroup } from './cgroup.js';
export type { CgroupLimits, CgroupSupport, ContainmentMode } from './cgroup.js';
export { CgroupError, ProcessSpawnError, ProcessSignalError, HealthCheckTimeoutError } from './errors.js';
export {
  Supervisor,
  SupervisedProcess,
  SupervisedSpecSchema,
  HealthCheckSchema,
  SUPERVISOR_CHANNEL,
} from './supervisor.js';
export type { SupervisedSpec, HealthCheck, SupervisedState, SupervisorEvent } from './supervisor.js';
export { ResourceLeaseManager, LeaseManagerOptionsSchema, ResourceDefinitionSchema, LeaseError } from './leases.js';
export type { LeaseManagerOptions, ResourceDefinition, Availability } from './leases.js';
export { killGroup, groupAlive, stopGroup, childClosed, spawnError } from './group.js';
export type { ChildEnd } from './group.js';
