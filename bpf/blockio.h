// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Structs shared between blockio.bpf.c and user space (lib/metrics/disk).
#ifndef __ST_BLOCKIO_H
#define __ST_BLOCKIO_H

#define ST_BIO_HIST_SLOTS 32

// Devices are the kernel's dev_t of the whole disk: major << 20 | minor.

// Value of bio_dev (key: __u32 dev). Latency from issue to completion.
struct st_bio_dev {
	__u64 read_ops;
	__u64 write_ops;
	__u64 other_ops;	// flush, discard, ...
	__u64 read_bytes;
	__u64 write_bytes;
	__u64 total_ns;		// summed latency of every completed request
	__u64 slots[ST_BIO_HIST_SLOTS];	// latency log2 histogram, microseconds
};

// Key of bio_proc.
struct st_bio_proc_key {
	__u32 tgid;
	__u32 dev;
};

// Value of bio_proc: requests attributed to the process that submitted them.
struct st_bio_proc {
	__u64 read_ops;
	__u64 write_ops;
	__u64 read_bytes;
	__u64 write_bytes;
	__u64 total_ns;
	__u8 comm[16];
};

// Value of bio_inflight (key: request address).
struct st_bio_start {
	__u64 issue_ns;		// 0 until issued to the driver
	__u32 tgid;
	__u32 pad;
	__u8 comm[16];
};

#endif /* __ST_BLOCKIO_H */
