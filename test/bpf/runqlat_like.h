/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared with user space: the run-queue latency histogram (written for the loader tests in
 * the style of bcc libbpf-tools, not copied from it). */
#ifndef RUNQLAT_LIKE_H
#define RUNQLAT_LIKE_H

#define RQL_MAX_SLOTS 26

struct rql_hist {
  __u32 slots[RQL_MAX_SLOTS];
  __u64 total;
};

#endif
