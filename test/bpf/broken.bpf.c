// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Rejected by the verifier on purpose: a map value is used without the NULL check.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16);
  __type(key, __u32);
  __type(value, __u64);
} values SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpid")
int broken_deref(void *ctx) {
  __u32 key = 1;
  __u64 *v = bpf_map_lookup_elem(&values, &key);
  *v += 1;  // no NULL check: "invalid mem access 'map_value_or_null'"
  return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
