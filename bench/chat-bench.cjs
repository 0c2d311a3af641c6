// One long conversation on two servers, turn by turn: Muse's /v1/responses continuing by
// previous_response_id (the server keeps the history and its KV cells), and llama-server
// receiving the whole history every turn (/v1/chat/completions, cache_prompt on).
// Per turn: the prompt tokens each server computed and the time to the first token, both
// streamed; which server goes first alternates from turn to turn. Prints one table and the
// totals; writes every turn as JSON Lines.
// For reference, a second llama-server gets the same conversation as raw text: the history
// rendered by /apply-template (not timed), then /completion (cache_prompt): the engine alone,
// without a chat API's parsing.
// usage: node chat-bench.cjs MUSE_URL LLAMA_URL LLAMA_RAW_URL TURNS MAX_TOKENS OUT.jsonl
'use strict';
const fs = require('fs');
const { readSse } = require('./sse.cjs');

const [museUrl, llamaUrl, rawUrl, turnsArg, maxArg, outFile] = process.argv.slice(2);
const turns = Number(turnsArg), maxTokens = Number(maxArg);

// The user's messages: different every turn, about 40 tokens each.
const topics = ['the harbour at dawn', 'a train across the plains', 'the old library', 'a market in the rain', 'the mountain hut',
  'a night ferry', 'the lighthouse keeper', 'a desert observatory', 'the river delta', 'a winter orchard'];
const message = (i) => `Turn ${i + 1}. Tell me more about ${topics[i % topics.length]}: who goes there, what they carry, ` +
  `and what changes between morning and evening. Keep it short, and connect it to what we said before.`;

// An SSE response's events, the data parsed as JSON.
const sse = (res, onEvent) => readSse(res, (type, data) => onEvent(type, JSON.parse(data)));

let prev = null;
async function museTurn(i) {
  const body = { input: message(i), mode: 'instant', max_output_tokens: maxTokens, temperature: 0, stream: true, store: true };
  if (prev) body.previous_response_id = prev;
  const t0 = performance.now();
  let ttft = null, final = null;
  const res = await fetch(`${museUrl}/v1/responses`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`muse: HTTP ${res.status}: ${await res.text()}`);
  await sse(res, (type, d) => {
    if (ttft === null && /\.delta$/.test(type) && d.delta) ttft = performance.now() - t0;
    if (type === 'response.completed' || type === 'response.incomplete') final = d.response;
    if (type === 'error') throw new Error('muse: ' + d.message);
  });
  if (!final) throw new Error('muse: the stream ended without response.completed');
  prev = final.id;
  const u = final.usage;
  return { input: u.input_tokens, computed: u.input_tokens - u.input_tokens_details.cached_tokens, output: u.output_tokens,
           ttft_ms: ttft === null ? performance.now() - t0 : ttft, total_ms: performance.now() - t0 };
}

