// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// A CO-RE read of a field no kernel has: libbpf poisons the instruction (call 195896080),
// which the loader must report as a relocation failure (InvalidObjectError).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct___nonexistent {
  int smoothtask_no_such_field;
} __attribute__((preserve_access_index));

__u64 seen;

SEC("tp_btf/sched_switch")
int core_missing(u64 *ctx) {
  struct task_struct___nonexistent *t = (void *)bpf_get_current_task_btf();
  seen = BPF_CORE_READ(t, smoothtask_no_such_field);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
