// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Syscalls family: counts, errors and latency per syscall per process, on raw_syscalls.
#include "vmlinux.h"
#include "common.bpf.h"
#include "syscalls.h"

// One in-flight syscall per thread, in task-local storage: a pointer walk from the task
// instead of a hash update and delete on every call, and freed with the task.
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct st_syscall_start);
} syscall_start SEC(".maps");

// Entries churn with processes: LRU keeps the busiest (process, syscall) pairs.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct st_syscall_key);
	__type(value, struct st_syscall_stats);
} syscall_stats SEC(".maps");

// Load-time switch: when false only counts are kept (no per-thread start, about half the cost).
const volatile bool measure_latency = true;

SEC("tp_btf/sys_enter")
int BPF_PROG(st_sys_enter, struct pt_regs *regs, long id)
{
	__u64 pid_tgid;
	struct st_syscall_key key;
	struct st_syscall_stats zero = {}, *s;

	if (!st_filter_pass())
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	key.tgid = pid_tgid >> 32;
	key.nr = (__u32)id;
	s = st_lookup_or_init(&syscall_stats, &key, &zero);
	if (s)
		__sync_fetch_and_add(&s->count, 1);
	if (measure_latency) {
		struct st_syscall_start *st;

		st = bpf_task_storage_get(&syscall_start, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (st) {
			st->ts = bpf_ktime_get_ns();
			st->nr = key.nr;
			st->tgid = key.tgid;
		}
	}
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(st_sys_exit, struct pt_regs *regs, long ret)
{
	struct st_syscall_start *st;
	struct st_syscall_stats *s;
	struct st_syscall_key key;
	__u64 delta;

	if (!measure_latency)
		return 0;
	// No start (ts 0) means the filter dropped the call at entry: nothing else to do.
	st = bpf_task_storage_get(&syscall_start, bpf_get_current_task_btf(), 0, 0);
	if (!st || !st->ts)
		return 0;
	delta = bpf_ktime_get_ns() - st->ts;
	key.tgid = st->tgid;
	key.nr = st->nr;
	st->ts = 0;
	s = bpf_map_lookup_elem(&syscall_stats, &key);
	if (!s)
		return 0;
	__sync_fetch_and_add(&s->total_ns, delta);
	if (ret < 0)
		__sync_fetch_and_add(&s->errors, 1);
	if (delta > s->max_ns)
		s->max_ns = delta;	// racy max across CPUs: good enough for a statistic
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
