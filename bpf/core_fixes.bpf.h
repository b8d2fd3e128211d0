// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Kernel differences in one place: CO-RE flavours and field checks, each citing the commit.
#ifndef __ST_CORE_FIXES_BPF_H
#define __ST_CORE_FIXES_BPF_H

#include <bpf/bpf_core_read.h>

// Kernel commit 2f064a59a11f ("sched: Change task_struct::state", 5.14) renamed
// task_struct::state to __state.
struct task_struct___o {
	volatile long int state;
} __attribute__((preserve_access_index));

static __always_inline __s64 st_task_state(void *task)
{
	struct task_struct *t = task;

	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___o *)task, state);
}

// Kernel commit 7f203bc89eb6 ("cgroup: Replace cgroup->ancestor_ids[] with ->ancestors[]",
// 5.19/6.0) turned the ancestor id array into an array of cgroup pointers.
struct cgroup___o {
	int level;
	__u64 ancestor_ids[];
} __attribute__((preserve_access_index));

// Id of the ancestor of cgroup cg at depth level (root = 0), or 0 when cg is shallower.
static __always_inline __u64 st_cgroup_ancestor_id(struct cgroup *cg, int level)
{
	struct cgroup *anc = 0;
	__u64 id = 0;

	if (level < 0 || level > BPF_CORE_READ(cg, level))
		return 0;
	if (bpf_core_field_exists(cg->ancestors)) {
		bpf_core_read(&anc, sizeof(anc), &cg->ancestors[level]);
		if (!anc)
			return 0;
		return BPF_CORE_READ(anc, kn, id);
	}
	bpf_core_read(&id, sizeof(id), &((struct cgroup___o *)cg)->ancestor_ids[level]);
	return id;
}

// The task's cgroup v2 (default hierarchy) cgroup.
static __always_inline struct cgroup *st_task_dfl_cgroup(struct task_struct *task)
{
	return BPF_CORE_READ(task, cgroups, dfl_cgrp);
}

// Cgroup v2 id of a task (what bpf_get_current_cgroup_id() returns for current).
static __always_inline __u64 st_task_cgroup_id(struct task_struct *task)
{
	return BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
}

#endif /* __ST_CORE_FIXES_BPF_H */
