#!/usr/bin/env bash
# Enforce the module dependency direction (../shared/design/STYLE.md B3, adapted in
# docs/ops.md and docs/architecture.md): each server/<module>/ (with its subfolders) may
# include only the chatdesk headers and the library headers listed for it, and a
# module's _int.h only from its own folder; and the modules' include graph (server/ and
# include/chatdesk/ alike) has no cycle.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A HDRS LIBS
L0="base log clock"
HDRS[base]="$L0"
HDRS[config]="$L0 config config_table"
HDRS[proto]="$L0 proto"
HDRS[auth]="$L0 auth"
HDRS[store]="$L0 config config_table store"
HDRS[bus]="$L0 config config_table store bus"
HDRS[hub]="$L0 config config_table store bus proto hub"
HDRS[timers]="$L0 config config_table store timers"
HDRS[ticket]="$L0 config config_table store timers ticket"
HDRS[route]="$L0 store route"
HDRS[presence]="$L0 config config_table store route presence"
HDRS[kb]="$L0 kb"
HDRS[rules]="$L0 rules"
HDRS[events]="$L0 config config_table store bus hub proto rules events"
HDRS[node]="$L0 config config_table store auth timers ticket node"
HDRS[account]="$L0 config config_table store account"
HDRS[curluv]="$L0 curluv"
HDRS[files]="$L0 config config_table store timers auth curluv files"
HDRS[conv]="$L0 config config_table store proto timers ticket conv"
HDRS[session]="$L0 config config_table store timers bus hub events proto auth ticket rules conv route presence node session"
HDRS[ws]="$L0 config config_table store timers bus hub events proto auth session net ws"
HDRS[http]="$L0 config config_table store timers bus hub events proto auth ticket kb rules account conv route session net http webhook files"
HDRS[net]="$L0 config config_table store timers bus hub events proto auth session net"
HDRS[admin]="$L0 config config_table store auth timers mail admin"
HDRS[webhook]="$L0 config config_table store auth curluv webhook"
HDRS[mail]="$L0 config config_table store timers curluv mail"
HDRS[server]="$L0 config config_table store timers bus hub events proto auth ticket rules conv route presence node session net ws http webhook files mail server"

LIBS[base]=""
LIBS[config]="jansson.h"
LIBS[proto]="jansson.h"
LIBS[auth]="jansson.h openssl argon2.h"
LIBS[store]="hiredis uv.h"
LIBS[bus]="hiredis uv.h"
LIBS[hub]=""
LIBS[timers]="jansson.h"
LIBS[ticket]="jansson.h"
LIBS[node]="jansson.h uv.h"
LIBS[route]="jansson.h"
LIBS[presence]="jansson.h"
LIBS[kb]=""
LIBS[rules]="jansson.h"
LIBS[events]="uv.h"
LIBS[account]="jansson.h"
LIBS[curluv]="curl uv.h"
LIBS[files]="curl jansson.h uv.h"
LIBS[conv]="jansson.h"
LIBS[session]="uv.h"
LIBS[ws]="libwebsockets.h"
LIBS[http]="libwebsockets.h uv.h jansson.h" # jansson: the API's params (http/api/)
LIBS[net]="libwebsockets.h"
LIBS[admin]="hiredis jansson.h"
LIBS[webhook]="curl jansson.h uv.h"
LIBS[mail]="curl jansson.h uv.h gmime"
LIBS[server]="libwebsockets.h uv.h openssl"
FENCED="jansson.h openssl argon2.h hiredis uv.h libwebsockets.h curl gmime"

fail=0
for dir in server/*/; do
  mod=$(basename "$dir")
  [ -n "${HDRS[$mod]+x}" ] || { echo "check-includes: module $mod is not in the table"; fail=1; continue; }
  while IFS= read -r f; do
    while IFS= read -r inc; do
      name=$(sed -E 's/^#include [<"]([^>"]+)[>"].*/\1/' <<<"$inc")
      case $name in
      chatdesk/*)
        h=$(basename "$name" .h)
        [[ " ${HDRS[$mod]} " == *" $h "* ]] || { echo "$f: $mod may not include $name"; fail=1; } ;;
      *_int.h)
        # resolved from the including file's folder, it must stay inside its module
        res=$(realpath -m "$(dirname "$f")/$name")
        [[ -f "$res" && "$res" == "$(realpath "$dir")"/* ]] || { echo "$f: $name is another module's internal header"; fail=1; } ;;
      *)
        top=${name%%/*}
        for fenced in $FENCED; do
          if [ "$top" = "$fenced" ] || [ "$name" = "$fenced" ]; then
            [[ " ${LIBS[$mod]} " == *" $fenced "* ]] || { echo "$f: $mod may not include <$name>"; fail=1; }
          fi
        done ;;
      esac
    done < <(grep -E '^#include ' "$f" || true)
  done < <(find "$dir" -name '*.[ch]' | sort)
done
# No include cycles between modules: an edge A -> B for each chatdesk/B.h that a file of
# server/A/ or include/chatdesk/A.h includes (log, clock -> base; config_table -> config).
mod_of() {
  case $1 in
  log | clock) echo base ;;
  config_table) echo config ;;
  *) echo "$1" ;;
  esac
}
edges=$(
  for f in $(find server -name '*.[ch]' ! -path 'server/main.c') include/chatdesk/*.h; do
    case $f in
    server/*) from=$(cut -d/ -f2 <<<"$f") ;;
    *) from=$(mod_of "$(basename "$f" .h)") ;;
    esac
    grep -oE '^#include "chatdesk/[a-z_]+\.h"' "$f" | sed -E 's/.*chatdesk\/([a-z_]+)\.h"/\1/' |
      while read -r h; do
        to=$(mod_of "$h")
        [ "$to" = "$from" ] || echo "$from $to"
      done
  done | sort -u
)
if ! tsort <<<"$edges" >/dev/null 2>/tmp/check-includes.$$; then
  echo "check-includes: the modules' include graph has a cycle:"
  grep -v '^tsort: -: input contains a loop:' /tmp/check-includes.$$ | sed 's/^tsort: /  /'
  fail=1
fi
rm -f /tmp/check-includes.$$
# Public headers: only chatdesk/ headers and libc, never a fenced library.
for f in include/chatdesk/*.h; do
  if grep -E '^#include <(jansson|openssl|argon2|hiredis|uv|libwebsockets|curl|gmime)' "$f"; then
    echo "$f: public headers must not include library headers"; fail=1
  fi
done
[ $fail -eq 0 ] && echo "check-includes: ok"
exit $fail
