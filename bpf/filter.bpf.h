// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// In-kernel process filter shared by every bundled program (and the GPU/thermal programs):
// a set of tgids, a set of cgroup v2 ids (descendants match), a comm prefix, all in maps so
// user space changes the filter at run time without a reload. Programs call st_filter_pass()
// (current task) or st_filter_task(task) FIRST, before touching any other map.
//
// Semantics: each enabled kind must match (AND); values inside a kind are alternatives (OR).
// With no kind enabled everything passes at the cost of one array lookup.
//
// Keep this API stable: user space (lib/metrics/bpf-filter.ts) writes these maps by name.
#ifndef __ST_FILTER_BPF_H
#define __ST_FILTER_BPF_H

#include "core_fixes.bpf.h"

#include "filter.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct st_filter_config);
} st_filter_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);	// tgid
	__type(value, __u8);
} st_filter_tgids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);	// cgroup v2 id
	__type(value, __u8);
} st_filter_cgroups SEC(".maps");

static __always_inline struct st_filter_config *st_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&st_filter_cfg, &zero);
}

// True when a consumer asked for events.
static __always_inline bool st_events_on(void)
{
	struct st_filter_config *c = st_config();

	return c && (c->flags & ST_CFG_EVENTS);
}

static __always_inline bool st_comm_match(const struct st_filter_config *c, const char *comm)
{
	__u32 n = c->comm_len;

	for (int i = 0; i < ST_COMM_LEN - 1; i++) {
		if (i >= n)
			break;
		if ((__u8)comm[i] != c->comm[i])
			return false;
	}
	return true;
}

// Core of the filter. task == NULL means the current task (cheaper helpers).
static __always_inline bool st_filter_check(const struct st_filter_config *c, __u32 tgid, struct task_struct *task)
{
	__u32 flags = c->flags;

	if (!(flags & ST_FILTER_KINDS))
		return true;
	if ((flags & ST_FILTER_TGID) && !bpf_map_lookup_elem(&st_filter_tgids, &tgid))
		return false;
	if (flags & ST_FILTER_COMM) {
		char comm[ST_COMM_LEN] = {};

		if (task)
			BPF_CORE_READ_STR_INTO(&comm, task, comm);
		else
			bpf_get_current_comm(&comm, sizeof(comm));
		if (!st_comm_match(c, comm))
			return false;
	}
	if (flags & ST_FILTER_CGROUP) {
		struct cgroup *cg = task ? st_task_dfl_cgroup(task) : 0;
		__u32 lo = c->cg_level_min, hi = c->cg_level_max;

		for (int lvl = 0; lvl <= ST_CGROUP_MAX_LEVEL; lvl++) {
			__u64 id;

			if (lvl < lo)
				continue;
			if (lvl > hi)
				break;
			id = task ? st_cgroup_ancestor_id(cg, lvl) : bpf_get_current_ancestor_cgroup_id(lvl);
			if (!id)
				break;
			if (bpf_map_lookup_elem(&st_filter_cgroups, &id))
				return true;
		}
		return false;
	}
	return true;
}

// Filter on the current task. Call first in every program.
static __always_inline bool st_filter_pass(void)
{
	struct st_filter_config *c = st_config();

	if (!c)
		return true;
	return st_filter_check(c, bpf_get_current_pid_tgid() >> 32, 0);
}

// Filter on any task (e.g. the wakee of sched_wakeup).
static __always_inline bool st_filter_task(struct task_struct *task)
{
	struct st_filter_config *c = st_config();

	if (!c)
		return true;
	return st_filter_check(c, BPF_CORE_READ(task, tgid), task);
}

#endif /* __ST_FILTER_BPF_H */
