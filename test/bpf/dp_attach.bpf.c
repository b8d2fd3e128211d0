// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Data-path attach tests: one program per attach type, each counting what the test causes
// (getppid() calls of the test process, calls of a function in a test binary, CPU samples of a
// busy child, sockets created in a test cgroup) in `hits`.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define NR_getppid 110 /* x86_64 */

enum { HIT_TP, HIT_RAW_TP, HIT_TP_BTF, HIT_UPROBE, HIT_UPROBE_ARGS, HIT_URETPROBE, HIT_PERF, HIT_CGROUP, HIT_MAX };

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, HIT_MAX);
  __type(key, __u32);
  __type(value, __u64);
} hits SEC(".maps");

// Set by the test: [0] its own tgid (syscall programs), [1] the tgid perf_event samples count.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, __u32);
} dp_config SEC(".maps");

static __always_inline void add(__u32 k, __u64 n) {
  __u64 *v = bpf_map_lookup_elem(&hits, &k);
  if (v) __sync_fetch_and_add(v, n);
}

static __always_inline bool is_tgid(__u32 k) {
  __u32 *t = bpf_map_lookup_elem(&dp_config, &k);
  return t && *t && (bpf_get_current_pid_tgid() >> 32) == *t;
}

static __always_inline bool mine(void) { return is_tgid(0); }

SEC("tracepoint/syscalls/sys_enter_getppid")
int dp_tp(void *ctx) {
  if (mine()) add(HIT_TP, 1);
  return 0;
}

SEC("raw_tp/sys_enter")
int dp_raw_tp(struct bpf_raw_tracepoint_args *ctx) {
  if (mine() && ctx->args[1] == NR_getppid) add(HIT_RAW_TP, 1);
  return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(dp_tp_btf, struct pt_regs *regs, long id) {
  if (mine() && id == NR_getppid) add(HIT_TP_BTF, 1);
  return 0;
}

SEC("uprobe")
int BPF_KPROBE(dp_uprobe, int x) {
  add(HIT_UPROBE, 1);
  add(HIT_UPROBE_ARGS, x);
  return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(dp_uretprobe, int ret) {
  add(HIT_URETPROBE, ret);
  return 0;
}

SEC("perf_event")
int dp_perf(struct bpf_perf_event_data *ctx) {
  if (is_tgid(1)) add(HIT_PERF, 1);
  return 0;
}

SEC("iter/task")
int dp_iter_task(struct bpf_iter__task *ctx) {
  struct seq_file *seq = ctx->meta->seq;
  struct task_struct *task = ctx->task;
  if (!task) return 0;
  if (task->pid != task->tgid) return 0; /* one line per process */
  BPF_SEQ_PRINTF(seq, "%d %s\n", task->tgid, task->comm);
  return 0;
}

SEC("cgroup/sock_create")
int dp_sock_create(struct bpf_sock *ctx) {
  add(HIT_CGROUP, 1);
  return 1; /* allow */
}

SEC("kprobe/do_nanosleep")
int BPF_KPROBE(dp_kprobe) {
  return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
