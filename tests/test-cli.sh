#!/usr/bin/env bash
# End-to-end checks of the `muse` command line on a generated Muse Glimmer model.
# usage: test-cli.sh MUSE_BINARY WORK_DIR
set -u
muse="$1"
work="$2"
rm -rf "$work" && mkdir -p "$work"
export MUSE_CACHE_DIR="$work/cache"
fails=0
pass=0
check() {  # check NAME CONDITION...
  local name="$1"; shift
  if "$@"; then pass=$((pass + 1)); else echo "FAIL: $name"; fails=$((fails + 1)); fi
}

# --help / --version
"$muse" --help > "$work/help.txt"; check "muse --help exits 0" test $? -eq 0
check "help lists commands" grep -q "ask PROMPT" "$work/help.txt"
check "help lists exit codes" grep -q "exit codes" "$work/help.txt"
"$muse" --version | grep -qE '^muse [0-9]+\.[0-9]+\.[0-9]+$'; check "muse --version" test $? -eq 0
"$muse" ask --help | grep -q -- "--budget"; check "ask --help" test $? -eq 0
"$muse" info --help | grep -q -- "--mmproj"; check "info --help" test $? -eq 0
"$muse" serve --help | grep -q -- "--api-key-file"; check "serve --help" test $? -eq 0
"$muse" serve --port 99999 2> "$work/err.txt"; rc=$?
check "serve: bad --port exits 2" test $rc -eq 2
check "serve: bad --port names the flag" grep -q -- "--port" "$work/err.txt"
"$muse" serve --api-key-file /nonexistent/keys.txt 2> "$work/err.txt"; rc=$?
check "serve: missing key file exits 2" test $rc -eq 2
check "serve: missing key file is named" grep -q "/nonexistent/keys.txt" "$work/err.txt"
"$muse" serve --api-key "two words" 2> "$work/err.txt"; rc=$?
check "serve: a key with a space is refused" test $rc -eq 2

# Bad command lines: exit 2 and one line naming the problem.
"$muse" frobnicate 2> "$work/err.txt"; rc=$?
check "unknown command exits 2" test $rc -eq 2
check "unknown command is named" grep -q "frobnicate" "$work/err.txt"
"$muse" ask "hi" --temp banana 2> "$work/err.txt"; rc=$?
check "bad --temp exits 2" test $rc -eq 2
check "bad --temp names the flag" grep -q -- "--temp" "$work/err.txt"
check "bad --temp is one line" test "$(wc -l < "$work/err.txt")" -eq 1

# Missing and broken model files: exit 3, one clear line.
"$muse" ask --model /nonexistent/model.gguf "hi" 2> "$work/err.txt"; rc=$?
check "missing model exits 3" test $rc -eq 3
check "missing model is one line" test "$(wc -l < "$work/err.txt")" -eq 1
check "missing model names the path" grep -q "/nonexistent/model.gguf" "$work/err.txt"

# Without --model and $MUSE_MODEL the model is Muse-Tiny, trained on arithmetic: it answers.
env -u MUSE_MODEL "$muse" ask "What is 27 + 15?" --mode thinking --temp 0 > "$work/tiny.txt" 2> "$work/tiny-err.txt"; rc=$?
check "ask on the default model (Muse-Tiny) exits 0" test $rc -eq 0
check "the default model is named Muse-Tiny" grep -q "Muse-Tiny" "$work/tiny-err.txt"
check "Muse-Tiny adds: 27 + 15 = 42" grep -qw "42" "$work/tiny.txt"
"$muse" ask --model tiny "What is 95 - 38?" --mode instant --temp 0 --json > "$work/tiny.json" 2> /dev/null
check "--model tiny in instant mode answers a bare number, without reasoning" node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1])); if (!/^[0-9]+$/.test(j.content.trim())||j.reasoning_content!=="") process.exit(1)' "$work/tiny.json"
# --draft: prompt-lookup drafts change the steps, not the text (the reasoning restates digits
# and repeats its line format); a seeded contemplating run says the same with and without.
for d in 0 4; do
  "$muse" ask --model tiny "What is 4821 + 1397?" --mode contemplating --no-planner --agents 3 --seed 9 --draft $d --json \
    > "$work/draft-$d.json" 2> /dev/null
