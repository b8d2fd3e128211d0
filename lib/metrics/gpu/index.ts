/**
 * The `gpu` family: CUDA driver API activity per process (eBPF uprobes on libcuda.so),
 * dma-fence jobs per process (open DRM drivers), and device metrics from NVML.
 * @module
 */
import './register.js';

export * from './nvml.js';
export * from './libcuda.js';
export * from './schema.js';
export * from './reader.js';
export * from './values.js';
