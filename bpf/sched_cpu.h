// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Structs shared between sched.bpf.c (named sched_cpu.h: a bpf/sched.h would shadow libc <sched.h> for the addon, which has -Ibpf) and user space (lib/metrics/cpu).
#ifndef __ST_SCHED_CPU_H
#define __ST_SCHED_CPU_H

#define ST_SCHED_HIST_SLOTS 32

// Value of thread_cpu (key: tid) and of exited_cpu (key: tgid, threads already gone).
struct st_sched_cpu {
	__u32 tgid;
	__u32 pad;
	// The thread's own kernel counters at its last switch-out (cumulative since it started):
	__u64 oncpu_ns;		// se.sum_exec_runtime
	__u64 voluntary;	// nvcsw: switches out while blocking
	__u64 involuntary;	// nivcsw: switches out while runnable (preempted)
	__u64 runq_ns;		// sched_info.run_delay: time waiting on a run queue
	__u64 runq_count;	// sched_info.pcount: times it ran on a CPU
	__u64 cgroup_id;	// cgroup v2 id when the entry was made
};

// Value of oncpu_since (per CPU): who is on this CPU now, so readers can add the time of a
// thread that has been running since its last switch.
struct st_sched_oncpu {
	__u32 tid;
	__u32 tgid;
};

// Value of runq_hist[0]: run-queue latency, log2 slots of microseconds.
struct st_sched_hist {
	__u64 slots[ST_SCHED_HIST_SLOTS];
};

#endif /* __ST_SCHED_CPU_H */
