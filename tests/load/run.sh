#!/usr/bin/env bash
# tests/load/run.sh — start a private Redis and N chatdeskd nodes on loopback, run one or
# more chatdesk-load scenarios against them, stop everything (by PID) and print the
# results. Every process it starts is stopped on exit, also on failure or Ctrl-C.
#
#   tests/load/run.sh [env options] -- SCENARIO [chatdesk-load options] [-- SCENARIO ...]
#
# env options:
#   --nodes N            chatdeskd nodes (default 2)
#   --fsync MODE         Redis appendfsync: everysec (default), always or no
#   --redis-tcp          nodes reach Redis over TCP 127.0.0.1 (default: a unix socket)
#   --replica            also a replica of that Redis (TCP; for --node-arg --ack-replicas=1);
#                        its CPU is not in the figures
#   --redis-cluster N    a Redis Cluster of N primaries (no replicas) on loopback instead,
#                        nodes on redis+cluster://; after each scenario one line per
#                        primary: its CPU over the whole scenario (set-up included), the
#                        sites it holds and its FCALLs (the generator's Redis CPU is -1)
#   --node-arg ARG       extra chatdeskd flag (repeat; e.g. --node-arg --outq-max-frames=4096)
#   --json FILE          append each scenario's JSON line to FILE
#   --keep               keep the temp dir (logs, AOF)
#   --webhook-sink       start a loopback HTTP receiver (answers 204), allow it in the nodes'
#                        webhook_allow_hosts and pass --webhook URL to each scenario
#   --redis-stats FILE   after the scenarios, write Redis INFO commandstats, cpu, memory and
#                        DBSIZE to FILE (calls and usec per command; used_memory)
#   --redis-profile      with --redis-stats: SLOWLOG records every call during the run and
#                        FILE gets the time per function (it costs Redis CPU and memory: not
#                        for figures you quote)
# environment: CHATDESKD (default build/chatdeskd), CHATDESK_LOAD (default
# build/tests/load/chatdesk-load), relative to the repository root.
#
# The nodes get benchmark limits (rate limits and per-IP cap raised, larger outbound
# queue); everything else is the default configuration.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
abspath() { case $1 in /*) echo "$1" ;; *) echo "$ROOT/$1" ;; esac; }
CHATDESKD=$(abspath "${CHATDESKD:-build/chatdeskd}")
LOAD=$(abspath "${CHATDESK_LOAD:-build/tests/load/chatdesk-load}")

nodes=2 fsync=everysec redis_tcp=0 replica=0 cluster=0 keep=0 json_out="" redis_stats="" redis_profile=0 webhook_sink=0
node_args=()
while [ $# -gt 0 ]; do
    case $1 in
    --nodes) nodes=$2; shift 2 ;;
    --fsync) fsync=$2; shift 2 ;;
    --redis-tcp) redis_tcp=1; shift ;;
    --replica) replica=1; redis_tcp=1; shift ;;
    --redis-cluster) cluster=$2; shift 2 ;;
    --node-arg) node_args+=("$2"); shift 2 ;;
    --json) json_out=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --redis-stats) redis_stats=$2; shift 2 ;;
    --webhook-sink) webhook_sink=1; shift ;;
    --redis-profile) redis_profile=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ $# -gt 0 ] || { echo "run.sh: no scenario (… -- chat --rate 1000)" >&2; exit 2; }
for b in "$CHATDESKD" "$LOAD"; do
    [ -x "$b" ] || { echo "run.sh: $b is not built" >&2; exit 2; }
done

TMP=$(mktemp -d /tmp/cd-load.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$p" 2>/dev/null
    done
    if [ "$keep" = 1 ]; then echo "run.sh: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- Redis (AOF on, as docs/ops.md recommends) ----
redis_args=(--dir "$TMP" --appendonly yes --appendfsync "$fsync" --save '' --daemonize no
    --unixsocket "$TMP/redis.sock" --unixsocketperm 700 --logfile "$TMP/redis.log"
    --maxmemory-policy noeviction --aof-use-rdb-preamble yes)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# redis-server on a free TCP port with the given arguments: sets rport and rpid (the port
# is picked by the kernel, then handed to redis: a tiny race, retried)
start_tcp_redis() {
    for _ in 1 2 3 4 5; do
        rport=$(free_port)
        redis-server --port "$rport" --bind 127.0.0.1 "$@" &
        rpid=$!
        sleep 0.3
        kill -0 "$rpid" 2>/dev/null && break
    done
}
cluster_ports=() cluster_pids=()
if [ "$cluster" -gt 0 ]; then
    for i in $(seq "$cluster"); do
        mkdir -p "$TMP/c$i"
        start_tcp_redis --dir "$TMP/c$i" --appendonly yes --appendfsync "$fsync" --save '' --daemonize no \
            --logfile "$TMP/c$i/redis.log" --maxmemory-policy noeviction --aof-use-rdb-preamble yes \
            --cluster-enabled yes --cluster-config-file "$TMP/c$i/nodes.conf" \
            --unixsocket "$TMP/c$i.sock" --unixsocketperm 700
        PIDS+=("$rpid")
        cluster_ports+=("$rport")
        cluster_pids+=("$rpid")
    done
    for i in $(seq "$cluster"); do
        for _ in $(seq 200); do redis-cli -s "$TMP/c$i.sock" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
    done
    redis-cli --cluster create $(printf '127.0.0.1:%s ' "${cluster_ports[@]}") --cluster-replicas 0 --cluster-yes \
        >"$TMP/cluster-create.log" 2>&1 || { echo "run.sh: redis-cli --cluster create failed" >&2; cat "$TMP/cluster-create.log" >&2; exit 1; }
    for i in $(seq "$cluster"); do # every primary must see the cluster whole
        for _ in $(seq 200); do redis-cli -s "$TMP/c$i.sock" cluster info | grep -q cluster_state:ok && break; sleep 0.1; done
    done
    REDIS_URL="redis+cluster://$(printf '127.0.0.1:%s,' "${cluster_ports[@]}" | sed 's/,$//')"
    ln -s "$TMP/c1.sock" "$TMP/redis.sock" # stats below read the first primary
elif [ "$redis_tcp" = 1 ]; then
    start_tcp_redis "${redis_args[@]}"
    REDIS_URL="redis://127.0.0.1:$rport/0"
else
    redis-server --port 0 "${redis_args[@]}" &
    rpid=$!
    REDIS_URL="unix:$TMP/redis.sock"
fi
[ "$cluster" -gt 0 ] || PIDS+=("$rpid")
for _ in $(seq 200); do
    redis-cli -s "$TMP/redis.sock" ping 2>/dev/null | grep -q PONG && break
    sleep 0.05
done
redis-cli -s "$TMP/redis.sock" ping 2>/dev/null | grep -q PONG || { echo "run.sh: redis did not start" >&2; cat "$TMP/redis.log" >&2; exit 1; }
if [ "$replica" = 1 ]; then
    primary_port=$rport primary_pid=$rpid
    mkdir -p "$TMP/replica"
    start_tcp_redis --dir "$TMP/replica" --appendonly yes --appendfsync "$fsync" --save '' --daemonize no \
        --logfile "$TMP/replica/redis.log" --replicaof 127.0.0.1 "$primary_port"
    PIDS+=("$rpid")
    for _ in $(seq 200); do redis-cli -p "$rport" info replication | grep -q master_link_status:up && break; sleep 0.1; done
    redis-cli -p "$rport" info replication | grep -q master_link_status:up || { echo "run.sh: the replica did not sync" >&2; exit 1; }
    rpid=$primary_pid
fi

# ---- webhook receiver (a load run's webhooks go here, loopback only) ----
webhook_args=()
if [ "$webhook_sink" = 1 ]; then
    python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(204)
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
' >"$TMP/sink.port" 2>"$TMP/sink.log" &
    PIDS+=($!)
    for _ in $(seq 100); do [ -s "$TMP/sink.port" ] && break; sleep 0.05; done
    sink_port=$(head -1 "$TMP/sink.port")
    [ -n "$sink_port" ] || { echo "run.sh: webhook receiver did not start" >&2; exit 1; }
    node_args+=(--webhook-allow-hosts "127.0.0.1:$sink_port")
    webhook_args=(--webhook "http://127.0.0.1:$sink_port/hook")
fi

# ---- nodes ----
NODE_ARGS=(--bind 127.0.0.1 --port 0 --redis "$REDIS_URL"
    --visitor-rate 100000 --visitor-burst 100000 --agent-rate 100000 --agent-burst 100000
    --max-conns-per-ip 1000000 --outq-max-frames 100000 --outq-max-bytes 268435456
    "${node_args[@]}")
node_flags=() pid_flags=()
for i in $(seq "$nodes"); do
    # the per-address rate of new connections through the environment: a binary that has
    # no such setting (an older build, for a before/after comparison) ignores it
    CHATDESK_CONN_RATE_PER_IP=1000000 CHATDESK_CONN_BURST_PER_IP=1000000 \
        "$CHATDESKD" --node-id "load$i" "${NODE_ARGS[@]}" >"$TMP/node$i.out" 2>"$TMP/node$i.log" &
    npid=$!
    PIDS+=("$npid")
    port=""
    for _ in $(seq 200); do
        port=$(sed -n 's/^chatdeskd listening port=\([0-9]*\).*/\1/p' "$TMP/node$i.out" | head -1)
        [ -n "$port" ] && break
        kill -0 "$npid" 2>/dev/null || break
        sleep 0.05
    done
    [ -n "$port" ] || { echo "run.sh: node $i did not start" >&2; cat "$TMP/node$i.log" >&2; exit 1; }
    for _ in $(seq 200); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        sleep 0.05
    done
    node_flags+=(--node "127.0.0.1:$port")
    pid_flags+=(--pid "$npid")
done

if [ -n "$redis_stats" ] && [ "$redis_profile" = 1 ]; then
    redis-cli -s "$TMP/redis.sock" config set slowlog-log-slower-than 0 >/dev/null
    redis-cli -s "$TMP/redis.sock" config set slowlog-max-len 1000000 >/dev/null
fi

# ---- scenarios ----
rc=0
while [ $# -gt 0 ]; do
    args=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    [ ${#args[@]} -gt 0 ] || continue
    redis_pid_flag=(--redis-pid "$rpid")
    [ "$cluster" -gt 0 ] && redis_pid_flag=()
    before=()
    for i in "${!cluster_pids[@]}"; do
        before+=("$(awk '{print $14 + $15}' "/proc/${cluster_pids[$i]}/stat")")
        redis-cli -s "$TMP/c$((i + 1)).sock" config resetstat >/dev/null
    done
    out=$("$LOAD" "${args[@]}" "${webhook_args[@]}" "${node_flags[@]}" "${pid_flags[@]}" "${redis_pid_flag[@]}" \
        --redis "$REDIS_URL" --chatdeskd "$CHATDESKD")
    r=$?
    printf '%s\n' "$out"
    for i in "${!cluster_pids[@]}"; do
        sock="$TMP/c$((i + 1)).sock"
        ticks=$(($(awk '{print $14 + $15}' "/proc/${cluster_pids[$i]}/stat") - before[i]))
        sites=$(redis-cli -s "$sock" --scan --pattern '*{s:*}:site' | wc -l)
        fcall=$(redis-cli -s "$sock" info commandstats | sed -n 's/^cmdstat_fcall:calls=\([0-9]*\),usec=\([0-9]*\).*/calls \1 usec \2/p')
        echo "redis shard 127.0.0.1:${cluster_ports[$i]}: cpu $(awk -v t="$ticks" -v h="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", t / h}') s, sites $sites, fcall ${fcall:-none}"
    done
    if [ -n "$json_out" ]; then printf '%s\n' "$out" | tail -n 1 >>"$json_out"; fi
    [ $r = 0 ] || rc=$r
    for i in $(seq "$nodes"); do
        kill -0 "${PIDS[$i]}" 2>/dev/null || { echo "run.sh: node $i died" >&2; tail -n 30 "$TMP/node$i.log" >&2; rc=1; }
    done
done
if [ -n "$redis_stats" ]; then
    redis-cli -s "$TMP/redis.sock" info commandstats >"$redis_stats"
    redis-cli -s "$TMP/redis.sock" info cpu >>"$redis_stats"
    redis-cli -s "$TMP/redis.sock" info memory >>"$redis_stats"
    redis-cli -s "$TMP/redis.sock" dbsize >>"$redis_stats"
fi
if [ -n "$redis_stats" ] && [ "$redis_profile" = 1 ]; then
    # SLOWLOG entries: id, time, usec, [command args...]: sum usec per FCALL function
    redis-cli -s "$TMP/redis.sock" --json slowlog get -1 | python3 -c '
import json, sys, collections
tot, n = collections.Counter(), collections.Counter()
for e in json.load(sys.stdin):
    args = e[3]
    name = args[0].lower()
    if name in ("fcall", "fcall_ro") and len(args) > 1:
        name = args[1].split("_", 2)[-1] if args[1].startswith("cd_") else args[1]
    tot[name] += e[2]
    n[name] += 1
print("# time per command or function (SLOWLOG, every call)")
for k, v in tot.most_common(30):
    print(f"{k:<28} calls={n[k]:<8} usec={v:<10} per_call={v / n[k]:.1f}")
' >>"$redis_stats"
fi
if [ $rc != 0 ]; then
    for i in $(seq "$nodes"); do echo "--- node $i log (tail) ---" >&2; tail -n 15 "$TMP/node$i.log" >&2; done
fi
exit $rc
