/**
 * `smoothtask/status`: one call returns what a load balancer needs about this node (tasks,
 * memory, disks, CPU, GPUs, health), with a zod schema and a ready `node:http` handler.
 * @module
 */
export {
  HEALTH_LEVELS,
  HealthLevelSchema,
  NodeStatusSchema,
  NodeStatusOptionsSchema,
  createNodeStatus,
  getNodeStatus,
  parseMeminfo,
  gpuInfoFromNvml,
} from './status.js';
export type {
  HealthLevel,
  NodeStatus,
  TaskLike,
  TaskListProvider,
  GpuInfo,
  HealthCheckResult,
  HealthCheck,
  NodeStatusOptions,
  NodeStatusProvider,
  NvmlSampleLike,
  NvmlDeviceLike,
  StatusTriple,
  RunningTask,
  TaskSummary,
  MemoryStatus,
  DiskStatus,
  CpuStatus,
  HealthStatus,
  TaskTimings,
  RatioThresholds,
  LoadSource,
} from './status.js';
export { createStatusHandler, StatusHandlerOptionsSchema } from './http.js';
export type { StatusHandlerOptions, StatusHandler } from './http.js';
export { alertEngineCheck, loadSamplerCheck } from './checks.js';
export type { AlertEngineLike, LoadSamplerLike } from './checks.js';
