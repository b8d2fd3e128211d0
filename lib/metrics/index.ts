/**
 * `smoothtask/metrics`: typed metric readers per family, eBPF backend by default and procfs
 * where BPF is not permitted.
 * @module
 */
export * from './family.js';
export { MetricsError } from './errors.js';
export * from './schemas.js';
export * from './cgroup.js';
export * from './monitor.js';
export * from './builtin.js';
export { ReaderBase } from './reader-base.js';
export { BpfReaderBase, FilterMaps, loadBundled, bundledObjectPath, type BpfReaderOptions } from './bpf-base.js';
export { EbpfCpuReader, EbpfProcessReader, EbpfNetworkReader, EbpfDiskReader, EbpfSyscallsReader } from './ebpf-readers.js';
export { ProcfsCpuReader, ProcfsProcessReader, ProcfsNetworkReader, ProcfsDiskReader } from './procfs-readers.js';
export { syscallName, syscallNumber } from './syscall-names.js';
export * from './gpu/index.js';
export * from './thermal/index.js';
export * from './power/index.js';
export * from './energy/index.js';
