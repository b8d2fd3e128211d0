/**
 * Registers the `gpu` family with the metrics registry.
 * @internal
 */
import { registerFamily } from '../family.js';
import { openGpuReader, openNvmlGpuReader } from './reader.js';


registerFamily('gpu', (ctx) => (ctx.backend === 'nvml' ? openNvmlGpuReader({}, ctx.filter) : openGpuReader({}, { filter: ctx.filter, ...(ctx.object ? { object: ctx.object } : {}) })), {
  backends: ['ebpf', 'nvml'],
  bpfObject: 'gpu.bpf.o',
  description: 'CUDA driver API per process (uprobes on libcuda), dma-fence jobs, NVML devices',
});