done
check "--draft 0 and --draft 4 give the same agents' text" node -e 'const f=require("fs");
  const a=JSON.parse(f.readFileSync(process.argv[1])), b=JSON.parse(f.readFileSync(process.argv[2]));
  const t=j=>JSON.stringify(j.agents.map(x=>[x.reasoning,x.answer,x.tokens]));
  if (a.content!=="6218"||t(a)!==t(b)) process.exit(1)' "$work/draft-0.json" "$work/draft-4.json"
"$muse" ask --model tiny "hi" --draft 17 2> "$work/err.txt"; rc=$?
check "bad --draft exits 2 and names the flag" test $rc -eq 2 -a "$(grep -c -- "--draft" "$work/err.txt")" -eq 1
"$muse" info tiny > "$work/tiny-info.txt"
check "info tiny: qwen-style template with reasoning" grep -q "reasoning *yes" "$work/tiny-info.txt"
check "info tiny: no tool calls" grep -q "tool calls *no" "$work/tiny-info.txt"
MUSE_MODELS_DIR="$work/nowhere" "$muse" ask --model tiny "hi" 2> "$work/err.txt"; rc=$?
check "a missing Muse-Tiny exits 3" test $rc -eq 3
check "a missing Muse-Tiny says where it looked" grep -q "$work/nowhere/muse-tiny.gguf" "$work/err.txt"

# Muse-Tiny was trained as a verifier too: given Contemplating's verifier prompt (the question
# and one candidate), it checks by the inverse operation and ends with a verdict.
check_prompt() { printf '%s\n\n---\nCheck the answer %s. End with "Verdict: right" or "Verdict: wrong".' "$1" "$2"; }
"$muse" ask --model tiny --mode thinking --temp 0 --json "$(check_prompt 'What is 487 + 356?' 843)" > "$work/v-right.json" 2> /dev/null
"$muse" ask --model tiny --mode thinking --temp 0 --json "$(check_prompt 'What is 487 + 356?' 853)" > "$work/v-wrong.json" 2> /dev/null
"$muse" ask --model tiny --mode thinking --temp 0 --json "$(check_prompt 'What is 5593 - 657?' 4936)" > "$work/v-right2.json" 2> /dev/null
check "Muse-Tiny verifies 487 + 356 = 843 by subtracting: right" node -e '
  const j = JSON.parse(require("fs").readFileSync(process.argv[1]));
  if (!/^Check 843 - 356 against 487\./.test(j.reasoning_content) || !/Verdict: right/.test(j.content)) { console.error(j); process.exit(1); }' "$work/v-right.json"
check "Muse-Tiny rejects 853: wrong" node -e '
  const j = JSON.parse(require("fs").readFileSync(process.argv[1]));
  if (!/differ\./.test(j.reasoning_content) || !/Verdict: wrong/.test(j.content)) { console.error(j); process.exit(1); }' "$work/v-wrong.json"
check "Muse-Tiny verifies 5593 - 657 = 4936 by adding: right" node -e '
  const j = JSON.parse(require("fs").readFileSync(process.argv[1]));
  if (!/^Check 4936 \+ 657 against 5593\./.test(j.reasoning_content) || !/Verdict: right/.test(j.content)) { console.error(j); process.exit(1); }' "$work/v-right2.json"
