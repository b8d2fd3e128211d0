// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Smallest bundled program: counts getpid() calls per tgid. Used by the demo and the loader tests.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u32);
  __type(value, __u64);
} counts SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpid")
int count_getpid(void *ctx) {
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  __u64 one = 1, *v = bpf_map_lookup_elem(&counts, &tgid);
  if (v)
    __sync_fetch_and_add(v, 1);
  else
    bpf_map_update_elem(&counts, &tgid, &one, BPF_NOEXIST);
  return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
