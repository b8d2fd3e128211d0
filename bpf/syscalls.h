// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Structs shared between syscalls.bpf.c and user space (lib/metrics/syscalls).
#ifndef __ST_SYSCALLS_H
#define __ST_SYSCALLS_H

// Key of syscall_stats: one entry per (process, syscall number).
struct st_syscall_key {
	__u32 tgid;
	__u32 nr;
};

// Value of syscall_stats. Latency is measured from sys_enter to sys_exit.
struct st_syscall_stats {
	__u64 count;		// entries (counted at sys_enter, so exit/exit_group count too)
	__u64 errors;		// exits with a negative return value
	__u64 total_ns;		// summed latency of completed calls
	__u64 max_ns;		// slowest completed call
};

// Value of syscall_start (per thread in a syscall).
struct st_syscall_start {
	__u64 ts;
	__u32 nr;
	__u32 tgid;
};

#endif /* __ST_SYSCALLS_H */
