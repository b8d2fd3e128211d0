// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// A map sized by user space (no max_entries: 0 in the object), as many third-party objects
// ship them: loading it without `mapSizes` fails at map creation, and the error must say so.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, __u32);
  __type(value, __u64);
} per_pid SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpid")
int count_per_pid(void *ctx) {
  __u32 pid = bpf_get_current_pid_tgid() >> 32;
  __u64 one = 1, *v = bpf_map_lookup_elem(&per_pid, &pid);
  if (v) __sync_fetch_and_add(v, 1);
  else bpf_map_update_elem(&per_pid, &pid, &one, BPF_ANY);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
