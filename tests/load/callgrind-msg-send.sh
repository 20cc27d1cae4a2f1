#!/usr/bin/env bash
# tests/load/callgrind-msg-send.sh — instructions per message of the msg_send function
# (docs/performance.md): a private Redis under `valgrind --tool=callgrind`, the function
# library loaded by `chatdeskd admin`, one conversation, then redis-benchmark sending
# msg_send with unique client_msg_ids; WARM calls first (so the dedupe generations are
# full, as in any conversation past a few hundred messages), then N measured calls.
# Instruction counts are deterministic, unlike CPU time on a shared machine.
#
#   tests/load/callgrind-msg-send.sh [--chatdeskd PATH] [--batch B] [-n N] [--warm W] [--top K]
#
# Prints instructions per message for the whole process during the measured calls, and
# the inclusive figure of the Redis functions named in FUNCS (callgrind_annotate).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=$here/../../build/chatdeskd batch=1 n=1000 warm=300 top=0
while [ $# -gt 0 ]; do
    case $1 in
    --chatdeskd) bin=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    -n) n=$2; shift 2 ;;
    --warm) warm=$2; shift 2 ;;
    --top) top=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "callgrind-msg-send.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
dir=$(mktemp -d /tmp/cd-cg.XXXXXX)
port=$((20000 + RANDOM % 20000))
valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" redis-server --port "$port" --save '' \
    --appendonly no --dir "$dir" >"$dir/redis.log" 2>&1 &
vg=$!
trap 'kill $vg 2>/dev/null; wait $vg 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
for _ in $(seq 1 300); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
done
cli() { redis-cli -p "$port" "$@"; }
"$bin" --redis "redis://127.0.0.1:$port/0" admin site-add --key s1 --name S1 --origin http://x >/dev/null
lib=$(cli FUNCTION LIST | grep -m1 -o 'cd_[0-9a-f]\{8\}')
P='cd:' cid='c0001.s1' now=$(($(date +%s) * 1000))
key="$P{s:s1}:conv:$cid"
cli FCALL "${lib}_conv_start" 2 "$P{s:s1}:site" "$key" "$P" s1 v1 "$cid" ep01 "$now" Vis '' '' '' '' \
    'hello' m0 cm0 10000 m1 en '*' m2 '' >/dev/null
body=$(printf 'x%.0s' $(seq 1 100))
args=(FCALL "${lib}_msg_send" "$batch")
for _ in $(seq 1 "$batch"); do args+=("$key"); done
args+=("$P")
for _ in $(seq 1 "$batch"); do
    args+=("$cid" visitor v1 Vis "__rand_int__" "$body" 0 m_0123456789abcdef "$now" 10000 '' '')
done
bench() { redis-benchmark -p "$port" -c 1 -r 1000000000 -n "$1" "${args[@]}" >/dev/null; }
bench "$warm"
callgrind_control -z "$vg" >/dev/null
bench "$n"
callgrind_control -d "$vg" >/dev/null
seq_now=$(cli HGET "$key" last_seq)
out=$(ls -t "$dir"/cg.out.* | head -1)
msgs=$((n * batch))
total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
[ -n "${KEEP:-}" ] && echo "profile: $out"
echo "batch $batch, $msgs messages measured (last_seq $seq_now): $((total / msgs)) instructions per message"
FUNCS=${FUNCS:-'processCommand fcallCommand luaCallFunction hgetCommand hsetnxCommand hmgetCommand xaddCommand hsetCommand publishCommand setCommand'}
callgrind_annotate --inclusive=yes "$out" 2>/dev/null >"$dir/incl.txt"
for f in $FUNCS; do
    awk -v f="$f" -v m="$msgs" '$0 ~ ("[:* ]" f " ") || $0 ~ (":" f "$") { gsub(",", "", $1); printf "  %-18s %8d\n", f, $1 / m; exit }' "$dir/incl.txt"
done
if [ "$top" -gt 0 ]; then head -n $((top + 25)) "$dir/incl.txt" | tail -n "$top"; fi
