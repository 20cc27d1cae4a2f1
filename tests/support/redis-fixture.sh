#!/usr/bin/env bash
# redis-fixture.sh start|stop DIR — a private redis-server on DIR/redis.sock (no TCP),
# AOF on, stopped by the PID it wrote.
set -euo pipefail
cmd=$1 dir=$2
case $cmd in
start)
  "$0" stop "$dir" || true
  mkdir -p "$dir"
  redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 \
    --dir "$dir" --appendonly yes --appendfsync everysec --save '' \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  for _ in $(seq 100); do
    redis-cli -s "$dir/redis.sock" ping 2>/dev/null | grep -q PONG && exit 0
    sleep 0.05
  done
  echo "redis-server did not start; see $dir/redis.log" >&2; exit 1 ;;
stop)
  [ -f "$dir/redis.pid" ] || exit 0
  pid=$(cat "$dir/redis.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/redis.pid" ;;
esac
