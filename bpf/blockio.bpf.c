// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Block I/O family: latency histogram per device, operations and bytes per device and per
// process, read/write split.
//   block/block_io_start   request created, in the submitter's context (6.5+): attribution + filter
//   block/block_rq_issue   handed to the driver: latency starts
//   block/block_rq_complete  latency ends, bytes counted
#include "vmlinux.h"
#include "common.bpf.h"
#include "blockio.h"

#define ST_REQ_OP_MASK 0xff
#define ST_REQ_OP_READ 0
#define ST_REQ_OP_WRITE 1

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2048);
	__type(key, __u64);
	__type(value, struct st_bio_start);
} bio_inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct st_bio_dev);
} bio_dev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 2048);
	__type(key, struct st_bio_proc_key);
	__type(value, struct st_bio_proc);
} bio_proc SEC(".maps");

// Bumped after each completion's writes: the reader reads bio_dev and bio_proc again only when it moved.
ST_DECLARE_WRITES();

static __always_inline __u32 rq_dev(struct request *rq)
{
	struct gendisk *disk = BPF_CORE_READ(rq, q, disk);

	if (!disk)
		return 0;
	return ((__u32)BPF_CORE_READ(disk, major) << 20) | (__u32)BPF_CORE_READ(disk, first_minor);
}

SEC("tp_btf/block_io_start")
int BPF_PROG(st_block_io_start, struct request *rq)
{
	struct st_bio_start s = {};
	__u64 key = (__u64)rq;

	if (!st_filter_pass())
		return 0;
	s.tgid = st_tgid();
	bpf_get_current_comm(&s.comm, sizeof(s.comm));
	bpf_map_update_elem(&bio_inflight, &key, &s, BPF_ANY);
	return 0;
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(st_block_rq_issue, struct request *rq)
{
	__u64 key = (__u64)rq;
	struct st_bio_start *s = bpf_map_lookup_elem(&bio_inflight, &key);

	if (!s) {
		// No block_io_start (flush, passthrough, or an older kernel): attribute to whoever
		// issues, but only when no filter is set, since that may be a kworker.
		struct st_filter_config *c = st_config();
		struct st_bio_start n = {};

		if (c && (c->flags & ST_FILTER_KINDS))
			return 0;
		n.tgid = st_tgid();
		bpf_get_current_comm(&n.comm, sizeof(n.comm));
		n.issue_ns = bpf_ktime_get_ns();
		bpf_map_update_elem(&bio_inflight, &key, &n, BPF_ANY);
		return 0;
	}
	s->issue_ns = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(st_block_rq_complete, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
	__u64 key = (__u64)rq, now, delta;
	struct st_bio_start *s = bpf_map_lookup_elem(&bio_inflight, &key);
	struct st_bio_dev *d, dz = {};
	struct st_bio_proc *p, pz = {};
	struct st_bio_proc_key pk;
	__u32 dev, op;

	if (!s)
		return 0;
	now = bpf_ktime_get_ns();
	delta = s->issue_ns && now > s->issue_ns ? now - s->issue_ns : 0;
	dev = rq_dev(rq);
	op = BPF_CORE_READ(rq, cmd_flags) & ST_REQ_OP_MASK;

	d = st_lookup_or_init(&bio_dev, &dev, &dz);
	if (d) {
		__u32 slot = st_hist_slot(delta / 1000);

		if (op == ST_REQ_OP_READ) {
			__sync_fetch_and_add(&d->read_ops, 1);
			__sync_fetch_and_add(&d->read_bytes, nr_bytes);
		} else if (op == ST_REQ_OP_WRITE) {
			__sync_fetch_and_add(&d->write_ops, 1);
			__sync_fetch_and_add(&d->write_bytes, nr_bytes);
		} else {
			__sync_fetch_and_add(&d->other_ops, 1);
		}
		__sync_fetch_and_add(&d->total_ns, delta);
		if (slot < ST_BIO_HIST_SLOTS)
			__sync_fetch_and_add(&d->slots[slot], 1);
	}
	pk.tgid = s->tgid;
	pk.dev = dev;
	__builtin_memcpy(pz.comm, s->comm, sizeof(pz.comm));
	p = st_lookup_or_init(&bio_proc, &pk, &pz);
	if (p) {
		if (op == ST_REQ_OP_READ) {
			__sync_fetch_and_add(&p->read_ops, 1);
			__sync_fetch_and_add(&p->read_bytes, nr_bytes);
		} else if (op == ST_REQ_OP_WRITE) {
			__sync_fetch_and_add(&p->write_ops, 1);
			__sync_fetch_and_add(&p->write_bytes, nr_bytes);
		}
		__sync_fetch_and_add(&p->total_ns, delta);
	}
	st_count_write();	// after the writes above (see maps.bpf.h)
	bpf_map_delete_elem(&bio_inflight, &key);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
