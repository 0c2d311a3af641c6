#!/usr/bin/env bash
# muse-train end to end on a small shape: a new model from the vocabulary file, training that
# lowers the loss, a run stopped half-way and resumed (same step count, the data picking up at
# the next window), and clear errors for bad input. The model loads in Muse with its template.
# usage: test-muse-train.sh MUSE_TRAIN MUSE WORK_DIR SOURCE_DIR
set -u
train="$1"
muse="$2"
work="$3"
src="$4"
rm -rf "$work" && mkdir -p "$work"
export MUSE_CACHE_DIR="$work/cache"
fails=0
pass=0
check() {  # check NAME CONDITION...
  local name="$1"; shift
  if "$@"; then pass=$((pass + 1)); else echo "FAIL: $name"; fails=$((fails + 1)); fi
}
# The last "loss X" of a run's output.
loss_of() { grep -o 'loss [0-9.]*' "$1" | tail -1 | cut -d' ' -f2; }
# a < b * f (floating point)
less() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { exit !(a < b * f) }'; }

shape=(--vocab "$src/models/muse-tiny.vocab" --template "$src/models/muse-tiny.jinja" --layers 2 --embd 64 --heads 2 --ff 128 --ctx 256 --seed 3)
data=(--task arith --digits 1-3 --data-seed 5)
sched=(--steps 48 --warmup 4 --lr 3e-3 --checkpoint-every 0 --log-every 8 -t 2)

# --help, and bad input: exit 2, one line naming what was wrong.
"$train" --help > "$work/help.txt"; check "--help exits 0" test $? -eq 0
check "--help names --resume" grep -q -- "--resume" "$work/help.txt"
"$train" "${shape[@]}" "${data[@]}" --steps 0 -o "$work/x.gguf" 2> "$work/err.txt"; rc=$?
check "--steps 0 exits 2" test $rc -eq 2
check "--steps 0 names the flag" grep -q -- "--steps" "$work/err.txt"
"$train" "${shape[@]}" --ctx 300 "${data[@]}" -o "$work/x.gguf" 2> "$work/err.txt"; rc=$?
check "--ctx 300 exits 2" test $rc -eq 2
check "--ctx 300 says multiple of 256" grep -q "multiple of 256" "$work/err.txt"
"$train" "${shape[@]}" -o "$work/x.gguf" 2> "$work/err.txt"; rc=$?
check "no data exits 2" test $rc -eq 2
printf 'word 12\n' > "$work/bad.vocab"
"$train" --vocab "$work/bad.vocab" "${data[@]}" -o "$work/x.gguf" 2> "$work/err.txt"; rc=$?
check "a word with digits is refused" test $rc -eq 2
check "the vocabulary line is named" grep -q "line 1" "$work/err.txt"
check "nothing written for bad input" test ! -e "$work/x.gguf"
"$train" --resume "$work/nonexistent.gguf" "${data[@]}" -o "$work/x.gguf" 2> "$work/err.txt"; rc=$?
check "a missing checkpoint fails" test $rc -ne 0
check "a missing checkpoint is named" grep -q "nonexistent.gguf" "$work/err.txt"

# One run of 48 steps.
"$train" "${shape[@]}" "${data[@]}" "${sched[@]}" -o "$work/a.gguf" > "$work/a.out" 2> "$work/a.err"
check "a full run exits 0" test $? -eq 0
check "progress shows token accuracy and tokens/s" grep -q "token acc .* tok/s" "$work/a.err"
check "48 steps" grep -q ": 48 steps, 12288 tokens" "$work/a.out"
first=$(grep -o 'loss [0-9.]*' "$work/a.err" | head -1 | cut -d' ' -f2)
check "the loss falls (${first} -> $(loss_of "$work/a.out"))" less "$(loss_of "$work/a.out")" "$first" 0.8

# The same run stopped after 20 steps, then resumed to 48.
"$train" "${shape[@]}" "${data[@]}" "${sched[@]}" --stop-after 20 -o "$work/b.gguf" > "$work/b1.out" 2> "$work/b1.err"
check "a stopped run exits 0" test $? -eq 0
check "it stopped at step 20" grep -q ": 20 steps, 5120 tokens.*--resume continues" "$work/b1.out"
cp "$work/b.gguf" "$work/b20.gguf"
"$train" --resume "$work/b.gguf" "${data[@]}" "${sched[@]}" -o "$work/b.gguf" > "$work/b2.out" 2> "$work/b2.err"
check "the resumed run exits 0" test $? -eq 0
check "resumed at step 20" grep -q "resuming at step 20" "$work/b2.err"
check "it ends at step 48 with all tokens counted" grep -q ": 48 steps, 12288 tokens" "$work/b2.out"
check "the resumed run ends near the uninterrupted one ($(loss_of "$work/b2.out") vs $(loss_of "$work/a.out"))" \
  less "$(loss_of "$work/b2.out")" "$(loss_of "$work/a.out")" 1.25
# The data picks up where it stopped: window 21 of a fresh pass is the first one after resuming.
"$train" --resume "$work/b20.gguf" "${data[@]}" "${sched[@]}" --show 1 -o "$work/unused.gguf" > "$work/next.txt" 2>/dev/null
"$train" -m "$work/b20.gguf" "${data[@]}" "${sched[@]}" --show 21 -o "$work/unused.gguf" > "$work/fresh.txt" 2>/dev/null
sed -n '/^--- window 21 /,$p' "$work/fresh.txt" | tail -n +2 > "$work/w21.txt"
tail -n +2 "$work/next.txt" > "$work/w1.txt"
check "windows were shown" test -s "$work/w21.txt"
check "the resumed data is the next window" cmp -s "$work/w21.txt" "$work/w1.txt"
check "a finished checkpoint cannot resume past its steps" bash -c "! '$train' --resume '$work/b.gguf' ${data[*]} ${sched[*]} -o '$work/c.gguf' 2> '$work/err.txt' && grep -q 'raise --steps' '$work/err.txt'"

