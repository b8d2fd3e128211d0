// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Structs shared by bpf/gpu.bpf.c and user space (lib/metrics/gpu). Fixed-size fields only.
#ifndef SMOOTHTASK_GPU_H
#define SMOOTHTASK_GPU_H

#define GPU_COMM_LEN 16

// Per-process counters of the CUDA driver API (uprobes) and of dma-fences (tracepoints),
// key: tgid. Bytes are what the caller asked for (cuMemAlloc bytesize, cuMemcpy ByteCount).
struct gpu_proc_stats {
  __u64 launches;        // cuLaunchKernel calls
  __u64 alloc_count;     // successful cuMemAlloc_v2 / cuMemAllocManaged
  __u64 alloc_bytes;
  __u64 alloc_failed;    // allocation calls that returned an error
  __u64 free_count;      // cuMemFree_v2 of a pointer seen allocated (since attach)
  __u64 free_bytes;
  __u64 free_untracked;  // cuMemFree_v2 of a pointer allocated before attach (size unknown)
  __u64 htod_count;      // cuMemcpyHtoD_v2 + cuMemcpyHtoDAsync_v2
  __u64 htod_bytes;
  __u64 dtoh_count;      // cuMemcpyDtoH_v2 + cuMemcpyDtoHAsync_v2
  __u64 dtoh_bytes;
  __u64 dtod_count;      // cuMemcpyDtoD_v2
  __u64 dtod_bytes;
  __u64 sync_count;      // cuCtxSynchronize + cuStreamSynchronize returns
  __u64 sync_ns;         // time spent inside them
  __u64 sync_max_ns;
  __u64 fence_emitted;   // dma_fence_emit in this process's context (job submitted)
  __u64 fence_signaled;  // of those, fences seen signalled
  __u64 fence_latency_ns;  // sum of emit -> signalled
  __u64 fence_latency_max_ns;
  char comm[GPU_COMM_LEN];
};

// One live allocation: (tgid, device pointer) -> size.
struct gpu_alloc_key {
  __u32 tgid;
  __u32 pad;
  __u64 ptr;
};

// Counters of the program itself, one slot (array index 0).
struct gpu_prog_stats {
  __u64 alloc_map_full;   // allocation not tracked: map update failed
  __u64 proc_map_full;    // process not tracked: map update failed
  __u64 fence_map_full;
};

#endif
