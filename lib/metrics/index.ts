/**
 * `smoothtask/metrics`: typed metric readers per family, eBPF backend by default and procfs
 * where BPF is not permitted.
 * @module
 */
export * from './family.js';
