/**
 * `smoothtask/ebpf`: load CO-RE eBPF objects off the main thread (timeouts, cache, parallel
 * loading, bpffs pins), attach programs, read maps and consume ring buffers with typed values.
 * @module
 */
export * from './errors.js';
export * from './types.js';
export * from './codec.js';
export * from './map.js';
export * from './load.js';
export * from './object.js';
export * from './cache.js';
export * from './pin.js';
export * from './attach.js';
export * from './link.js';
export * from './ringbuf.js';
export * from './perfbuf.js';
export * from './probe.js';
export * from './btf.js';
export * as bpfTypes from './generated/index.js';