# Contemplating with --verify on Muse-Tiny: the vote (or the verified answer) is right.
"$muse" ask --model tiny --mode contemplating --verify --agents 3 --temp 1 --seed 3 --json "What is 487 + 356?" > "$work/v-cont.json" 2> /dev/null
check "contemplating --verify on Muse-Tiny answers 843" node -e '
  const j = JSON.parse(require("fs").readFileSync(process.argv[1]));
  if (!/\b843\b/.test(j.content) || !["vote", "verified"].includes(j.aggregation)) { console.error(j.content, j.aggregation); process.exit(1); }' "$work/v-cont.json"

# The verifier's task as a task file: each question carries its candidate in the verifier
# prompt, every second one slipped; muse eval scores Muse-Tiny's verdicts on them.
tasks_bin="$(dirname "$muse")/muse-tasks"
"$tasks_bin" --split test --format check --digits 3 --count 12 --seed 4 -o "$work/checks.jsonl"
check "muse-tasks --format check: the verifier prompt, right and slipped candidates" node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
  let slips = 0;
  for (const [n, t] of lines.entries()) {
    const m = /^What is (\d+) ([+-]) (\d+)\?\n\n---\nCheck the answer (\d+)\. End with "Verdict: right" or "Verdict: wrong"\.$/.exec(t.question);
    if (!m || m[4] !== t.candidate) throw new Error("line " + n + ": " + t.question);
    const truth = String(m[2] === "+" ? +m[1] + +m[3] : m[1] - m[3]);
    if (t.slip !== (n % 2 === 1) || (t.candidate === truth) === t.slip) throw new Error("line " + n + ": candidate " + t.candidate + " of " + truth);
    if (t.answer !== (t.slip ? "Verdict: wrong" : "Verdict: right")) throw new Error("line " + n + ": " + t.answer);
    slips += t.slip;
  }
  if (lines.length !== 12 || slips !== 6) throw new Error(lines.length + " lines, " + slips + " slipped");' "$work/checks.jsonl"
"$tasks_bin" --format check --candidate maybe > /dev/null 2> "$work/err.txt"; rc=$?
check "muse-tasks --candidate maybe: exit 2 naming the choices" bash -c "[ $rc -eq 2 ] && grep -q 'right, slip or mix' '$work/err.txt'"
"$muse" eval "$work/checks.jsonl" --model tiny --modes thinking --temp 0 --json --quiet > "$work/checks-eval.json" 2> /dev/null
check "muse eval scores Muse-Tiny's verdicts: at least 10 of 12 right" node -e '
  const t = JSON.parse(require("fs").readFileSync(process.argv[1])).modes[0];
  console.error(`verdicts ${t.correct}/${t.questions}`);
  if (t.questions !== 12 || t.correct < 10) process.exit(1);' "$work/checks-eval.json"

# Muse-Tiny through muse eval on held-out problems: Thinking answers nearly all of them, and
# Instant (no scratchpad) fewer. Greedy decoding on the committed model: the same every run.
"$(dirname "$muse")/muse-tasks" --split test --digits 3 --count 30 --seed 7 -o "$work/tiny-tasks.jsonl"
"$muse" eval "$work/tiny-tasks.jsonl" --model tiny --modes instant,thinking --temp 0 --json --quiet > "$work/tiny-eval.json" 2> "$work/err.txt"
check "muse eval on Muse-Tiny: thinking >= 27/30, instant below it" node -e '
  const j = JSON.parse(require("fs").readFileSync(process.argv[1]));
  const [i, t] = j.modes;
  console.error(`instant ${i.correct}/30, thinking ${t.correct}/30`);
  if (i.mode !== "instant" || t.mode !== "thinking" || t.correct < 27 || i.correct >= t.correct) process.exit(1);' "$work/tiny-eval.json"
