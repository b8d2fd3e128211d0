// ELF pre-check of bytes not seen before, in a process of its own.
//
// libbpf 1.1 crashes on some malformed ELF files while opening them (found by the fuzz
// tests: out-of-range section and symbol indexes). So bytes not seen before are first opened
// in another process: a crash there costs that process, not the Node process. That process is
// the helper `smoothtask-precheck` (native/helper/precheck.cc), built beside smoothtask.node,
// spawned once and kept for the next objects (one per concurrent check). Where it is missing or
// cannot be started (or SMOOTHTASK_PRECHECK=fork), a forked child of this process does the same
// work: glibc's fork keeps malloc usable in the child; the child calls only libbpf/libelf and
// _exit. A fork copies the page tables of the whole Node process (milliseconds at 100+ MiB), the
// helper costs one socket round trip.
//
// Only the object's own work may fail it. The child parses memory and does no I/O, so a child
// that sleeps (state S/D) with its CPU time standing still is stuck on a lock it inherited from
// another thread at fork() (a sanitizer runtime's allocator lock is one), not parsing: that is
// `kStalled`, and the load goes on without the pre-check (the in-process validator already ran)
// as when fork() fails. In the sanitizer build a child can also spin on such a lock (see
// kSpinIsStalledMs). Without a caller's timeout, a slow child on a loaded host is waited
// for: the object is judged hung only after 10 s of the child's own CPU time (`kTimedOut`),
// and a child that neither finishes nor burns CPU within 120 s of wall time is `kStalled`.
#pragma once

#include <cstdint>
#include <vector>

namespace smoothtask::load {

enum class PreCheck { kOk, kRejected, kCrashed, kTimedOut, kStalled, kUnavailable };

// Opens `elf` with libbpf in the helper (or, without one, a forked child) and judges the
// outcome (see above). `timeoutMs` 0: no caller's deadline. On kCrashed, `*signalOut` is the
// signal that ended the process. `*inHelper` (when given): whether the helper did the check.
PreCheck CheckOpen(const std::vector<uint8_t>& elf, double timeoutMs, int* signalOut, bool* inHelper = nullptr);

// The same in a forked child, always.
PreCheck ForkCheckOpen(const std::vector<uint8_t>& elf, double timeoutMs, int* signalOut);

}  // namespace smoothtask::load
