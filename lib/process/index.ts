/**
 * smoothtask/process: the `process` task executor (process groups, TERM -> grace -> KILL),
 * a supervisor for long-running programs (health checks, restart with backoff and a budget,
 * graceful stop) and a resource lease manager (GPU ids, ports, memory).
 * @module
 */
export { ProcessExecutor, ProcessSpecSchema } from './executor.js';
export type { ProcessSpec } from './executor.js';
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
export { killGroup, groupAlive, stopGroup, childClosed } from './group.js';
export type { ChildEnd } from './group.js';
