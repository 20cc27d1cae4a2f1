#!/usr/bin/env bash
# No function over 120 lines (../shared/design/STYLE.md B10: the clang-tidy threshold),
# signature to closing brace, in server/ and include/ (server/admin/ is not held to it
# yet). Relies on the clang-format layout: a definition's braces at column 0.
set -euo pipefail
cd "$(dirname "$0")/.."
MAX=${1:-120}
find server include -name '*.[ch]' ! -path 'server/admin/*' | sort | xargs awk -v max="$MAX" '
  FNR == 1 { start = 0; sig = 0 }
  /^[A-Za-z_]/ { sig = FNR; name = $0 }
  /^\{/ { start = sig }
  /^\}/ && start {
    n = FNR - start + 1
    if (n > max) { printf "%s:%d: %d lines (over %d): %s\n", FILENAME, start, n, max, name; bad = 1 }
    start = 0
  }
  END { if (bad) exit 1; print "check-functions: ok" }'
