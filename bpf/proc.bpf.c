// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Processes family: exec/fork/exit events (ring buffer, only when asked), user page faults
// per process, and a task iterator that snapshots every process (CPU, switches, faults, RSS)
// in one pass without reading /proc.
#include "vmlinux.h"
#include "common.bpf.h"
#include "proc.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} proc_events SEC(".maps");

ST_DECLARE_DROPS()

// Records that only travel through the ring buffer and the iterator: globals so their types
// reach the object's BTF (type generation and the layout tests read them from there).
struct st_proc_event *st_btf_proc_event __attribute__((unused));
struct st_proc_task *st_btf_proc_task __attribute__((unused));

// User page faults per process; removed at exit. Sparse: no prealloc.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct st_proc_stats);
} proc_faults SEC(".maps");

static __always_inline struct st_proc_event *reserve(__u32 type, struct task_struct *task)
{
	struct st_proc_event *e = bpf_ringbuf_reserve(&proc_events, sizeof(*e), 0);

	if (!e) {
		st_count_drop();
		return 0;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->type = type;
	e->pid = task->pid;
	e->tgid = task->tgid;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->exit_code = 0;
	e->pad = 0;
	e->duration_ns = e->cpu_ns = e->faults = e->voluntary = e->involuntary = 0;
	e->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	e->filename[0] = 0;
	return e;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(st_proc_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct st_proc_event *e;

	if (!st_filter_pass() || !st_events_on())
		return 0;
	e = reserve(PROC_EV_EXEC, p);
	if (!e)
		return 0;
	bpf_probe_read_kernel_str(&e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(st_proc_fork, struct task_struct *parent, struct task_struct *child)
{
	struct st_proc_event *e;

	// New threads are not new processes.
	if (child->pid != child->tgid)
		return 0;
	if (!st_filter_pass() || !st_events_on())
		return 0;
	e = reserve(PROC_EV_FORK, child);
	if (!e)
		return 0;
	e->ppid = parent->tgid;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(st_proc_exit, struct task_struct *p, bool group_dead)
{
	struct st_proc_stats *st;
	struct st_proc_event *e;
	struct signal_struct *sig;
	__u32 tgid = p->tgid;

	if (!group_dead)
		return 0;
	st = bpf_map_lookup_elem(&proc_faults, &tgid);
	if (st_filter_pass() && st_events_on()) {
		e = reserve(PROC_EV_EXIT, p);
		if (e) {
			sig = p->signal;
			e->exit_code = p->exit_code;
			e->duration_ns = e->ts_ns - BPF_CORE_READ(p, group_leader, start_time);
			e->cpu_ns = BPF_CORE_READ(sig, sum_sched_runtime) + p->se.sum_exec_runtime;
			e->voluntary = BPF_CORE_READ(sig, nvcsw) + p->nvcsw;
			e->involuntary = BPF_CORE_READ(sig, nivcsw) + p->nivcsw;
			e->faults = st ? st->faults : 0;
			bpf_ringbuf_submit(e, 0);
		}
	}
	if (st)
		bpf_map_delete_elem(&proc_faults, &tgid);
	return 0;
}

SEC("tp_btf/page_fault_user")
int BPF_PROG(st_page_fault_user, unsigned long address, struct pt_regs *regs, unsigned long error_code)
{
	struct st_proc_stats zero = {}, *st;
	__u32 tgid;

	if (!st_filter_pass())
		return 0;
	tgid = st_tgid();
	st = st_lookup_or_init(&proc_faults, &tgid, &zero);
	if (st)
		__sync_fetch_and_add(&st->faults, 1);
	return 0;
}

// Resident pages (file + anon + shmem): mm->rss_stat became an array of percpu_counter in
// kernel commit f1a7941243c1 ("mm: convert mm's rss stats into percpu_counter", 6.2).
struct mm_rss_stat___o {
	atomic_long_t count[4];
} __attribute__((preserve_access_index));
struct mm_struct___o {
	struct mm_rss_stat___o rss_stat;
} __attribute__((preserve_access_index));

static __always_inline __u64 rss_pages(struct mm_struct *mm)
{
	__s64 file, anon, shmem, sum;

	// Direct BTF loads (mm comes from a task the iterator holds): no helper call per field.
	if (bpf_core_field_size(mm->rss_stat) > 8 * 4) {
		file = mm->rss_stat[0].count;
		anon = mm->rss_stat[1].count;
		shmem = mm->rss_stat[3].count;
	} else {
		struct mm_struct___o *o = (void *)mm;

		file = o->rss_stat.count[0].counter;
		anon = o->rss_stat.count[1].counter;
		shmem = o->rss_stat.count[3].counter;
	}
	// Per-CPU deltas can make a counter briefly negative, as /proc's percpu_counter_read_positive knows.
	sum = (file > 0 ? file : 0) + (anon > 0 ? anon : 0) + (shmem > 0 ? shmem : 0);
	return sum;
}

SEC("iter/task")
int st_proc_iter(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct st_proc_task r = {};
	struct st_proc_stats *faults;
	struct mm_struct *mm;

	if (!task)
		return 0;
	if (!st_filter_task(task))
		return 0;
	// Fields are read with direct BTF loads, not BPF_CORE_READ: the iterator hands out a task
	// it holds, and a helper call per field was most of this program's time (run for every
	// thread on the host at every read). The loads stay CO-RE relocated.
	r.tgid = task->tgid;
	r.tid = task->pid;
	r.ppid = task->real_parent->tgid;
	if (bpf_core_field_exists(task->__state))
		r.state = task->__state;
	else
		r.state = ((struct task_struct___o *)task)->state;
	r.start_ns = task->start_time;
	r.runtime_ns = task->se.sum_exec_runtime;
	r.utime_ns = task->utime;
	r.stime_ns = task->stime;
	r.voluntary = task->nvcsw;
	r.involuntary = task->nivcsw;
	r.min_flt = task->min_flt;
	r.maj_flt = task->maj_flt;
	r.cgroup_id = task->cgroups->dfl_cgrp->kn->id;
	// The cpu family reads its threads from this pass when the monitor has both (the same
	// counters sched.bpf.c copies at each switch-out, read live here).
	if (bpf_core_field_exists(task->sched_info)) {
		r.runq_ns = task->sched_info.run_delay;
		r.runq_count = task->sched_info.pcount;
	}
	r.task_flags = task->flags;
	// The process's traced faults travel with each record: user space reads no map for them.
	faults = bpf_map_lookup_elem(&proc_faults, &r.tgid);
	if (faults)
		r.faults_traced = faults->faults;
	BPF_CORE_READ_STR_INTO(&r.comm, task, comm);
	if (r.tgid == r.tid) {
		struct signal_struct *sig = task->signal;

		r.is_leader = 1;
		r.dead_runtime_ns = sig->sum_sched_runtime;
		r.dead_voluntary = sig->nvcsw;
		r.dead_involuntary = sig->nivcsw;
		r.dead_min_flt = sig->min_flt;
		r.dead_maj_flt = sig->maj_flt;
		r.nr_threads = sig->nr_threads;
		mm = task->mm;
		if (mm) {
			r.rss_pages = rss_pages(mm);
			r.vm_pages = mm->total_vm;
		}
	}
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
