// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// GPU activity per process, without a GPU driver's help:
//  - uprobes/uretprobes on the CUDA driver API in libcuda.so (attached by lib/metrics/gpu per
//    symbol, to one pid or system-wide): kernel launches, allocations (pointer -> size kept
//    until freed, so bytes outstanding are exact), host<->device copies, synchronisation time;
//  - dma_fence tracepoints (open DRM drivers: amdgpu, i915, nouveau, msm, ...): jobs submitted
//    per process and emit -> signalled latency.
#include "vmlinux.h"
#include "common.bpf.h"
#include "gpu.h"

// 0 = every process; else only this tgid (load-time, so the verifier prunes the check).
const volatile __u32 targ_tgid = 0;

// Processes that used the GPU (a CUDA call or a DRM fence). Each holds a GPU context, so a node
// has tens of them, not thousands: 1024 (preallocated, 248 bytes an entry); LRU, so the oldest
// go first if it ever fills.
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 1024);
  __type(key, __u32);
  __type(value, struct gpu_proc_stats);
} gpu_procs SEC(".maps");

// Live allocations; LRU so a process that exits without freeing cannot fill it for good. LRU
// maps are preallocated (88 bytes an entry): 16384 live allocations by default (1.4 MiB); a free
// of an allocation evicted meanwhile counts as free_untracked. `mapSizes: { gpu_allocs }` of the
// gpu reader raises it.
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384);
  __type(key, struct gpu_alloc_key);
  __type(value, __u64);
} gpu_allocs SEC(".maps");

// Arguments saved at function entry, read at return: key pid_tgid (one call in flight per thread).
struct gpu_call {
  __u64 ts;
  __u64 arg;   // cuMemAlloc: address of the caller's CUdeviceptr
  __u64 size;  // cuMemAlloc: bytesize
};
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 8192);
  __uint(map_flags, BPF_F_NO_PREALLOC);  // calls in flight only
  __type(key, __u64);
  __type(value, struct gpu_call);
} gpu_calls SEC(".maps");

struct fence_key {
  __u32 context;
  __u32 seqno;
};
struct fence_val {
  __u64 ts;
  __u32 tgid;
  __u32 pad;
};
// Fences emitted and not yet signalled (jobs in flight on the GPU engines).
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 4096);
  __type(key, struct fence_key);
  __type(value, struct fence_val);
} gpu_fences SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct gpu_prog_stats);
} gpu_prog SEC(".maps");

// Bumped after every write to gpu_procs (maps.bpf.h): the reader reads gpu_procs again only when
// it moved, so a node where no process touches the GPU never walks its 1,024 buckets.
ST_DECLARE_WRITES();

// Load-time pid first (pruned by the verifier when 0), then the shared run-time filter
// (filter.bpf.h: tgids, cgroups, comm prefix). Only called in the calling process's context.
static __always_inline bool want(__u32 tgid) {
  if (targ_tgid && tgid != targ_tgid) return false;
  return st_filter_pass();
}

static __always_inline struct gpu_prog_stats *prog_stats(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&gpu_prog, &zero);
}

static __always_inline struct gpu_proc_stats *proc(__u32 tgid) {
  struct gpu_proc_stats *s = bpf_map_lookup_elem(&gpu_procs, &tgid);
  if (s) return s;
  struct gpu_proc_stats zero = {};
  bpf_get_current_comm(zero.comm, sizeof(zero.comm));
  // EEXIST when another CPU inserted it first: fine, the lookup below finds theirs.
  bpf_map_update_elem(&gpu_procs, &tgid, &zero, BPF_NOEXIST);
  s = bpf_map_lookup_elem(&gpu_procs, &tgid);
  if (!s) {
    struct gpu_prog_stats *ps = prog_stats();
    if (ps) __sync_fetch_and_add(&ps->proc_map_full, 1);
  }
  return s;
}

