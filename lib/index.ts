/**
 * smoothtask: run tasks on a Linux node and watch it through the kernel with eBPF.
 *
 * The root entry is free of the native addon. Import a subpath for each feature:
 * `smoothtask/ebpf`, `smoothtask/metrics`, `smoothtask/aggregate`, `smoothtask/notify`,
 * `smoothtask/task`, `smoothtask/store`, `smoothtask/process`, `smoothtask/docker`,
 * `smoothtask/status`, `smoothtask/webhook`.
 * @module
 */
export { SmoothtaskError, ConfigError, MissingPeerError } from './errors/index.js';
export type { SmoothtaskErrorOptions } from './errors/index.js';

/** The library version. */
export const version = '0.1.0';
