// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// CPU / scheduler family: on-CPU time per thread (and so per process), voluntary and
// involuntary switches, run-queue latency (histogram and per thread). CPU time per cgroup is
// summed in user space from the threads' entries (each carries its cgroup id).
//
// Cost model: the kernel already keeps exact per-thread counters (se.sum_exec_runtime,
// nvcsw/nivcsw, sched_info.run_delay/pcount/last_queued). sched_switch copies prev's into
// one hash entry and turns next's queueing time into a histogram slot, with no timestamp
// helper, no wakeup programs and no per-wakeup map writes. One per-CPU array lookup, the
// filter, one hash lookup for prev, one array slot for next.
#include "vmlinux.h"
#include "common.bpf.h"
#include "sched_cpu.h"

// Who is on each CPU now (user space reads the running threads' exact runtime from /proc).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct st_sched_oncpu);
} oncpu_since SEC(".maps");

// Per-thread kernel counters at the thread's last switch-out. Threads churn: LRU so a busy
// host can never fill it; entries are also removed when the thread exits (folded into
// exited_cpu).
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

// Bumped after every change to exited_cpu (see maps.bpf.h): the reader reads exited_cpu again
// only when it moved, not a batch lookup of its 4,096 buckets every second.
ST_DECLARE_WRITES();

// Per CPU: no atomic increments on the switch path; user space sums the CPUs.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct st_sched_hist);
} runq_hist SEC(".maps");

#define ST_PF_EXITING 0x00000004

static __always_inline void copy_counters(struct st_sched_cpu *s, struct task_struct *t)
{
	s->oncpu_ns = t->se.sum_exec_runtime;
	s->voluntary = t->nvcsw;
	s->involuntary = t->nivcsw;
	s->runq_ns = t->sched_info.run_delay;
	s->runq_count = t->sched_info.pcount;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(st_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u32 zero = 0, prev_tid = prev->pid, next_tid = next->pid;
	struct st_sched_oncpu *on;
	struct st_filter_config *cfg;
	struct st_sched_cpu *s;

	on = bpf_map_lookup_elem(&oncpu_since, &zero);
	if (on) {
		on->tid = next_tid;
		on->tgid = next->tgid;
	}
	cfg = st_config();
	if (!cfg)
		return 0;

	// prev is current here, so the cheap current-task filter applies to it.
	if (prev_tid && st_filter_check(cfg, prev->tgid, 0)) {
		s = bpf_map_lookup_elem(&thread_cpu, &prev_tid);
		if (s) {
			copy_counters(s, prev);	// only this CPU writes a running thread's entry
		} else if (!(prev->flags & ST_PF_EXITING)) {
			// (An exiting thread's last switches must not re-create the entry exit removed.)
			struct st_sched_cpu init = { .tgid = prev->tgid, .cgroup_id = bpf_get_current_cgroup_id() };

			copy_counters(&init, prev);
			bpf_map_update_elem(&thread_cpu, &prev_tid, &init, BPF_NOEXIST);
		}
	}

	// Run-queue latency of next: the kernel stamped when it was queued (sched_info), and
	// accounts the wait right after this tracepoint.
	if (next_tid && st_filter_check(cfg, next->tgid, next)) {
		__u64 queued = next->sched_info.last_queued;
		// This CPU's run-queue clock (the one last_queued was taken with), reached through
		// next's cfs_rq: the runqueues per-CPU symbol is not in kallsyms without
		// CONFIG_KALLSYMS_ALL. cfs_rq->rq exists with CONFIG_FAIR_GROUP_SCHED.
		__u64 clock = 0;

		if (bpf_core_field_exists(next->se.cfs_rq->rq)) {
			struct cfs_rq *cr = next->se.cfs_rq;	// direct BTF loads: no helper calls

			if (cr && cr->rq)
				clock = cr->rq->clock;
		}

		if (queued && clock > queued) {
			struct st_sched_hist *h = bpf_map_lookup_elem(&runq_hist, &zero);
			__u32 slot = st_hist_slot((clock - queued) / 1000);

			if (h && slot < ST_SCHED_HIST_SLOTS)
				h->slots[slot]++;
		}
	}
	return 0;
}

// Run by the reader when it opens and when the filter changes: enters every thread the
// filter passes, so a thread that has not switched out since then is not missing.
SEC("iter/task")
int st_sched_seed(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct st_sched_cpu init = {};
	__u32 tid;

	if (!task || !st_filter_task(task))
		return 0;
	tid = task->pid;
	if (!tid)
		return 0;
	init.tgid = task->tgid;
	init.cgroup_id = st_task_cgroup_id(task);
	copy_counters(&init, task);
	bpf_map_update_elem(&thread_cpu, &tid, &init, BPF_NOEXIST);
	return 0;
}

// Fold an exiting thread into its process's exited totals; drop everything when the
// process is gone (user space read it at its last snapshot or loses at most one interval).
SEC("tp_btf/sched_process_exit")
int BPF_PROG(st_sched_exit, struct task_struct *p, bool group_dead)
{
	__u32 tid = p->pid, tgid = p->tgid;
	struct st_sched_cpu *s, *e, fin = { .tgid = tgid };

	s = bpf_map_lookup_elem(&thread_cpu, &tid);
	if (!s && !group_dead)
		return 0;
	if (s)
		fin.cgroup_id = s->cgroup_id;
	if (group_dead) {
		if (bpf_map_delete_elem(&exited_cpu, &tgid) == 0)
			st_count_write();	// after the write (see maps.bpf.h)
	} else if (s) {
		copy_counters(&fin, p);
		e = bpf_map_lookup_elem(&exited_cpu, &tgid);
		if (!e) {
			bpf_map_update_elem(&exited_cpu, &tgid, &fin, BPF_NOEXIST);
		} else {
			__sync_fetch_and_add(&e->oncpu_ns, fin.oncpu_ns);
			__sync_fetch_and_add(&e->voluntary, fin.voluntary);
			__sync_fetch_and_add(&e->involuntary, fin.involuntary);
			__sync_fetch_and_add(&e->runq_ns, fin.runq_ns);
			__sync_fetch_and_add(&e->runq_count, fin.runq_count);
		}
		st_count_write();
	}
	bpf_map_delete_elem(&thread_cpu, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