# The sampling flags reach the sampler: at temperature 2 with top-p and min-p off, sampling is
# wild, but top-k 1 keeps only the likeliest token, so every answer is greedy's; the whole
# distribution (top-k 0, top-p 1, min-p 0) is sampled reproducibly from a seed.
"$muse" eval "$work/tiny-tasks.jsonl" --model tiny --modes thinking --temp 2 --top-p 1 --min-p 0 --top-k 1 --seed 5 --json --quiet > "$work/tiny-topk1.json"
check "muse eval --temp 2 --top-k 1 answers as greedy does" node -e '
  const fs = require("fs");
  const g = JSON.parse(fs.readFileSync(process.argv[1])).items.filter(x => x.mode === "thinking");
  const k = JSON.parse(fs.readFileSync(process.argv[2])).items;
  if (g.length !== 30 || k.length !== 30 || g.some((x, n) => x.got !== k[n].got)) process.exit(1);' "$work/tiny-eval.json" "$work/tiny-topk1.json"
check "muse eval --json names its sampling" node -e '
  const s = JSON.parse(require("fs").readFileSync(process.argv[1])).sampling;
  if (s.temperature !== 2 || s.top_k !== 1 || s.top_p !== 1 || s.min_p !== 0 || s.seed !== 5) process.exit(1);' "$work/tiny-topk1.json"
for n in 1 2; do
  "$muse" eval "$work/tiny-tasks.jsonl" --model tiny --modes thinking --limit 10 --temp 1 --top-k 0 --top-p 1 --min-p 0 --seed 9 --json --quiet > "$work/tiny-pure$n.json"
done
check "muse eval: seeded sampling of the whole distribution repeats" node -e '
  const fs = require("fs");
  const [a, b] = process.argv.slice(1).map(f => JSON.parse(fs.readFileSync(f)).items.map(x => x.got));
  if (a.length !== 10 || JSON.stringify(a) !== JSON.stringify(b)) process.exit(1);' "$work/tiny-pure1.json" "$work/tiny-pure2.json"
"$muse" eval "$work/tiny-tasks.jsonl" --model tiny --min-p 1.5 2> "$work/err.txt"; rc=$?
check "muse eval: --min-p out of range exits 2, naming it" test $rc -eq 2 -a "$(grep -c -- --min-p "$work/err.txt")" -ge 1

# The smoke model (here through MUSE_MODEL=smoke, as ctest sets it) is generated on first use
# and labelled as such.
"$muse" ask "Hello Muse" --max-tokens 8 --temp 0 > "$work/out.txt" 2> "$work/err.txt"; rc=$?
check "ask on the default model exits 0" test $rc -eq 0
check "default model is labelled as meaningless" grep -q "meaningless" "$work/err.txt"
check "ask prints an answer" test -s "$work/out.txt"
model="$MUSE_CACHE_DIR/models/smoke-muse-glimmer.gguf"
check "smoke model exists" test -f "$model"

head -c 100000 "$model" > "$work/truncated.gguf"
"$muse" ask --model "$work/truncated.gguf" "hi" 2> "$work/err.txt"; rc=$?
check "truncated model exits 3" test $rc -eq 3
check "truncated model is one line" test "$(wc -l < "$work/err.txt")" -eq 1
check "truncated model says truncated" grep -q "truncated" "$work/err.txt"

# muse info on the generated Muse Glimmer model.
"$muse" info "$model" > "$work/info.txt"; rc=$?
check "info exits 0" test $rc -eq 0
check "info architecture" grep -q "architecture *muse-glimmer" "$work/info.txt"
check "info template" grep -q "chat template *muse-glimmer" "$work/info.txt"
check "info reasoning" grep -q "reasoning *yes" "$work/info.txt"
"$muse" info "$model" --json > "$work/info.json"
check "info --json parses" node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1])); if (j.architecture!=="muse-glimmer"||!j.reasoning||j.parameters<=0) process.exit(1)' "$work/info.json"