const history = [];
async function llamaTurn(i) {
  history.push({ role: 'user', content: message(i) });
  const t0 = performance.now();
  let ttft = null, last = null, text = '';
  const res = await fetch(`${llamaUrl}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages: history, max_tokens: maxTokens, temperature: 0, cache_prompt: true, stream: true,
                           stream_options: { include_usage: true } }) });
  if (!res.ok) throw new Error(`llama-server: HTTP ${res.status}: ${await res.text()}`);
  await sse(res, (type, d) => {
    const delta = d.choices && d.choices[0] && d.choices[0].delta;
    const piece = delta && (delta.content || delta.reasoning_content);
    if (ttft === null && piece) ttft = performance.now() - t0;
    if (delta && delta.content) text += delta.content;
    if (d.timings) last = d;
  });
  if (!last) throw new Error('llama-server: the stream ended without its timings');
  history.push({ role: 'assistant', content: text });
  return { input: last.timings.prompt_n + last.timings.cache_n, computed: last.timings.prompt_n, output: last.timings.predicted_n,
           ttft_ms: ttft === null ? performance.now() - t0 : ttft, total_ms: performance.now() - t0 };
}

const rawHistory = [];
async function rawTurn(i) {
  rawHistory.push({ role: 'user', content: message(i) });
  const tr = await fetch(`${rawUrl}/apply-template`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
                                                       body: JSON.stringify({ messages: rawHistory }) });
  if (!tr.ok) throw new Error(`llama-server /apply-template: HTTP ${tr.status}`);
  const { prompt } = await tr.json();
  const t0 = performance.now();
  let ttft = null, last = null, text = '';
  const res = await fetch(`${rawUrl}/completion`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt, n_predict: maxTokens, temperature: 0, cache_prompt: true, stream: true }) });
  if (!res.ok) throw new Error(`llama-server /completion: HTTP ${res.status}: ${await res.text()}`);
  await sse(res, (type, d) => {
    if (ttft === null && d.content) ttft = performance.now() - t0;
    if (d.content) text += d.content;
    if (d.stop) last = d;
  });
  if (!last || !last.timings) throw new Error('llama-server /completion: the stream ended without its timings');
  rawHistory.push({ role: 'assistant', content: text });
  return { input: last.timings.prompt_n + (last.timings.cache_n || 0), computed: last.timings.prompt_n, output: last.timings.predicted_n,
           ttft_ms: ttft === null ? performance.now() - t0 : ttft, total_ms: performance.now() - t0 };
}

const median = (a) => { const s = [...a].sort((x, y) => x - y); return s.length ? (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2 : NaN; };

async function main() {
  const rows = [];
  const out = fs.createWriteStream(outFile);
  const pad = (v, n) => String(v).padStart(n);
  console.log('        Muse /v1/responses        | llama-server /v1/chat/completions | llama-server /completion (reference)');
  console.log('turn | prompt  computed  ttft ms | prompt  computed  ttft ms        | prompt  computed  ttft ms');
  const runs = [museTurn, llamaTurn, rawTurn];
  for (let i = 0; i < turns; i++) {
    const got = [];
    for (let k = 0; k < runs.length; k++) {  // which goes first rotates every turn
      const j = (i + k) % runs.length;
      got[j] = await runs[j](i);
    }
    const [m, l, r] = got;
    rows.push({ m, l, r });
    out.write(JSON.stringify({ turn: i + 1, muse: m, llama_server_chat: l, llama_server_completion: r }) + '\n');
    const cell = (x) => `${pad(x.input, 6)} ${pad(x.computed, 9)} ${pad(x.ttft_ms.toFixed(1), 8)}`;
    console.log(`${pad(i + 1, 4)} | ${cell(m)} | ${cell(l)}        | ${cell(r)}`);
  }
  out.end();
  const sum = (f) => rows.reduce((s, r) => s + f(r), 0);
  const later = rows.slice(1);  // the first turn has no history to reuse
  console.log('');
  console.log(`prompt tokens computed, all ${turns} turns:  muse ${sum((r) => r.m.computed)}  llama-server chat ${sum((r) => r.l.computed)}  ` +
              `llama-server completion ${sum((r) => r.r.computed)}`);
  console.log(`prompt tokens computed per turn, turns 2-${turns} (median):  muse ${median(later.map((r) => r.m.computed))}  ` +
              `llama-server chat ${median(later.map((r) => r.l.computed))}  completion ${median(later.map((r) => r.r.computed))}`);
  const ttft = (f) => median(later.map(f));
  const mt = ttft((r) => r.m.ttft_ms), lt = ttft((r) => r.l.ttft_ms), rt = ttft((r) => r.r.ttft_ms);
  const spread = (f) => { const v = later.map(f); return `${Math.min(...v).toFixed(2)}-${Math.max(...v).toFixed(2)}`; };
  console.log(`time to first token, turns 2-${turns} (median):  muse ${mt.toFixed(1)} ms  llama-server chat ${lt.toFixed(1)} ms  ` +
              `llama-server completion ${rt.toFixed(1)} ms`);
  console.log(`  muse / llama-server chat ${(mt / lt).toFixed(2)} (per-turn ratios ${spread((r) => r.m.ttft_ms / r.l.ttft_ms)})`);
  console.log(`  muse / llama-server completion ${(mt / rt).toFixed(2)} (per-turn ratios ${spread((r) => r.m.ttft_ms / r.r.ttft_ms)})`);
  const last = rows[rows.length - 1];
  console.log(`history at the last turn: muse ${last.m.input} prompt tokens, llama-server chat ${last.l.input}, completion ${last.r.input}`);
}

main().catch((e) => { console.error('bench/run-chat: ' + (e.stack || e)); process.exit(1); });
