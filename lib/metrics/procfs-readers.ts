/**
 * The procfs backend of the cpu, process, network and disk families: same snapshot types as
 * the eBPF backend, from /proc and /sys, for hosts where BPF is not permitted. Fields procfs
 * cannot know are null (see the schemas). One folder per family.
 * @module
 */
export { ProcfsCpuReader } from './cpu/procfs.js';
export { ProcfsProcessReader } from './process/procfs.js';
export { ProcfsNetworkReader } from './network/procfs.js';
export { ProcfsDiskReader } from './disk/procfs.js';
export { perProcess, wholeDisk } from './readers-shared.js';