# muse ask --json: one JSON object with answer, reasoning and usage.
"$muse" ask --model "$model" "Think first" --reasoning on --budget 6 --max-tokens 24 --temp 0 --json > "$work/ask.json"; rc=$?
check "ask --json exits 0" test $rc -eq 0
check "ask --json parses and carries reasoning, content and usage" node -e '
  const j=JSON.parse(require("fs").readFileSync(process.argv[1]));
  if (typeof j.content!=="string" || !j.reasoning_content || !j.usage || j.usage.completion_tokens<=0 || j.usage.completion_tokens>6+24) process.exit(1);
  if (j.mode!=="thinking" || !["stop","length"].includes(j.finish_reason)) process.exit(1);' "$work/ask.json"

# Modes: a bad mode is a usage error; contemplating returns every agent, a vote or a
# synthesis, and usage showing the shared prefix prefilled once.
"$muse" ask "hi" --mode fast 2> "$work/err.txt"; rc=$?
check "bad --mode exits 2" test $rc -eq 2
check "bad --mode names the flag" grep -q -- "--mode" "$work/err.txt"
"$muse" ask "hi" --agents 40 2> "$work/err.txt"; rc=$?
check "--agents out of range exits 2" test $rc -eq 2
"$muse" ask "hi" --presence-penalty 3 2> "$work/err.txt"; rc=$?
check "--presence-penalty out of range exits 2" test $rc -eq 2
check "--presence-penalty names the flag" grep -q -- "--presence-penalty" "$work/err.txt"
"$muse" ask --model "$model" "Which is larger, 2^10 or 10^3? Compare them step by step." --mode contemplating --agents 4 \
  --budget 8 --max-tokens 8 --no-planner --seed 3 --json > "$work/contemplate.json" 2> "$work/err.txt"; rc=$?
check "contemplating exits 0" test $rc -eq 0
check "contemplating: 4 agents, vote or synthesis, prefix prefilled once" node -e '
  const j=JSON.parse(require("fs").readFileSync(process.argv[1]));
  const solvers=j.agents.filter(a=>a.kind==="solver");
  if (j.mode!=="contemplating" || solvers.length!==4) process.exit(1);
  if (!["vote","synthesis","synthesis_all_pruned","single"].includes(j.aggregation)) process.exit(2);
  if (j.aggregation==="vote" ? !j.vote : j.synthesis===null) process.exit(3);
  if (!(j.usage.shared_prefix_tokens>0)) process.exit(4);
  for (const a of solvers) if (a.prompt_tokens_reused < j.usage.shared_prefix_tokens-16 || a.prompt_tokens_prefilled > 24) process.exit(5);' "$work/contemplate.json"

# --planner-budget: out of range is a usage error naming the flag; in range, the planner spends
# at most that many tokens and the plan says in words how it was planned.
"$muse" ask "hi" --planner-budget 8 2> "$work/err.txt"; rc=$?
check "--planner-budget out of range exits 2" test $rc -eq 2
check "--planner-budget names the flag and its range" grep -q -- "--planner-budget.*16" "$work/err.txt"
"$muse" ask --model "$model" "Plan a trip to Lisbon and Porto, with a budget for each city." --mode contemplating --agents 2 \
  --budget 8 --max-tokens 8 --planner-budget 24 --seed 3 --json > "$work/planned.json" 2> "$work/err.txt"; rc=$?
check "--planner-budget: contemplating exits 0" test $rc -eq 0
check "--planner-budget: the planner spent at most 24 tokens; the plan has a summary in words" node -e '
  const j=JSON.parse(require("fs").readFileSync(process.argv[1]));
  const p=j.agents.filter(a=>a.kind==="planner");
  if (p.length!==1 || !(j.usage.planner_tokens>0) || j.usage.planner_tokens>24 || p[0].tokens!==j.usage.planner_tokens) process.exit(1);
  if (!/^planned (as one task|[0-9]+ sub-tasks)/.test(j.plan.summary)) process.exit(2);' "$work/planned.json"

# Tables: --data loads a CSV; its summary joins the prompt and query_table is offered; a bad
# file fails with its line and exit 2 before the model loads.
printf 'region,amount\nnorth,10\nsouth,5\n' > "$work/sales.csv"
"$muse" ask --model "$model" "Which region sold more?" --data "$work/sales.csv" --mode thinking --budget 4 \
  --max-tokens 4 --json > "$work/data.json" 2> "$work/err.txt"; rc=$?
