#!/usr/bin/env bash
# Starts dockerd in the background if no engine answers, and builds the local test image
# smoothtask/busybox:latest from busybox-static (no registry is needed).
set -euo pipefail
log() { printf '[docker-up] %s\n' "$*" >&2; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null; then log "dockerd is not installed"; exit 1; fi
  log "starting dockerd"
  $SUDO sh -c 'nohup dockerd >/var/log/smoothtask-dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start:"; tail -30 /var/log/smoothtask-dockerd.log; exit 1; }
fi

IMAGE=smoothtask/busybox:latest
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "building $IMAGE from busybox-static"
  tmp=$(mktemp -d)
  mkdir -p "$tmp/bin" "$tmp/tmp" "$tmp/etc" "$tmp/out" "$tmp/work"
  cp /bin/busybox "$tmp/bin/busybox"
  for a in $(/bin/busybox --list); do [ -e "$tmp/bin/$a" ] || ln -s busybox "$tmp/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$tmp/etc/passwd"
  echo 'root:x:0:' > "$tmp/etc/group"
  tar -C "$tmp" -c . | docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' - "$IMAGE" >/dev/null
  rm -rf "$tmp"
fi
log "engine up, image $IMAGE ready"
