#!/usr/bin/env bash
# Enforce the module dependency direction (../shared/design/STYLE.md B3, adapted in
# docs/ops.md): each server/<module>/ may include only the chatdesk headers and the
# library headers listed for it, and a module's _int.h only from its own directory.
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
HDRS[ticket]="$L0 ticket"
HDRS[kb]="$L0 kb"
HDRS[rules]="$L0 rules"
HDRS[conv]="$L0 config config_table store proto ticket kb rules conv"
HDRS[session]="$L0 config config_table store bus hub proto auth ticket rules conv session"
HDRS[ws]="$L0 config config_table store bus hub proto auth session ws http"
HDRS[http]="$L0 config config_table store bus hub proto auth ticket rules conv session ws http webhook"
HDRS[admin]="$L0 config config_table store auth admin"
HDRS[webhook]="$L0 config config_table store auth webhook"
HDRS[server]="$L0 config config_table store bus hub proto auth ticket rules conv session ws http webhook server"

LIBS[base]=""
LIBS[config]="jansson.h"
LIBS[proto]="jansson.h"
LIBS[auth]="jansson.h openssl argon2.h"
LIBS[store]="hiredis uv.h"
LIBS[bus]="hiredis uv.h"
LIBS[hub]=""
LIBS[ticket]="jansson.h"
LIBS[kb]=""
LIBS[rules]="jansson.h"
LIBS[conv]="jansson.h"
LIBS[session]="uv.h"
LIBS[ws]="libwebsockets.h"
LIBS[http]="libwebsockets.h uv.h"
LIBS[admin]="hiredis jansson.h"
LIBS[webhook]="curl jansson.h uv.h"
LIBS[server]="libwebsockets.h uv.h"
FENCED="jansson.h openssl argon2.h hiredis uv.h libwebsockets.h curl"

fail=0
for dir in server/*/; do
  mod=$(basename "$dir")
  [ -n "${HDRS[$mod]+x}" ] || { echo "check-includes: module $mod is not in the table"; fail=1; continue; }
  for f in "$dir"*.c "$dir"*.h; do
    [ -f "$f" ] || continue
    while IFS= read -r inc; do
      name=$(sed -E 's/^#include [<"]([^>"]+)[>"].*/\1/' <<<"$inc")
      case $name in
      chatdesk/*)
        h=$(basename "$name" .h)
        [[ " ${HDRS[$mod]} " == *" $h "* ]] || { echo "$f: $mod may not include $name"; fail=1; } ;;
      *_int.h)
        [ -f "$dir$name" ] || { echo "$f: $name is another module's internal header"; fail=1; } ;;
      *)
        top=${name%%/*}
        for fenced in $FENCED; do
          if [ "$top" = "$fenced" ] || [ "$name" = "$fenced" ]; then
            [[ " ${LIBS[$mod]} " == *" $fenced "* ]] || { echo "$f: $mod may not include <$name>"; fail=1; }
          fi
        done ;;
      esac
    done < <(grep -E '^#include ' "$f" || true)
  done
done
# Public headers: only chatdesk/ headers and libc, never a fenced library.
for f in include/chatdesk/*.h; do
  if grep -E '^#include <(jansson|openssl|argon2|hiredis|uv|libwebsockets|curl)' "$f"; then
    echo "$f: public headers must not include library headers"; fail=1
  fi
done
[ $fail -eq 0 ] && echo "check-includes: ok"
exit $fail