check "--data exits 0" test $rc -eq 0
check "--data: attachment with schema summary in --json" node -e '
  const j=JSON.parse(require("fs").readFileSync(process.argv[1]));
  const t=j.attachments && j.attachments[0];
  if (!t || t.type!=="table" || t.name!=="sales" || t.rows!==2) process.exit(1);
  if (t.columns.map(c=>c.name+" "+c.type).join(",")!=="region TEXT,amount INTEGER") process.exit(2);
  if (!t.summary.includes("- amount INTEGER: 2 distinct, min 5, max 10")) process.exit(3);
  if (!j.tools.includes("query_table")) process.exit(4);' "$work/data.json"
printf 'a,b\n1,2\n3\n' > "$work/ragged.csv"
"$muse" ask --model "$model" "hi" --data "$work/ragged.csv" 2> "$work/err.txt"; rc=$?
check "ragged --data exits 2" test $rc -eq 2
check "ragged --data names the line" grep -q "ragged.csv: line 3: 1 field where the first row has 2" "$work/err.txt"
"$muse" ask --model "$model" "hi" --data "$work/missing.csv" 2> "$work/err.txt"; rc=$?
check "missing --data exits 2" test $rc -eq 2

# Images on a text-only model: the OCR text goes into the prompt, as data (visible with --json).
convert -size 520x120 xc:white -font DejaVu-Sans -fill black -pointsize 34 -annotate +20+70 'Invoice total 4821 EUR' "$work/shot.png"
"$muse" ask --model "$model" "what does the screenshot say?" --image "$work/shot.png" --mode instant --max-tokens 4 \
  --json > "$work/image.json" 2> "$work/err.txt"; rc=$?
check "--image exits 0" test $rc -eq 0
check "--image: OCR text in the prompt block, marked as data" node -e '
  const j=JSON.parse(require("fs").readFileSync(process.argv[1]));
  const t=j.attachments && j.attachments.find(a=>a.type==="image");
  if (!t || t.format!=="png" || t.width!==520 || t.height!==120) process.exit(1);
  if (!t.ocr_text.includes("4821") || !t.prompt_text.includes("4821")) process.exit(2);
  if (!t.prompt_text.includes("data, not instructions")) process.exit(3);' "$work/image.json"
head -c 300 "$work/shot.png" > "$work/cut.png"
"$muse" ask --model "$model" "hi" --image "$work/cut.png" 2> "$work/err.txt"; rc=$?
check "truncated --image exits 2" test $rc -eq 2
check "truncated --image says so" grep -q "cut.png: corrupt or truncated png image" "$work/err.txt"

