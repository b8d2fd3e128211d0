// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Perf buffer producer for the perf buffer consumer tests. dp_getppid: every getppid() of the
// target tgid (cfg[0], 0 = nobody) sends one record with BPF_F_CURRENT_CPU; seq is a global
// counter. dp_perf_produce (raw_tp, BPF_PROG_TEST_RUN, args[0] = records) floods the current
// CPU's buffer to exercise backpressure and lost samples.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct dp_perf_rec {
  __u64 seq;
  __u32 tgid;
  __u32 cpu;
};

// Keeps struct dp_perf_rec in the object's BTF.
struct dp_perf_rec dp_perf_rec_btf_anchor = {};

struct {
  __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
  __uint(key_size, sizeof(__u32));
  __uint(value_size, sizeof(__u32));
} events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} cfg SEC(".maps");

__u64 seq = 0;

SEC("tracepoint/syscalls/sys_enter_getppid")
int dp_getppid(void *ctx) {
  __u32 zero = 0;
  __u32 *target = bpf_map_lookup_elem(&cfg, &zero);
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  if (!target || *target == 0 || *target != tgid) return 0;
  struct dp_perf_rec r = {.seq = __sync_fetch_and_add(&seq, 1), .tgid = tgid, .cpu = bpf_get_smp_processor_id()};
  bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &r, sizeof(r));
  return 0;
}

struct emit_ctx {
  void *ctx;
  __u32 cpu;
};

static long emit(__u32 i, void *data) {
  struct emit_ctx *c = data;
  struct dp_perf_rec r = {.seq = __sync_fetch_and_add(&seq, 1), .tgid = 0, .cpu = c->cpu};
  bpf_perf_event_output(c->ctx, &events, BPF_F_CURRENT_CPU, &r, sizeof(r));
  return 0;
}

SEC("raw_tp")
int dp_perf_produce(struct bpf_raw_tracepoint_args *ctx) {
  struct emit_ctx c = {.ctx = ctx, .cpu = bpf_get_smp_processor_id()};
  bpf_loop((__u32)ctx->args[0], emit, &c, 0);
  return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
