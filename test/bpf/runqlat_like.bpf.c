// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// A third-party-style object: run-queue latency as a log2 histogram, with tp_btf programs,
// raw_tp alternates (for kernels without tp_btf) and a kprobe variant that hosts without
// kprobes leave out through `programs`. Load-time filters are `const volatile`.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "runqlat_like.h"

const volatile pid_t targ_tgid = 0;
const volatile bool targ_ms = false;

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 10240);
  __type(key, u32);
  __type(value, u64);
} start SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, u32);
  __type(value, struct rql_hist);
} hist SEC(".maps");

static __always_inline u32 log2_u64(u64 v) {
  u32 r = 0;
  for (int i = 0; i < 64 && v > 1; i++) {
    v >>= 1;
    r++;
  }
  return r;
}

static __always_inline int trace_enqueue(u32 tgid, u32 pid) {
  if (!pid || (targ_tgid && targ_tgid != tgid))
    return 0;
  u64 ts = bpf_ktime_get_ns();
  bpf_map_update_elem(&start, &pid, &ts, BPF_ANY);
  return 0;
}

static __always_inline int handle_switch(struct task_struct *prev, struct task_struct *next) {
  if (BPF_CORE_READ(prev, __state) == 0 /* TASK_RUNNING: preempted, queued again */)
    trace_enqueue(BPF_CORE_READ(prev, tgid), BPF_CORE_READ(prev, pid));
  u32 pid = BPF_CORE_READ(next, pid);
  u64 *tsp = bpf_map_lookup_elem(&start, &pid);
  if (!tsp)
    return 0;
  s64 delta = bpf_ktime_get_ns() - *tsp;
  bpf_map_delete_elem(&start, &pid);
  if (delta < 0)
    return 0;
  delta /= targ_ms ? 1000000U : 1000U;
  u32 zero = 0;
  struct rql_hist *h = bpf_map_lookup_elem(&hist, &zero);
  if (!h)
    return 0;
  u32 slot = log2_u64(delta);
  if (slot >= RQL_MAX_SLOTS)
    slot = RQL_MAX_SLOTS - 1;
  __sync_fetch_and_add(&h->slots[slot], 1);
  __sync_fetch_and_add(&h->total, 1);
  return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(rql_wakeup, struct task_struct *p) {
  return trace_enqueue(p->tgid, p->pid);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(rql_wakeup_new, struct task_struct *p) {
  return trace_enqueue(p->tgid, p->pid);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(rql_switch, bool preempt, struct task_struct *prev, struct task_struct *next) {
  return handle_switch(prev, next);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(rql_switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next) {
  return handle_switch(prev, next);
}

SEC("kprobe/finish_task_switch")
int BPF_KPROBE(rql_finish_switch, struct task_struct *prev) {
  return handle_switch(prev, (struct task_struct *)bpf_get_current_task());
}

char LICENSE[] SEC("license") = "GPL";