static __always_inline int save_call(__u64 arg, __u64 size) {
  __u64 id = bpf_get_current_pid_tgid();
  if (!want(id >> 32)) return 0;
  struct gpu_call c = {.ts = bpf_ktime_get_ns(), .arg = arg, .size = size};
  bpf_map_update_elem(&gpu_calls, &id, &c, BPF_ANY);
  return 0;
}

// ---------------------------------------------------------------- launches

SEC("uprobe")
int BPF_KPROBE(cu_launch_kernel) {
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  if (!want(tgid)) return 0;
  struct gpu_proc_stats *s = proc(tgid);
  if (s) __sync_fetch_and_add(&s->launches, 1);
  st_count_write();
  return 0;
}

// ---------------------------------------------------------------- allocations

// cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize) and cuMemAllocManaged(dptr, bytesize, flags)
SEC("uprobe")
int BPF_KPROBE(cu_mem_alloc, void *dptr, __u64 bytesize) { return save_call((__u64)dptr, bytesize); }

SEC("uretprobe")
int BPF_KRETPROBE(cu_mem_alloc_ret, int rc) {
  __u64 id = bpf_get_current_pid_tgid();
  __u32 tgid = id >> 32;
  struct gpu_call *c = bpf_map_lookup_elem(&gpu_calls, &id);
  if (!c) return 0;
  __u64 arg = c->arg, size = c->size;
  bpf_map_delete_elem(&gpu_calls, &id);
  struct gpu_proc_stats *s = proc(tgid);
  if (!s) return 0;
  if (rc != 0) {
    __sync_fetch_and_add(&s->alloc_failed, 1);
    st_count_write();
    return 0;
  }
  __u64 ptr = 0;
  if (bpf_probe_read_user(&ptr, sizeof(ptr), (void *)arg) || !ptr) {
    __sync_fetch_and_add(&s->alloc_failed, 1);
    st_count_write();
    return 0;
  }
  __sync_fetch_and_add(&s->alloc_count, 1);
  __sync_fetch_and_add(&s->alloc_bytes, size);
  st_count_write();
  struct gpu_alloc_key k = {.tgid = tgid, .ptr = ptr};
  if (bpf_map_update_elem(&gpu_allocs, &k, &size, BPF_ANY)) {
    struct gpu_prog_stats *ps = prog_stats();
    if (ps) __sync_fetch_and_add(&ps->alloc_map_full, 1);
  }
  return 0;
}

// cuMemFree_v2(CUdeviceptr dptr): counted at entry; a failing free is one of an unknown pointer.
SEC("uprobe")
int BPF_KPROBE(cu_mem_free, __u64 dptr) {
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  if (!want(tgid) || !dptr) return 0;
  struct gpu_alloc_key k = {.tgid = tgid, .ptr = dptr};
  __u64 *size = bpf_map_lookup_elem(&gpu_allocs, &k);
  struct gpu_proc_stats *s = proc(tgid);
  if (!s) return 0;
  if (!size) {
    __sync_fetch_and_add(&s->free_untracked, 1);
    st_count_write();
    return 0;
  }
  __sync_fetch_and_add(&s->free_count, 1);
  __sync_fetch_and_add(&s->free_bytes, *size);
  st_count_write();
  bpf_map_delete_elem(&gpu_allocs, &k);
  return 0;
}

// ---------------------------------------------------------------- copies (ByteCount is arg 3)

static __always_inline int copy(__u64 bytes, int dir) {
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  if (!want(tgid)) return 0;
  struct gpu_proc_stats *s = proc(tgid);
  if (!s) return 0;
  if (dir == 0) {
    __sync_fetch_and_add(&s->htod_count, 1);
    __sync_fetch_and_add(&s->htod_bytes, bytes);
  } else if (dir == 1) {
    __sync_fetch_and_add(&s->dtoh_count, 1);
    __sync_fetch_and_add(&s->dtoh_bytes, bytes);
  } else {
    __sync_fetch_and_add(&s->dtod_count, 1);
    __sync_fetch_and_add(&s->dtod_bytes, bytes);
  }
  st_count_write();
  return 0;
}

// cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n) and ...Async_v2(..., CUstream)
SEC("uprobe")
int BPF_KPROBE(cu_memcpy_htod, __u64 dst, void *src, __u64 n) { return copy(n, 0); }

// cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) and ...Async_v2(..., CUstream)
SEC("uprobe")
int BPF_KPROBE(cu_memcpy_dtoh, void *dst, __u64 src, __u64 n) { return copy(n, 1); }

// cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n)
SEC("uprobe")
int BPF_KPROBE(cu_memcpy_dtod, __u64 dst, __u64 src, __u64 n) { return copy(n, 2); }

// ---------------------------------------------------------------- synchronisation

// cuCtxSynchronize(void), cuStreamSynchronize(CUstream)
SEC("uprobe")
int BPF_KPROBE(cu_sync) { return save_call(0, 0); }

SEC("uretprobe")
int BPF_KRETPROBE(cu_sync_ret, int rc) {
  __u64 id = bpf_get_current_pid_tgid();
  struct gpu_call *c = bpf_map_lookup_elem(&gpu_calls, &id);
  if (!c) return 0;
  __u64 dt = bpf_ktime_get_ns() - c->ts;
  bpf_map_delete_elem(&gpu_calls, &id);
  struct gpu_proc_stats *s = proc(id >> 32);
  if (!s) return 0;
  __sync_fetch_and_add(&s->sync_count, 1);
  __sync_fetch_and_add(&s->sync_ns, dt);
  if (dt > s->sync_max_ns) s->sync_max_ns = dt;  // racy max: good enough for a gauge
  st_count_write();
  return 0;
}

// ---------------------------------------------------------------- dma-fence (open drivers)

// Layout of the dma_fence tracepoints (include/trace/events/dma_fence.h), stable since 4.x.
struct dma_fence_tp {
  __u64 common;
  __u32 driver_loc;
  __u32 timeline_loc;
  __u32 context;
  __u32 seqno;
};

SEC("tracepoint/dma_fence/dma_fence_emit")
int gpu_fence_emit(struct dma_fence_tp *ctx) {
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  if (!tgid || !want(tgid)) return 0;
  struct fence_key k = {.context = ctx->context, .seqno = ctx->seqno};
  struct fence_val v = {.ts = bpf_ktime_get_ns(), .tgid = tgid};
  struct gpu_proc_stats *s = proc(tgid);
  if (!s) return 0;
  __sync_fetch_and_add(&s->fence_emitted, 1);
  st_count_write();
  if (bpf_map_update_elem(&gpu_fences, &k, &v, BPF_ANY)) {
    struct gpu_prog_stats *ps = prog_stats();
    if (ps) __sync_fetch_and_add(&ps->fence_map_full, 1);
  }
  return 0;
}

SEC("tracepoint/dma_fence/dma_fence_signaled")
int gpu_fence_signaled(struct dma_fence_tp *ctx) {
  struct fence_key k = {.context = ctx->context, .seqno = ctx->seqno};
  struct fence_val *v = bpf_map_lookup_elem(&gpu_fences, &k);
  if (!v) return 0;
  __u64 dt = bpf_ktime_get_ns() - v->ts;
  __u32 tgid = v->tgid;
  bpf_map_delete_elem(&gpu_fences, &k);
  // Signalled from IRQ or another task: update the submitter's entry, never create one.
  struct gpu_proc_stats *s = bpf_map_lookup_elem(&gpu_procs, &tgid);
  if (!s) return 0;
  __sync_fetch_and_add(&s->fence_signaled, 1);
  __sync_fetch_and_add(&s->fence_latency_ns, dt);
  if (dt > s->fence_latency_max_ns) s->fence_latency_max_ns = dt;
  st_count_write();
  return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
