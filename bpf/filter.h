// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Filter configuration shared by the BPF programs (filter.bpf.h) and user space
// (lib/metrics/bpf-base.ts writes it; its codec is generated from BTF by scripts/gen-types.ts).
// Only __u8..__u64 and fixed arrays: no kernel includes.
#ifndef __ST_FILTER_H
#define __ST_FILTER_H

#define ST_FILTER_TGID   (1u << 0)	// st_filter_tgids holds the tgids to keep
#define ST_FILTER_CGROUP (1u << 1)	// st_filter_cgroups holds the cgroup ids to keep
#define ST_FILTER_COMM   (1u << 2)	// comm[0..comm_len) is the comm prefix to keep
#define ST_FILTER_KINDS  (ST_FILTER_TGID | ST_FILTER_CGROUP | ST_FILTER_COMM)
#define ST_CFG_EVENTS    (1u << 8)	// a consumer wants events through the ring buffer

#define ST_COMM_LEN 16
// Deepest cgroup level the filter looks at (root is level 0).
#define ST_CGROUP_MAX_LEVEL 15

// Value of st_filter_cfg[0]. Layout is read by user space: keep it.
struct st_filter_config {
	__u32 flags;		// ST_FILTER_* | ST_CFG_*
	__u32 comm_len;		// bytes of comm that must match (1..15)
	__u32 cg_level_min;	// shallowest level of a cgroup in st_filter_cgroups
	__u32 cg_level_max;	// deepest level of a cgroup in st_filter_cgroups
	__u8 comm[ST_COMM_LEN];
};

#endif /* __ST_FILTER_H */
