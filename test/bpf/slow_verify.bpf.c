// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Slow to verify on purpose (loader timeout tests): a bounded loop of 120,000 iterations
// that the verifier walks one iteration at a time (~0.3 s here).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

__u64 sink;

SEC("tracepoint/syscalls/sys_enter_getpid")
int slow_verify(void *ctx) {
  __u64 sum = 0;
  for (__u32 i = 0; i < 120000; i++) {
    sum += i;
    asm volatile("" : "+r"(sum));  // keeps clang from folding the loop
  }
  sink = sum;
  return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
