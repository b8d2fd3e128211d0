// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// A third-party-style object: open() tracing with syscall tracepoints, events through a ring
// buffer and per-process counts in a hash map; an fentry variant that hosts without BPF
// trampolines leave out through `programs`.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "opensnoop_like.h"

const volatile pid_t targ_tgid = 0;

struct args_t {
  const char *fname;
  int flags;
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 10240);
  __type(key, u32);
  __type(value, struct args_t);
} inflight SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, u32);
  __type(value, u64);
} opens SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 256 * 1024);
} events SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_openat")
int osl_enter_openat(struct trace_event_raw_sys_enter *ctx) {
  u64 id = bpf_get_current_pid_tgid();
  u32 tgid = id >> 32, tid = (u32)id;
  if (targ_tgid && targ_tgid != tgid)
    return 0;
  struct args_t args = {};
  args.fname = (const char *)ctx->args[1];
  args.flags = (int)ctx->args[2];
  bpf_map_update_elem(&inflight, &tid, &args, BPF_ANY);
  return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int osl_exit_openat(struct trace_event_raw_sys_exit *ctx) {
  u64 id = bpf_get_current_pid_tgid();
  u32 tgid = id >> 32, tid = (u32)id;
  struct args_t *ap = bpf_map_lookup_elem(&inflight, &tid);
  if (!ap)
    return 0;
  u64 one = 1, *n = bpf_map_lookup_elem(&opens, &tgid);
  if (n)
    __sync_fetch_and_add(n, 1);
  else
    bpf_map_update_elem(&opens, &tgid, &one, BPF_NOEXIST);
  struct osl_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (e) {
    e->ts = bpf_ktime_get_ns();
    e->pid = tgid;
    e->ret = (int)ctx->ret;
    e->flags = ap->flags;
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    bpf_probe_read_user_str(e->fname, sizeof(e->fname), ap->fname);
    bpf_ringbuf_submit(e, 0);
  }
  bpf_map_delete_elem(&inflight, &tid);
  return 0;
}

SEC("fentry/do_sys_openat2")
int BPF_PROG(osl_fentry_openat2, int dfd, const char *filename) {
  u32 tgid = bpf_get_current_pid_tgid() >> 32;
  u64 one = 1, *n = bpf_map_lookup_elem(&opens, &tgid);
  if (n)
    __sync_fetch_and_add(n, 1);
  else
    bpf_map_update_elem(&opens, &tgid, &one, BPF_NOEXIST);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
