#!/usr/bin/env bash
# Smoke checks of muse-bench on a tiny generated model: every test prints its JSON line with a
# positive speed, --vs-raw reports each round and a summary per B, and bad options fail with
# exit 2 and the option's name. (Speed itself is measured in bench/, not here.)
# usage: test-bench.sh MUSE_BENCH MUSE_MKMODEL WORK_DIR
set -u
bench="$1"
mkmodel="$2"
work="$3"
rm -rf "$work" && mkdir -p "$work"
fails=0
pass=0
check() {  # check NAME CONDITION...
  local name="$1"; shift
  if "$@"; then pass=$((pass + 1)); else echo "FAIL: $name"; fails=$((fails + 1)); fi
}
# positive NAME FILE AWK-FILTER KEY: the line matching the filter has KEY > 0
positive() {
  awk -v key="\"$4\": *[0-9.eE+-]+" "$3"' { if (match($0, key)) { v = substr($0, RSTART, RLENGTH); sub(/^[^:]*: */, "", v); if (v + 0 > 0) ok = 1 } } END { exit !ok }' "$2"
}

model="$work/tiny-qwen.gguf"
"$mkmodel" --family qwen2 --preset tiny -q -o "$model"
check "tiny model generated" test -s "$model"

"$bench" -m "$model" -t 2 -p 16 -n 8 -r 2 -npp 32 -ntg 4 -npl 1,2 --json > "$work/bench.jsonl" 2> "$work/bench.err"
check "muse-bench exits 0" test $? -eq 0
check "pp16 has a speed" positive pp "$work/bench.jsonl" '/"test": "pp16"/' avg_ts
check "tg8 has a speed" positive tg "$work/bench.jsonl" '/"test": "tg8"/' avg_ts
check "batched B=1 has S_TG" positive b1 "$work/bench.jsonl" '/"test": "batched"/ && /"pl": 1,/' speed_tg
check "batched B=2 has S_TG" positive b2 "$work/bench.jsonl" '/"test": "batched"/ && /"pl": 2,/' speed_tg

"$bench" -m "$model" -t 2 --vs-raw -npp 32 -ntg 4 -npl 1,2 -r 3 --json > "$work/vs-raw.jsonl" 2> "$work/vs-raw.err"
check "--vs-raw exits 0" test $? -eq 0
check "--vs-raw: 3 rounds per B" test "$(grep -c '"test": "vs_raw",' "$work/vs-raw.jsonl")" -eq 6
check "--vs-raw: bare loop speed" positive raw "$work/vs-raw.jsonl" '/"test": "vs_raw",/' raw_speed_tg
check "--vs-raw: B=1 summary" positive s1 "$work/vs-raw.jsonl" '/"vs_raw_summary"/ && /"pl": 1,/' ratio_median
check "--vs-raw: B=2 summary" positive s2 "$work/vs-raw.jsonl" '/"vs_raw_summary"/ && /"pl": 2,/' ratio_median
"$bench" -m "$model" -t 2 --vs-raw -npp 32 -ntg 4 -npl 2 -r 1 > "$work/vs-raw.txt" 2>&1
check "--vs-raw table" grep -q "median of 1 rounds" "$work/vs-raw.txt"

"$bench" -m "$model" -npl 2,x > /dev/null 2> "$work/err.txt"; rc=$?
check "bad -npl exits 2" test $rc -eq 2
check "bad -npl is named" grep -q -- "-npl" "$work/err.txt"
"$bench" -p 16 > /dev/null 2> "$work/err.txt"; rc=$?
check "missing model exits 2" test $rc -eq 2
check "missing model says -m" grep -q -- "-m FILE" "$work/err.txt"
"$bench" -m "$model" -c 64 -npp 512 > /dev/null 2> "$work/err.txt"; rc=$?
check "too small context exits 2" test $rc -eq 2
check "too small context is named" grep -q -- "--ctx-size" "$work/err.txt"

"$bench" -m "$model" --vs-raw -npp 64 -b 32 -ub 32 > "$work/out.txt" 2> "$work/err.txt"; rc=$?
check "--vs-raw with -npp above --batch-size exits 2" test $rc -eq 2
check "--vs-raw names --batch-size" grep -q -- "--batch-size" "$work/err.txt"
check "--vs-raw fails before printing" test ! -s "$work/out.txt"

echo "test-bench: $pass passed, $fails failed"
[ "$fails" -eq 0 ]
