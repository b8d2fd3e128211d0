// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Log2 slots for in-kernel histograms (slot i counts values in [2^i, 2^(i+1)), slot 0 also 0).
// Shared by every bundled program; keep the API stable (the GPU/thermal programs use it too).
#ifndef __ST_BITS_BPF_H
#define __ST_BITS_BPF_H

// Number of slots of every log2 histogram in smoothtask (values up to 2^ST_HIST_SLOTS - 1).
#define ST_HIST_SLOTS 32

static __always_inline __u64 st_log2(__u32 v)
{
	__u32 shift, r;

	r = (v > 0xFFFF) << 4; v >>= r;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline __u64 st_log2l(__u64 v)
{
	__u32 hi = v >> 32;

	if (hi)
		return st_log2(hi) + 32;
	return st_log2(v);
}

// Slot of value v, clamped to the last slot.
static __always_inline __u32 st_hist_slot(__u64 v)
{
	__u64 s = st_log2l(v);

	return s >= ST_HIST_SLOTS ? ST_HIST_SLOTS - 1 : (__u32)s;
}

#endif /* __ST_BITS_BPF_H */
