#!/usr/bin/env bash
# tests/load/smoke.sh LOAD_BIN CHATDESKD_BIN — the `load` ctest: every scenario for about
# 3 s at a small scale against a private Redis and two nodes (tests/load/run.sh).
# Passes when each run exits 0 and its JSON line reports "lost":0. Timings are reported,
# never asserted.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CHATDESK_LOAD=${1:?usage: smoke.sh LOAD_BIN CHATDESKD_BIN}
export CHATDESKD=${2:?usage: smoke.sh LOAD_BIN CHATDESKD_BIN}
json=$(mktemp /tmp/cd-load-smoke.XXXXXX)
trap 'rm -f "$json"' EXIT

"$here/run.sh" --nodes 2 --json "$json" \
    -- idle --conns 400 --duration 2 --tag smoke \
    -- chat --visitors 40 --agents 4 --rate 400 --warmup 0.5 --duration 2.5 --drain 3 --tag smoke \
    -- fanout --agents 4 --agent-conns 5 --visitors 2 --rate 40 --warmup 0.5 --duration 2.5 --drain 3 --tag smoke \
    -- storm --conns 200 --jitter 500 --duration 10 --tag smoke
rc=$?

n=0 bad=0
while IFS= read -r line; do
    n=$((n + 1))
    case $line in
    *'"ok":true'*'"lost":0,'*) ;;
    *) echo "smoke: not clean: $line" >&2; bad=1 ;;
    esac
done <"$json"
if [ "$n" != 4 ]; then
    echo "smoke: expected 4 JSON lines, got $n" >&2
    bad=1
fi
if [ $rc != 0 ] || [ $bad != 0 ]; then
    echo "smoke: FAILED (run.sh exit $rc)" >&2
    exit 1
fi
echo "smoke: 4 scenarios passed"
