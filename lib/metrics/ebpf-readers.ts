/**
 * The eBPF backend of the built-in families (cpu, process, network, disk, syscalls) over the
 * bundled objects sched, proc, net, blockio and syscalls: one folder per family.
 * @module
 */
export { EbpfCpuReader } from './cpu/ebpf.js';
export { EbpfProcessReader } from './process/ebpf.js';
export { EbpfNetworkReader } from './network/ebpf.js';
export { EbpfDiskReader } from './disk/ebpf.js';
export { EbpfSyscallsReader } from './syscalls/ebpf.js';
