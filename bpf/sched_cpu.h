// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Structs shared between sched.bpf.c (named sched_cpu.h: a bpf/sched.h would shadow libc <sched.h> for the addon, which has -Ibpf) and user space (lib/metrics/cpu).
#ifndef __ST_SCHED_CPU_H
#define __ST_SCHED_CPU_H

#define ST_SCHED_HIST_SLOTS 32

// Value of thread_cpu (key: tid) and of exited_cpu (key: tgid, threads already gone).
struct st_sched_cpu {
	__u32 tgid;
	__u32 pad;
	__u64 oncpu_ns;		// time on CPU (the thread's se.sum_exec_runtime at its last switch-out)
	__u64 voluntary;	// switches out while blocking (nvcsw)
	__u64 involuntary;	// switches out while runnable (preempted, nivcsw)
	__u64 runq_ns;		// time waiting on a run queue after a wakeup or preemption
	__u64 runq_count;	// waits measured
};

// Value of oncpu_since (per CPU): who is on this CPU since when, so readers can add the time
// of a thread that has been running since its last switch.
struct st_sched_oncpu {
	__u64 ts;
	__u32 tid;
	__u32 tgid;
};

// Value of runq_hist[0]: run-queue latency, log2 slots of microseconds.
struct st_sched_hist {
	__u64 slots[ST_SCHED_HIST_SLOTS];
};

#endif /* __ST_SCHED_CPU_H */
