#!/usr/bin/env bash
# tests/load/bench.sh — the benchmark set behind docs/performance.md. Each group runs in a
# fresh environment (tests/load/run.sh: private Redis with AOF + 2 nodes) and appends its
# JSON lines to the output file. Before each run it waits (at most 3 min) for the machine
# to be quiet, because other work on a shared 2-core box skews every figure; each JSON
# line records how much CPU was "not ours" during its window anyway.
#
#   tests/load/bench.sh [--out FILE] [--only idle|chat|always|fanout|storm]... [--quick]
#
# --quick runs each group at a small scale (a check that the set still works).
# QUIET_PCT (default 15): the machine's busy percentage that counts as quiet.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=/tmp/chatdesk-bench.jsonl quick=0
only=()
while [ $# -gt 0 ]; do
    case $1 in
    --out) out=$2; shift 2 ;;
    --only) only+=("$2"); shift 2 ;;
    --quick) quick=1; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
want() { [ ${#only[@]} = 0 ] && return 0; local g; for g in "${only[@]}"; do [ "$g" = "$1" ] && return 0; done; return 1; }

# busy fraction of the machine over 2 s, in percent
busy_pct() {
    local a b
    read -r _ a1 a2 a3 a4 a5 a6 a7 a8 _ </proc/stat
    sleep 2
    read -r _ b1 b2 b3 b4 b5 b6 b7 b8 _ </proc/stat
    a=$((a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8)); b=$((b1 + b2 + b3 + b4 + b5 + b6 + b7 + b8))
    local idle=$(((b4 + b5) - (a4 + a5)))
    echo $((100 - 100 * idle / (b - a)))
}
wait_quiet() {
    local t0=$SECONDS p
    while :; do
        p=$(busy_pct)
        [ "$p" -le "${QUIET_PCT:-15}" ] && return 0
        if [ $((SECONDS - t0)) -ge 180 ]; then
            echo "bench.sh: machine still ${p}% busy after 3 min; running anyway" >&2
            return 0
        fi
        echo "bench.sh: machine ${p}% busy, waiting" >&2
    done
}

run() { # label run.sh-args...
    local label=$1
    shift
    wait_quiet
    echo "=== $label" >&2
    "$here/run.sh" --json "$out" "$@"
}

if [ $quick = 1 ]; then
    IDLE=2000 RATES="1000 2000" FSYNC_RATES="1000" FAN="--agents 4 --agent-conns 25" STORM=2000 DUR=3
else
    IDLE=38000 RATES="5000 10000 15000 20000" FSYNC_RATES="5000 10000 15000" FAN="--agents 20 --agent-conns 50" STORM=19000 DUR=10
fi

rc=0
if want idle; then
    # 19,000 per node: each node has a 20,000-file limit here
    run idle -- idle --conns "$IDLE" --duration 5 --tag "idle-$IDLE" || rc=1
fi
if want chat; then
    # one fresh environment per rate, each after a quiet check
    for r in $RATES; do
        run "chat-everysec-$r" --fsync everysec -- chat --visitors 1000 --agents 20 --rate "$r" --warmup 2 \
            --duration "$DUR" --drain 10 --tag "chat-everysec-$r" || rc=1
    done
fi
if want always; then
    for r in $FSYNC_RATES; do
        run "chat-always-$r" --fsync always -- chat --visitors 1000 --agents 20 --rate "$r" --warmup 2 \
            --duration "$DUR" --drain 10 --tag "chat-always-$r" || rc=1
    done
fi
if want fanout; then
    # shellcheck disable=SC2086
    run fanout-50 -- fanout $FAN --visitors 4 --rate 50 --warmup 2 --duration "$DUR" --tag fanout-50 || rc=1
    # shellcheck disable=SC2086
    run fanout-100 -- fanout $FAN --visitors 4 --rate 100 --warmup 2 --duration "$DUR" --tag fanout-100 || rc=1
fi
if want storm; then
    run storm -- storm --conns "$STORM" --jitter 2000 --duration 30 --tag "storm-$STORM-jitter2s" || rc=1
    run storm -- storm --conns "$STORM" --jitter 0 --duration 30 --tag "storm-$STORM-nojitter" || rc=1
fi

echo "bench.sh: results in $out" >&2
python3 - "$out" <<'EOF' || true
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith('{')]
for r in rows:
    c = r.get('cpu_s', {})
    base = f"{r.get('tag') or r['scenario']:<24} ok={str(r['ok']).lower():<5} lost={r['lost']} not_ours={c.get('not_ours', '-')}"
    if r['scenario'] == 'idle':
        print(f"{base} conns={r['conns_open']} rss/conn={r.get('rss_bytes_per_conn')} B connect={r.get('connect_rate')}/s")
    elif r['scenario'] == 'chat':
        l = r['lat_us']
        print(f"{base} persisted={r['persisted_per_s']}/s p50={l['p50']}us p99={l['p99']}us p99.9={l['p999']}us "
              f"node={r.get('node_cpu_us_per_msg')}us redis={r.get('redis_cpu_us_per_msg')}us per msg")
    elif r['scenario'] == 'fanout':
        print(f"{base} deliveries={r['deliveries_per_s']}/s completion p99={r['completion_us']['p99']}us")
    elif r['scenario'] == 'storm':
        print(f"{base} resumed={r['resumed']}/{r['conns']} in {r['storm_s']}s back p99={r['back_ms']['p99']}ms")
EOF
exit $rc
