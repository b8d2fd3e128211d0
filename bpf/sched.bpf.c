// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// CPU / scheduler family: on-CPU time per thread (and so per process), voluntary and
// involuntary switches, run-queue latency (histogram and per thread), CPU time per cgroup.
//
// Cost model: sched_switch does one per-CPU array lookup, the filter, and one hash update for
// prev (plus the cgroup counter and one run-queue lookup for next).
#include "vmlinux.h"
#include "common.bpf.h"
#include "sched_cpu.h"

// When the task now on each CPU got it (no per-task state needed for on-CPU time).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct st_sched_oncpu);
} oncpu_since SEC(".maps");

// Per-thread totals. Threads churn: LRU so a busy host can never fill it; entries are also
// removed when the thread exits (folded into exited_cpu).
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct st_sched_cpu);
} thread_cpu SEC(".maps");

// Totals of the exited threads of live processes; removed when the process exits. Sparse.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct st_sched_cpu);
} exited_cpu SEC(".maps");

// When each runnable thread became runnable. Written on every wakeup: preallocated LRU.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} runq_since SEC(".maps");

// On-CPU nanoseconds per cgroup v2 id.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, __u64);
} cgroup_cpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct st_sched_hist);
} runq_hist SEC(".maps");

#define ST_PF_EXITING 0x00000004

// Load-time switch: per-cgroup CPU time (one more hash update per switch).
const volatile bool per_cgroup = true;

static __always_inline int on_wakeup(struct task_struct *p)
{
	__u32 tid;
	__u64 ts;

	if (!st_filter_task(p))
		return 0;
	tid = BPF_CORE_READ(p, pid);
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&runq_since, &tid, &ts, BPF_ANY);
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(st_sched_wakeup, struct task_struct *p)
{
	return on_wakeup(p);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(st_sched_wakeup_new, struct task_struct *p)
{
	return on_wakeup(p);
}

// prev_state (the 4th argument) exists since 5.18 (commit fa2c3254d7cf).
SEC("tp_btf/sched_switch")
int BPF_PROG(st_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next, unsigned int prev_state)
{
	__u32 zero = 0, prev_tid = prev->pid, next_tid = next->pid;
	__u64 now = bpf_ktime_get_ns(), *rq, delta = 0;
	struct st_sched_oncpu *since;
	struct st_sched_cpu *s, init = {};
	bool involuntary = preempt || prev_state == TASK_RUNNING;

	since = bpf_map_lookup_elem(&oncpu_since, &zero);
	if (!since)
		return 0;
	if (since->ts)
		delta = now - since->ts;
	since->ts = now;
	since->tid = next_tid;
	since->tgid = next->tgid;

	// prev is current here, so the cheap current-task filter applies to it.
	if (prev_tid && st_filter_pass()) {
		// The kernel's own runtime (se.sum_exec_runtime, updated before this tracepoint)
		// rather than our timestamps: the same number /proc reports, without IRQ time.
		__u64 runtime = prev->se.sum_exec_runtime;

		s = bpf_map_lookup_elem(&thread_cpu, &prev_tid);
		// An exiting thread's last switches must not re-create the entry exit removed.
		if (!s && !(prev->flags & ST_PF_EXITING)) {
			init.tgid = prev->tgid;
			init.oncpu_ns = runtime;
			bpf_map_update_elem(&thread_cpu, &prev_tid, &init, BPF_NOEXIST);
			s = bpf_map_lookup_elem(&thread_cpu, &prev_tid);
		} else if (s && runtime > s->oncpu_ns) {
			delta = runtime - s->oncpu_ns;
		}
		if (s) {
			s->oncpu_ns = runtime;	// only this CPU writes a running thread's entry
			if (involuntary)
				s->involuntary++;
			else
				s->voluntary++;
		}
		if (per_cgroup) {
			__u64 cg = bpf_get_current_cgroup_id(), *c, z = 0;

			c = st_lookup_or_init(&cgroup_cpu, &cg, &z);
			if (c)
				__sync_fetch_and_add(c, delta);
		}
		// Preempted: it waits on the run queue from now on.
		if (involuntary)
			bpf_map_update_elem(&runq_since, &prev_tid, &now, BPF_ANY);
	}

	if (!next_tid)
		return 0;
	rq = bpf_map_lookup_elem(&runq_since, &next_tid);
	if (!rq)
		return 0;
	if (now > *rq) {
		__u64 wait = now - *rq;
		struct st_sched_hist *h = bpf_map_lookup_elem(&runq_hist, &zero);

		if (h) {
			__u32 slot = st_hist_slot(wait / 1000);

			if (slot < ST_SCHED_HIST_SLOTS)
				__sync_fetch_and_add(&h->slots[slot], 1);
		}
		s = bpf_map_lookup_elem(&thread_cpu, &next_tid);
		if (s) {
			__sync_fetch_and_add(&s->runq_ns, wait);
			__sync_fetch_and_add(&s->runq_count, 1);
		}
	}
	bpf_map_delete_elem(&runq_since, &next_tid);
	return 0;
}

// Fold an exiting thread into its process's exited totals; drop everything when the
// process is gone (user space read it at its last snapshot or loses at most one interval).
SEC("tp_btf/sched_process_exit")
int BPF_PROG(st_sched_exit, struct task_struct *p, bool group_dead)
{
	__u32 tid = p->pid, tgid = p->tgid;
	struct st_sched_cpu *s, *e;

	bpf_map_delete_elem(&runq_since, &tid);
	s = bpf_map_lookup_elem(&thread_cpu, &tid);
	if (!s && !group_dead)
		return 0;
	if (group_dead) {
		bpf_map_delete_elem(&exited_cpu, &tgid);
	} else if (s) {
		e = bpf_map_lookup_elem(&exited_cpu, &tgid);
		s->oncpu_ns = p->se.sum_exec_runtime;
		if (!e) {
			bpf_map_update_elem(&exited_cpu, &tgid, s, BPF_NOEXIST);
		} else {
			__sync_fetch_and_add(&e->oncpu_ns, s->oncpu_ns);
			__sync_fetch_and_add(&e->voluntary, s->voluntary);
			__sync_fetch_and_add(&e->involuntary, s->involuntary);
			__sync_fetch_and_add(&e->runq_ns, s->runq_ns);
			__sync_fetch_and_add(&e->runq_count, s->runq_count);
		}
	}
	bpf_map_delete_elem(&thread_cpu, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
