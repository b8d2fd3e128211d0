/**
 * `smoothtask/fleet`: many agents behind one queue, on BullMQ and Redis.
 *
 * Producers ({@link FleetProducer}) add task specs as BullMQ jobs, one queue per capability
 * class; every agent runs a {@link FleetWorker} that takes the jobs its node can place and runs
 * them through its own queue and executors. Delivery is at-least-once (a job whose node dies is
 * found stalled by BullMQ and runs again elsewhere); each task's record in Redis reaches exactly
 * one final state. See docs/fleet.md.
 * @module
 */
export { FleetProducer, FleetProducerOptionsSchema, bullPriority, type FleetProducerOptions, type FleetSubmitOptions } from './producer.js';
export { FleetWorker, FleetWorkerOptionsSchema, type FleetAdmission, type FleetNode, type FleetWorkerOptions } from './worker.js';
export { RedisConfigSchema, redisOptions, bullConnection, waitReady, type RedisConfig, type RedisConfigInput } from './redis.js';
export {
  ClassNameSchema,
  FleetJobDataSchema,
  FleetTaskSchema,
  PlacementSchema,
  PrefixSchema,
  TraceCarrierSchema,
  fleetKeys,
  type FleetInfo,
  type FleetJobData,
  type FleetKeys,
  type Placement,
  type PlacementInput,
} from './protocol.js';
export { fleetTracer, injectTrace, extractTrace } from './trace.js';
