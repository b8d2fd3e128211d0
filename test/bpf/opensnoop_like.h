/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared with user space: one open() event (in the style of bcc libbpf-tools' opensnoop,
 * written for the loader tests). */
#ifndef OPENSNOOP_LIKE_H
#define OPENSNOOP_LIKE_H

#define OSL_NAME_LEN 128

struct osl_event {
  __u64 ts;
  __u32 pid;
  __s32 ret;
  __s32 flags;
  char comm[16];
  char fname[OSL_NAME_LEN];
};

#endif
