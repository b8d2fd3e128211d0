// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Programs of several attach types; hosts without fentry or kprobes load a subset
// through `programs`.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

__u64 tp_hits, raw_hits, fentry_hits, kprobe_hits;

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx) {
  __sync_fetch_and_add(&tp_hits, 1);
  return 0;
}

SEC("raw_tp/sys_enter")
int on_raw_sys_enter(void *ctx) {
  __sync_fetch_and_add(&raw_hits, 1);
  return 0;
}

SEC("fentry/do_nanosleep")
int BPF_PROG(on_nanosleep_fentry) {
  __sync_fetch_and_add(&fentry_hits, 1);
  return 0;
}

SEC("kprobe/do_nanosleep")
int BPF_KPROBE(on_nanosleep_kprobe) {
  __sync_fetch_and_add(&kprobe_hits, 1);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
