#!/usr/bin/env bash
# The README's two commands:
#   npm run demo   -> set everything up, then run the live demo (examples/demo.ts)
#   npm test       -> set everything up, then run the whole test suite
# Extra arguments go to vitest (npm test -- test/ebpf) or to the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-test}; shift || true
[ "$(id -u)" -eq 0 ] || echo "[quickstart] note: eBPF and Docker need root (or CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN and the docker group)" >&2
bash scripts/setup.sh
case "$mode" in
  demo)
    # Against the built package, as a user's code (examples/tsconfig.json: no path mapping).
    TSX_TSCONFIG_PATH=examples/tsconfig.json exec node --import tsx examples/demo.ts "$@" ;;
  test)
    mkdir -p build-native
    set +e
    npx --no-install vitest run --reporter=default --reporter=json --outputFile.json=build-native/vitest.json "$@"
    rc=$?
    set -e
    # A plain closing line that any CI can read.
    node -e '
      const r = JSON.parse(require("fs").readFileSync("build-native/vitest.json", "utf8"));
      console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
    ' || true
    exit $rc ;;
  *) echo "usage: quickstart.sh demo|test" >&2; exit 2 ;;
esac
