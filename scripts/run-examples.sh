#!/usr/bin/env bash
# Runs every example the way a user would (through the package's own exports, built in dist/),
# each with a time limit. An example may read SMOOTHTASK_EXAMPLE_SECONDS to keep CI short.
set -euo pipefail
cd "$(dirname "$0")/.."
export SMOOTHTASK_EXAMPLE_SECONDS=${SMOOTHTASK_EXAMPLE_SECONDS:-3}
fail=0
for f in examples/*.ts; do
  printf '\n---- %s\n' "$f"
  if ! timeout 180 node --import tsx "$f" </dev/null; then echo "FAILED: $f"; fail=1; fi
done
exit $fail
