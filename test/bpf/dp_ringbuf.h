// Record of the data-path ring buffer tests (shared with user space: __u* types only).
#pragma once

struct dp_rec {
  __u64 seq;  /* per-CPU sequence number, from 0 */
  __u32 cpu;
  __u32 tag;  /* caller's tag (ctx arg 1) */
};