# Token embeddings (patches/0003): trained with --train-embeddings, left as they were without
# it; a checkpoint remembers the choice for --resume.
hash() { python3 "$src/tests/gguf-tensor.py" "$1" "$2"; }
short=(--steps 4 --warmup 1 --lr 3e-3 --checkpoint-every 0 --log-every 1 -t 2)
"$train" -m "$work/a.gguf" "${data[@]}" "${short[@]}" -o "$work/noemb.gguf" > /dev/null 2> "$work/noemb.err"
check "without the flag: embeddings as initialised" grep -q "token embeddings as initialised" "$work/noemb.err"
check "without the flag: token_embd unchanged" test "$(hash "$work/a.gguf" token_embd.weight)" = "$(hash "$work/noemb.gguf" token_embd.weight)"
check "without the flag: attn_k trained" test "$(hash "$work/a.gguf" blk.0.attn_k.weight)" != "$(hash "$work/noemb.gguf" blk.0.attn_k.weight)"
"$train" -m "$work/a.gguf" "${data[@]}" "${short[@]}" --train-embeddings --stop-after 2 -o "$work/emb.gguf" > /dev/null 2> "$work/emb.err"
check "--train-embeddings runs" test $? -eq 0
check "--train-embeddings is announced" grep -q "token embeddings trained" "$work/emb.err"
check "--train-embeddings changes token_embd" test "$(hash "$work/a.gguf" token_embd.weight)" != "$(hash "$work/emb.gguf" token_embd.weight)"
e2="$(hash "$work/emb.gguf" token_embd.weight)"
"$train" --resume "$work/emb.gguf" "${data[@]}" "${short[@]}" -o "$work/emb.gguf" > /dev/null 2> "$work/emb2.err"
check "a resumed run keeps training the embeddings" grep -q "token embeddings trained" "$work/emb2.err"
check "and they change again" test "$(hash "$work/emb.gguf" token_embd.weight)" != "$e2"

# --p-verify: verifier examples in Contemplating's verifier prompt, checked by the inverse
# operation, with a verdict of each kind.
"$train" -m "$work/a.gguf" --task arith --digits 3 --p-reasoning 1 --p-verify 1 --data-seed 2 --show 12 -o "$work/unused.gguf" > "$work/verify.txt" 2>/dev/null
check "verify: the verifier prompt" grep -q "Check the answer [0-9]*. End with \"Verdict: right\" or \"Verdict: wrong\"." "$work/verify.txt"
check "verify: checked by the inverse operation" grep -q "^Check [0-9]* [-+] [0-9]* against [0-9]*\.$" "$work/verify.txt"
check "verify: right verdicts" grep -q "the same.*" "$work/verify.txt"
check "verify: wrong verdicts" grep -q "differ\." "$work/verify.txt"
check "verify: the verdict is the answer" bash -c "grep -q '^Verdict: right' '$work/verify.txt' && grep -q '^Verdict: wrong' '$work/verify.txt'"
"$train" -m "$work/a.gguf" "${data[@]}" --p-verify 1.5 -o "$work/x3.gguf" 2> "$work/err.txt"; rc=$?
check "--p-verify 1.5 exits 2 naming the flag" bash -c "test $rc -eq 2 && grep -q -- '--p-verify' '$work/err.txt'"

# A .jsonl file of chats is rendered with the model's chat template (reasoning included); a
# plain text file is cut into windows; a bad line is named.
printf '%s\n' '{"messages":[{"role":"user","content":"Hi there"},{"role":"assistant","reasoning_content":"A greeting.","content":"Hello!"}]}' \
  '{"messages":[{"role":"user","content":"Bye"},{"role":"assistant","content":"See you."}]}' > "$work/chats.jsonl"
"$train" -m "$work/a.gguf" --data "$work/chats.jsonl" --show 1 -o "$work/unused.gguf" > "$work/chats.txt" 2>/dev/null
check "chats: reasoning inside <think>" grep -q "<think>" "$work/chats.txt"
check "chats: the reasoning text is there" grep -q "A greeting." "$work/chats.txt"
check "chats: an answer without reasoning opens <think></think>" grep -q "<think></think>" "$work/chats.txt"
printf '%s\n' '{"messages":[{"role":"user","content":"ok"}]}' '{"messages": 5}' > "$work/bad.jsonl"
"$train" -m "$work/a.gguf" --data "$work/bad.jsonl" --steps 4 -o "$work/x2.gguf" 2> "$work/err.txt"; rc=$?
check "a bad chat line fails" test $rc -ne 0
check "the bad line is named" grep -q "bad.jsonl:2" "$work/err.txt"
for i in $(seq 1 200); do echo "the cat sat on the mat and the dog sat on the log"; done > "$work/text.txt"
"$train" -m "$work/a.gguf" --data "$work/text.txt" --steps 4 --warmup 1 --checkpoint-every 0 -t 2 -o "$work/text.gguf" > "$work/text.out" 2>&1
check "plain text trains" grep -q ": 4 steps, 1024 tokens" "$work/text.out"

# The trained model is a Muse model: template with reasoning, no tools; it answers something.
"$muse" info "$work/a.gguf" > "$work/info.txt"
check "info: chat template with reasoning" grep -q "reasoning *yes" "$work/info.txt"
"$muse" ask --model "$work/a.gguf" --mode thinking --max-tokens 24 --temp 0 "What is 2 + 3?" > "$work/ask.txt" 2>&1
check "muse ask runs on it" test $? -eq 0

echo "test-muse-train: $pass passed, $fails failed"
test $fails -eq 0
