#!/usr/bin/env bash
# Sanitizer job: builds the addon with ASan + UBSan into build-asan/ and runs the native tests
# and a leak check against it (docs/ebpf-loader.md, "Native safety").
#
#   bash scripts/sanitize.sh            # build (incremental) + run
#   SANITIZE_SKIP_BUILD=1 bash scripts/sanitize.sh
#   SANITIZE_TESTS="test/ebpf/maps.test.ts" bash scripts/sanitize.sh
#
# Node is not instrumented, so the ASan runtime is LD_PRELOADed into node. Phase 1 runs the
# native tests with every ASan/UBSan check but leak detection: the tests also start processes
# that are not ours (cc, clang, python3, bpftool), which inherit the preload and would report
# their own leaks. Phase 2 runs scripts/sanitize-leaks.ts, which drives every native part
# (loads, maps, pins, ring and perf buffers, attach, workers) in one node process, with
# LeakSanitizer on and scripts/lsan-suppressions.txt naming Node's and V8's own leaks.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${SANITIZE_BUILD_DIR:-build-asan}
t0=$SECONDS

if [ "${SANITIZE_SKIP_BUILD:-0}" != 1 ]; then
  echo "sanitize: building $build (ASan + UBSan)"
  npx --no-install cmake-js compile --out "$build" --CDSMOOTHTASK_SANITIZE=ON >/tmp/smoothtask-asan-build.log 2>&1 ||
    { tail -40 /tmp/smoothtask-asan-build.log; exit 1; }
fi
addon=$root/$build/Release/smoothtask.node
[ -f "$addon" ] || { echo "sanitize: $addon not built" >&2; exit 1; }
# not grep -q: it exits at the first match, nm then dies of SIGPIPE and pipefail fails the check
if ! nm -D "$addon" | grep __asan_ >/dev/null; then echo "sanitize: $addon is not an ASan build" >&2; exit 1; fi

asan=$(gcc -print-file-name=libasan.so)
[ -f "$asan" ] || { echo "sanitize: no libasan.so ($asan); install gcc's libasan" >&2; exit 1; }

export SMOOTHTASK_ADDON=$addon
export SMOOTHTASK_BPF_DIR=$root/$build/bpf
# halt on the first report; huge allocations fail as in production (bad_alloc), not abort;
# a small quarantine keeps RSS near production (loader-robust bounds RSS growth over 1,000 loads)
common="abort_on_error=1:halt_on_error=1:allocator_may_return_null=1:detect_odr_violation=0:quarantine_size_mb=8"
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# use_tls=0: gcc 12's LeakSanitizer crashes scanning the TLS of this process ("Tracer caught
# signal 11"); nothing of the addon's heap is held only in thread-locals
export LSAN_OPTIONS=use_tls=0:suppressions=$root/scripts/lsan-suppressions.txt:print_suppressions=0

tests=${SANITIZE_TESTS:-"test/ebpf/loader.test.ts test/ebpf/loader-robust.test.ts test/ebpf/maps.test.ts test/ebpf/maps-native-args.test.ts test/ebpf/ringbuf.test.ts test/ebpf/perfbuf.test.ts test/ebpf/attach.test.ts test/ebpf/worker-terminate.test.ts test/ebpf/precheck.test.ts"}
echo "sanitize: phase 1: native tests under ASan + UBSan ($tests)"
# shellcheck disable=SC2086
SMOOTHTASK_WORKER_ROUNDS=${SMOOTHTASK_WORKER_ROUNDS:-2} ASAN_OPTIONS="detect_leaks=0:$common" LD_PRELOAD="$asan" \
  npx --no-install vitest run $tests
t1=$SECONDS

echo "sanitize: phase 2: leak check (LeakSanitizer)"
ASAN_OPTIONS="detect_leaks=1:$common" LD_PRELOAD="$asan" node --import tsx "$root/scripts/sanitize-leaks.ts"
echo "sanitize: passed (tests $((t1 - t0))s, leak check $((SECONDS - t1))s, total $((SECONDS - t0))s)"
