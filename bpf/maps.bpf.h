// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Map helpers: lookup-or-insert and counters.
#ifndef __ST_MAPS_BPF_H
#define __ST_MAPS_BPF_H

#include <bpf/bpf_helpers.h>

// Returns the value for key, inserting init first when absent (NULL if the map is full).
static __always_inline void *st_lookup_or_init(void *map, const void *key, const void *init)
{
	void *val;
	long err;

	val = bpf_map_lookup_elem(map, key);
	if (val)
		return val;
	err = bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	if (err && err != -17 /* EEXIST: another CPU won the race */)
		return 0;
	return bpf_map_lookup_elem(map, key);
}

// A counter in a one-slot array map named `map`, bumped by `fn()` (an atomic add: programs on
// other CPUs bump it too).
#define ST_DECLARE_COUNTER(map, fn)                         \
	struct {                                            \
		__uint(type, BPF_MAP_TYPE_ARRAY);           \
		__uint(max_entries, 1);                     \
		__type(key, __u32);                         \
		__type(value, __u64);                       \
	} map SEC(".maps");                                 \
	static __always_inline void fn(void)                \
	{                                                   \
		__u32 zero = 0;                             \
		__u64 *c = bpf_map_lookup_elem(&map, &zero); \
		if (c)                                      \
			__sync_fetch_and_add(c, 1);         \
	}

// Ring buffer drop counter: a one-slot array map named st_drops must exist in the object
// using st_count_drop (defined by ST_DECLARE_DROPS()).
#define ST_DECLARE_DROPS() ST_DECLARE_COUNTER(st_drops, st_count_drop)

// Write counter: a one-slot array map named st_writes, bumped by st_count_write() after a
// program wrote the maps a reader reads whole. The reader reads those maps again only when the
// counter moved since its last read, and reuses what it read while it stands still (the bump
// comes after the writes: a read that sees the old count misses at most writes whose bump the
// next read sees).
#define ST_DECLARE_WRITES() ST_DECLARE_COUNTER(st_writes, st_count_write)

#endif /* __ST_MAPS_BPF_H */
