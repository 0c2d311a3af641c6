#!/usr/bin/env bash
# muse users, end to end on a data directory: add (the key printed once, only its digest
# stored), duplicates and bad names refused, list, quota, export, remove (erased for real).
set -euo pipefail
muse="$1"
dir="$(mktemp -d /tmp/muse-users-XXXXXX)"
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

key="$("$muse" users add alice --admin --data-dir "$dir/data" 2>"$dir/err")"
[[ "$key" =~ ^sk-muse-[0-9a-f]{48}$ ]] || fail "add printed '$key'"
grep -q "added alice (admin)" "$dir/err" || fail "add said: $(cat "$dir/err")"
[ "$(stat -c %a "$dir/data")" = 700 ] || fail "the data directory is $(stat -c %a "$dir/data"), not 700"
if grep -rqa "$key" "$dir/data"; then fail "the key itself is stored"; fi

set +e
"$muse" users add alice --data-dir "$dir/data" 2>"$dir/err"; rc=$?
set -e
[ "$rc" = 2 ] && grep -q "already exists" "$dir/err" || fail "duplicate: rc $rc, $(cat "$dir/err")"
set +e
"$muse" users add "bad name" --data-dir "$dir/data" 2>"$dir/err"; rc=$?
set -e
[ "$rc" = 2 ] && grep -q "user name is 1-64" "$dir/err" || fail "bad name: rc $rc, $(cat "$dir/err")"

"$muse" users add bob --data-dir "$dir/data" >/dev/null 2>&1
MUSE_DATA_DIR="$dir/data" "$muse" users list > "$dir/list"
grep -q "^alice .* yes " "$dir/list" && grep -q "^bob .* no " "$dir/list" || fail "list: $(cat "$dir/list")"
[ "$("$muse" users list --json --data-dir "$dir/data" | wc -l)" = 2 ] || fail "list --json"

"$muse" users quota bob --requests-per-minute 12 --tokens-per-day 5000 --data-dir "$dir/data" | grep -q "12 requests per minute, 5000 tokens per day" \
  || fail "quota"
set +e
"$muse" users quota bob --requests-per-minute -3 --data-dir "$dir/data" 2>"$dir/err"; rc=$?
set -e
[ "$rc" = 2 ] || fail "a negative quota: rc $rc"

"$muse" users export bob -o "$dir/bob.json" --data-dir "$dir/data" 2>/dev/null
python3 - "$dir/bob.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["user"]["name"] == "bob", d
assert d["quota"] == {"requests_per_minute": 12, "tokens_per_day": 5000}, d["quota"]
assert [a["action"] for a in d["audit"]] == ["user_add", "quota_set"], d["audit"]
PY

"$muse" users remove bob --data-dir "$dir/data" 2>"$dir/err"
grep -q "erased bob" "$dir/err" || fail "remove said: $(cat "$dir/err")"
"$muse" users list --data-dir "$dir/data" | grep -q "^bob " && fail "bob is still listed"
set +e
"$muse" users export bob --data-dir "$dir/data" 2>"$dir/err"; rc=$?
set -e
[ "$rc" = 2 ] && grep -q "no user named 'bob'" "$dir/err" || fail "export of a removed user: rc $rc"
set +e
"$muse" users frobnicate --data-dir "$dir/data" 2>/dev/null; rc=$?
set -e
[ "$rc" = 2 ] || fail "unknown subcommand: rc $rc"
echo "test-users: ok"
