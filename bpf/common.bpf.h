// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Includes and small helpers every bundled program shares. Include after vmlinux.h.
#ifndef __ST_COMMON_BPF_H
#define __ST_COMMON_BPF_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "core_fixes.bpf.h"
#include "bits.bpf.h"
#include "maps.bpf.h"
#include "filter.bpf.h"

#ifndef TASK_RUNNING
#define TASK_RUNNING 0
#endif

static __always_inline __u32 st_tgid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

static __always_inline __u32 st_tid(void)
{
	return (__u32)bpf_get_current_pid_tgid();
}

#endif /* __ST_COMMON_BPF_H */