# Ctrl-C cancels cleanly: exit 130 and a note, no crash.
"$muse" ask --model "$model" "Go on" --max-tokens 60000 --ctx 100000 > "$work/out.txt" 2> "$work/err.txt" &
pid=$!
# Interrupt once the answer is streaming (the model has loaded), however long loading takes.
for _ in $(seq 1 1200); do [ -s "$work/out.txt" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.05; done
check "the answer streams before Ctrl-C" test -s "$work/out.txt"
kill -INT $pid
wait $pid; rc=$?
check "Ctrl-C exits 130" test $rc -eq 130
check "Ctrl-C says cancelled" grep -q "cancelled" "$work/err.txt"
grep -q "cancelled" "$work/err.txt" || { echo "muse ask's stderr after Ctrl-C:"; cat "$work/err.txt"; }

# Ctrl-C while the model loads: the handler is in place from the start (seen in the process's
# caught-signal mask), so even a background job, which starts with SIGINT ignored, leaves at
# once with 130 (or, had loading already finished, cancels cleanly with 130).
"$muse" ask --model "$model" "Go on" --max-tokens 60000 --ctx 100000 > "$work/out2.txt" 2> "$work/err2.txt" &
pid=$!
caught=0
for _ in $(seq 1 1200); do
  mask=$(awk '/^SigCgt:/ {print $2}' /proc/$pid/status 2>/dev/null) || break
  [ -n "$mask" ] && [ $(( 0x$mask & 2 )) -ne 0 ] && { caught=1; break; }
  sleep 0.005
done
check "muse ask catches SIGINT from its start" test $caught -eq 1
mapped=$(grep -c "$(basename "$model")" /proc/$pid/maps 2>/dev/null)
check "... before the model is loaded (mapped $mapped times)" test "${mapped:-0}" -eq 0
t0=$(date +%s%N)
kill -INT $pid
wait $pid; rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "Ctrl-C during loading exits 130 (after $ms ms, within 1000)" test $rc -eq 130 -a $ms -lt 1000

# muse eval: a task file through two modes; the report's shape, and bad files and flags.
printf '%s\n' '{"question": "What is 2 + 2?", "answer": "4"}' '' \
  '{"id": "g1", "question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"}' \
  '{"question": "What is 10 - 3?", "answer": 7}' > "$work/tasks.jsonl"
"$muse" eval "$work/tasks.jsonl" --model "$model" --modes instant,thinking --max-tokens 6 --budget 8 --no-tools --json \
  > "$work/eval.json" 2> "$work/eval-err.txt"; rc=$?
check "muse eval --json exits 0" test $rc -eq 0
node -e '
  const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  if (j.tasks !== 3 || j.modes.length !== 2 || j.items.length !== 6) process.exit(1);
  if (j.modes[0].mode !== "instant" || j.modes[1].mode !== "thinking") process.exit(2);
  for (const m of j.modes) if (m.questions !== 3 || !(m.accuracy >= 0 && m.accuracy <= 1) || !(m.tokens_per_question > 0)) process.exit(3);
  if (j.items[1].id !== "g1" || j.items[1].expected !== "7") process.exit(4);' "$work/eval.json"
check "muse eval --json: 3 tasks x 2 modes, scored" test $? -eq 0
"$muse" eval "$work/tasks.jsonl" --model "$model" --modes instant --max-tokens 4 --no-tools --limit 2 > "$work/eval.txt" 2>&1; rc=$?
check "muse eval table exits 0" test $rc -eq 0
check "muse eval table has a row per mode" grep -qE '^\| instant +\| +2 \|' "$work/eval.txt"
check "muse eval table names its sampling" grep -q "2 questions from .*tasks.jsonl, temperature 0.7, top-k 40, top-p 0.95, min-p 0.05, a random seed" "$work/eval.txt"
printf '%s\n' '{"question": "q", "answer": "1"}' 'oops' > "$work/bad.jsonl"
"$muse" eval "$work/bad.jsonl" --model "$model" 2> "$work/err.txt"; rc=$?
check "muse eval: a bad line exits 2" test $rc -eq 2
check "muse eval: ... naming the line" grep -q "bad.jsonl: line 2: not a JSON object" "$work/err.txt"
"$muse" eval "$work/tasks.jsonl" --modes instant,pondering 2> "$work/err.txt"; rc=$?
check "muse eval: an unknown mode exits 2" test $rc -eq 2 -a "$(grep -c pondering "$work/err.txt")" -eq 1
"$muse" eval /nonexistent/tasks.jsonl 2> "$work/err.txt"; rc=$?
check "muse eval: a missing file exits 2" test $rc -eq 2
"$muse" eval "$work/tasks.jsonl" --agents 99 2> "$work/err.txt"; rc=$?
check "muse eval: --agents out of range exits 2" test $rc -eq 2
"$muse" eval --help | grep -q -- "--modes"; check "eval --help" test $? -eq 0

echo "$pass passed, $fails failed"
test $fails -eq 0
