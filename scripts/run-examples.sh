#!/usr/bin/env bash
# Runs every example the way a user would (through the package's own exports, built in dist/),
# each with a time limit. An example may read SMOOTHTASK_EXAMPLE_SECONDS to keep CI short.
set -euo pipefail
cd "$(dirname "$0")/.."
export SMOOTHTASK_EXAMPLE_SECONDS=${SMOOTHTASK_EXAMPLE_SECONDS:-3}
# examples/tsconfig.json has no path mapping: `smoothtask/*` resolves through the package's
# "exports" to dist/, as in a user's project (tsx reads the mapping of the tsconfig it is given).
export TSX_TSCONFIG_PATH=examples/tsconfig.json
[ -f dist/index.js ] || { echo "dist/ is missing: build it with \`npx tsup\` (scripts/setup.sh does)"; exit 1; }
printf -- '---- type-check of the examples against dist/ (tsc -p examples)\n'
npx --no-install tsc -p examples || exit 1
fail=0
for f in examples/*.ts; do
  printf '\n---- %s\n' "$f"
  if ! timeout 180 node --import tsx "$f" </dev/null; then echo "FAILED: $f"; fail=1; fi
done
exit $fail
