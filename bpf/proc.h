// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Structs shared between proc.bpf.c and user space (lib/metrics/process).
#ifndef __ST_PROC_H
#define __ST_PROC_H

#define PROC_EV_EXEC 1
#define PROC_EV_FORK 2
#define PROC_EV_EXIT 3

#define PROC_COMM_LEN 16
#define PROC_FILENAME_LEN 256

// Ring buffer record (proc_events). Only produced while a consumer asked for events.
struct st_proc_event {
	__u64 ts_ns;		// bpf_ktime_get_ns() (CLOCK_MONOTONIC)
	__u32 type;		// PROC_EV_*
	__u32 pid;		// thread that did it
	__u32 tgid;		// process (for FORK: the child)
	__u32 ppid;		// parent tgid (for FORK: the parent)
	__u32 exit_code;	// EXIT: raw wait status (code << 8 | signal)
	__u32 pad;
	__u64 duration_ns;	// EXIT: process lifetime
	__u64 cpu_ns;		// EXIT: CPU time of all its threads
	__u64 faults;		// EXIT: user page faults seen (page_fault_user)
	__u64 voluntary;	// EXIT: voluntary context switches
	__u64 involuntary;	// EXIT: involuntary context switches
	__u64 cgroup_id;	// cgroup v2 id
	__u8 comm[PROC_COMM_LEN];
	__u8 filename[PROC_FILENAME_LEN];	// EXEC: path given to execve
};

// Value of proc_faults (key: tgid). Removed when the process exits.
struct st_proc_stats {
	__u64 faults;
};

// One record per thread written by the task iterator (st_proc_iter).
struct st_proc_task {
	__u32 tgid;
	__u32 tid;
	__u32 ppid;
	__u32 state;		// task __state
	__u64 start_ns;		// task start, CLOCK_MONOTONIC ns
	__u64 runtime_ns;	// se.sum_exec_runtime
	__u64 utime_ns;
	__u64 stime_ns;
	__u64 voluntary;	// nvcsw
	__u64 involuntary;	// nivcsw
	__u64 min_flt;
	__u64 maj_flt;
	// Group leader only (0 for other threads): totals of exited threads and memory.
	__u64 dead_runtime_ns;	// signal->sum_sched_runtime
	__u64 dead_voluntary;
	__u64 dead_involuntary;
	__u64 dead_min_flt;
	__u64 dead_maj_flt;
	__u64 rss_pages;	// file + anon + shmem resident pages
	__u64 vm_pages;		// total_vm
	__u64 cgroup_id;
	__u64 faults_traced;	// user page faults of the process since load (proc_faults)
	__u64 runq_ns;		// sched_info.run_delay: time waiting on a run queue (0 without CONFIG_SCHED_INFO)
	__u64 runq_count;	// sched_info.pcount: times it ran on a CPU
	__u64 task_flags;	// task->flags (PF_EXITING: the thread is leaving)
	__u32 nr_threads;
	__u32 is_leader;
	__u8 comm[PROC_COMM_LEN];
};

#endif /* __ST_PROC_H */
