#!/usr/bin/env bash
# Starts a local redis-server for the fleet's example and benchmark if none answers on
# 127.0.0.1:6379: loopback only, no persistence, `maxmemory-policy noeviction` (BullMQ needs it).
# Debian's package does not start one in a container without systemd; tests start their own.
set -euo pipefail
log() { printf '[redis-up] %s\n' "$*" >&2; }
if ! command -v redis-server >/dev/null; then log "redis-server is not installed"; exit 1; fi
if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "redis-server answers on 127.0.0.1:6379"
  exit 0
fi
mkdir -p /tmp/smoothtask-redis
redis-server --port 6379 --bind 127.0.0.1 --dir /tmp/smoothtask-redis --save '' --appendonly no \
  --maxmemory-policy noeviction --daemonize yes --logfile /tmp/smoothtask-redis/redis.log
for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { log "redis-server did not start:"; tail -20 /tmp/smoothtask-redis/redis.log; exit 1; }
log "redis-server up on 127.0.0.1:6379"
