// Memory of record batches kept for reuse (consumers created with `reuse`, see consumer.h).
//
// A steady stream of batches allocated fresh and freed at GC touches new pages for every
// batch (a page fault per 4 KiB) and gives them back to the kernel later from another thread
// (TLB shootdowns on the cores that ran the consumer): most of what delivering a batch to JS
// cost (docs/ebpf-datapath.md). A reusing consumer takes its batches' memory from this pool;
// JS hands each batch back as soon as it is consumed (its ArrayBuffers are detached then), so
// the same warm blocks circulate. Process-wide, bounded (kMaxPooledBytes); thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace smoothtask::batchpool {

// At least `bytes` bytes (uninitialised), from the pool when a block fits. `*cap` is the
// block's real size, to give back with it. Throws std::bad_alloc.
uint8_t* Take(size_t bytes, size_t* cap);
// Back to the pool (or freed, beyond the bound).
void Give(uint8_t* p, size_t cap);
// Bytes held by the pool (tests, stats).
size_t PooledBytes();

}  // namespace smoothtask::batchpool
