#!/usr/bin/env bash
# Every global symbol a module library defines starts with cd_ (jansson's
# check-exports idea): file-local helpers must be static.
set -euo pipefail
build=${1:-build}
fail=0
for lib in "$build"/libcd_*.a; do
  bad=$(nm -g --defined-only "$lib" 2>/dev/null | awk 'NF==3 {print $3}' | grep -v '^cd_' | grep -vE '^__(odr_)?asan|^__ubsan|^__sancov' || true)
  if [ -n "$bad" ]; then
    echo "$lib exports symbols without the cd_ prefix:"; echo "$bad" | sed 's/^/  /'; fail=1
  fi
done
[ $fail -eq 0 ] && echo "check-symbols: ok"
exit $fail
