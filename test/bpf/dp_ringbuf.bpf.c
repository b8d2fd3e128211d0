// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Ring buffer producer for the data-path tests and benchmark. Run with BPF_PROG_TEST_RUN
// (raw_tp: args[0] = records to emit, args[1] = tag): bpf_loop emits that many records with a
// per-CPU sequence number. test_run runs raw_tp programs with preemption off on one CPU, so
// sequence order per CPU is reservation order. Failed reserves are counted in `dropped`.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "dp_ringbuf.h"

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 25); /* 32 MiB: 1,000,000 records of 24 bytes fit */
} events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} seqs SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} dropped SEC(".maps");

// Keeps struct dp_rec in the object's BTF (a type only reached through a local pointer is not
// emitted), so user space can decode records with codecFromBtf.
struct dp_rec dp_rec_btf_anchor = {};

struct emit_ctx {
  __u64 *seq;
  __u32 cpu;
  __u32 tag;
};

static long emit(__u32 i, void *data) {
  struct emit_ctx *c = data;
  __u64 s = (*c->seq)++;
  struct dp_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
  if (!r) {
    __u32 zero = 0;
    __u64 *d = bpf_map_lookup_elem(&dropped, &zero);
    if (d) __sync_fetch_and_add(d, 1);
    return 0;
  }
  r->seq = s;
  r->cpu = c->cpu;
  r->tag = c->tag;
  bpf_ringbuf_submit(r, 0);
  return 0;
}

SEC("raw_tp")
int dp_produce(struct bpf_raw_tracepoint_args *ctx) {
  __u32 zero = 0;
  __u64 *seq = bpf_map_lookup_elem(&seqs, &zero);
  if (!seq) return 0;
  struct emit_ctx c = {.seq = seq, .cpu = bpf_get_smp_processor_id(), .tag = (__u32)ctx->args[1]};
  bpf_loop((__u32)ctx->args[0], emit, &c, 0);
  return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
