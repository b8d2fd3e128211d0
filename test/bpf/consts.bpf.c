// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Load-time constants (`const volatile`, set through loadObject's `constants`): counts
// getpid() calls of one tgid only, and exposes the constants' values for the test.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 targ_tgid = 0;
const volatile __u64 targ_scale = 1;
const volatile bool targ_enabled = false;

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u64);
} hits SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpid")
int count_target(void *ctx) {
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  __u32 k = 0;
  if (!targ_enabled || tgid != targ_tgid)
    return 0;
  __u64 *v = bpf_map_lookup_elem(&hits, &k);
  if (v)
    __sync_fetch_and_add(v, targ_scale);
  return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
