#!/usr/bin/env bash
# Idempotent set-up of everything smoothtask's build, tests, demo and benchmarks need on a
# Debian 12 machine: system packages, bpffs/tracefs mounts, dockerd and a local test image,
# npm dependencies, the native addon, the BPF objects and the TypeScript build.
#
#   bash scripts/setup.sh            # everything
#   SMOOTHTASK_SKIP_DOCKER=1 ...     # skip dockerd and the test image
#   SMOOTHTASK_SKIP_APT=1 ...        # never call apt (packages installed by other means)
#   SMOOTHTASK_SKIP_BROWSER=1 ...    # no Chromium (the dashboard's browser tests then fail)
#   SMOOTHTASK_SKIP_REDIS=1 ...      # no local redis-server started (the fleet example then needs REDIS_URL)
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[setup] %s\n' "$*" >&2; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# ---------------------------------------------------------------- system packages
PKGS=(clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config cmake make g++ python3
      iproute2 procps util-linux libcap2-bin openssl redis-server)
[ "${SMOOTHTASK_SKIP_DOCKER:-0}" = 1 ] || PKGS+=(docker.io docker-compose busybox-static)
# The dashboard's browser tests drive Debian's Chromium with playwright-core (pinned to its major).
[ "${SMOOTHTASK_SKIP_BROWSER:-0}" = 1 ] || PKGS+=(chromium fonts-liberation)
if [ "${SMOOTHTASK_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# ---------------------------------------------------------------- kernel filesystems
mountpoint -q /sys/fs/bpf 2>/dev/null || { log "mounting bpffs"; $SUDO mount -t bpf bpf /sys/fs/bpf || log "cannot mount bpffs (pinning tests will fail)"; }
if [ ! -d /sys/kernel/tracing/events ]; then
  $SUDO mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || log "cannot mount tracefs"
fi
if [ ! -d /sys/kernel/debug/tracing ] && [ -d /sys/kernel/debug ]; then
  $SUDO mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
fi

# ---------------------------------------------------------------- docker engine + test image
if [ "${SMOOTHTASK_SKIP_DOCKER:-0}" != 1 ]; then
  bash scripts/docker-up.sh
fi

# ---------------------------------------------------------------- redis-server (the fleet)
# Tests start redis-server processes of their own; the fleet example and benchmark use this one.
if [ "${SMOOTHTASK_SKIP_REDIS:-0}" != 1 ]; then
  bash scripts/redis-up.sh
fi

# ---------------------------------------------------------------- npm + builds
if [ ! -d node_modules ] || [ package.json -nt node_modules/.package-lock.json ] || { [ -f package-lock.json ] && [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
  log "npm install"
  # `npm install` (honouring package-lock.json), not `npm ci`: npm 11 writes lock files without
  # other platforms' optional packages (rollup's), which `npm ci` then rejects as out of sync.
  npm install --no-audit --no-fund --loglevel=error
fi
log "building native addon and BPF objects (cmake-js)"
npx --no-install cmake-js compile --out build-native >/tmp/smoothtask-cmake.log 2>&1 || { tail -50 /tmp/smoothtask-cmake.log; exit 1; }
# The prebuilt addon the package ships (prebuilds/, as `npm pack` makes it): test/package
# installs the packed tarball on a machine without the toolchain and loads it from there.
log "building the prebuilt addon (scripts/prebuild.mjs)"
node scripts/prebuild.mjs >/tmp/smoothtask-prebuild.log 2>&1 || { tail -50 /tmp/smoothtask-prebuild.log; exit 1; }
log "building TypeScript (tsup)"
npx --no-install tsup --silent >/tmp/smoothtask-tsup.log 2>&1 || { tail -50 /tmp/smoothtask-tsup.log; exit 1; }
log "ready"
