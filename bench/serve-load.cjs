// Load generator for bench/run-serve: C concurrent streaming clients against an
// OpenAI-compatible /v1/chat/completions for a bounded time. Each client sends requests one
// after another (a unique prompt each, so no prompt cache helps either server) and reads
// the SSE stream to its end. Request n of client c asks for a length drawn from
// [MAX_TOKENS/2, 3*MAX_TOKENS/2] by a fixed formula (mean MAX_TOKENS), the same sequence for
// every server: with one fixed length all clients would finish and restart in lockstep, and a
// server whose requests fail early (and so fall out of step) would be measured on a different
// load. Prints one JSON line: requests, errors (with samples), time to
// first token p50/p99, wall time, and the tokens of complete answers (their usage) per second.
// usage: node serve-load.cjs URL SECONDS CLIENTS MAX_TOKENS [EXTRA_JSON]
'use strict';
const { readSse } = require('./sse.cjs');
const [url, seconds, clients, maxTokens, extra] = process.argv.slice(2);
const extraBody = extra ? JSON.parse(extra) : {};
const words = ('the river carries light across stones while a quiet town counts its bridges and lanterns ' +
               'in the evening market where traders sell maps of distant harbours').split(' ');

function length(client, n) {
  const m = Number(maxTokens);
  const lo = Math.max(1, Math.round(m / 2)), span = m + 1;
  return lo + ((client * 37 + n * 101 + 13) % span);
}

function prompt(client, n) {
  const w = [];
  for (let i = 0; i < 24; i++) w.push(words[(client * 7 + n * 13 + i * 5) % words.length]);
  return `Request ${client}-${n}: continue this story in detail: ${w.join(' ')}.`;
}

async function one(client, n, stats) {
  const t0 = performance.now();
  let first = 0, chunks = 0, err = null, finish = null, tokens = null;
  try {
    const r = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: prompt(client, n) }], max_tokens: length(client, n),
                             temperature: 0.7, stream: true, stream_options: { include_usage: true }, ...extraBody }),
    });
    if (r.status !== 200) {
      err = `HTTP ${r.status}: ${(await r.text()).slice(0, 200)}`;
    } else {
      await readSse(r, (type, data) => {
        let j;
        try { j = JSON.parse(data); } catch (e) { err = 'bad SSE JSON'; return; }
        if (j.error) { err = 'stream error: ' + JSON.stringify(j.error).slice(0, 200); return; }
        const d = j.choices && j.choices[0] && j.choices[0].delta;
        if (d && (d.content || d.reasoning_content)) {
          chunks++;
          if (!first) first = performance.now();
        }
        if (j.choices && j.choices[0] && j.choices[0].finish_reason) finish = j.choices[0].finish_reason;
        if (j.usage) tokens = j.usage.completion_tokens;
      });
      // A stream that ends properly without text is an answer, not an error (a model may stop
      // at once); one that never says why it ended is an error.
      if (!err && !finish) err = 'the stream ended without a finish_reason';
      if (!err && !chunks) { stats.empty++; if (stats.empty_samples.length < 3) stats.empty_samples.push({ finish, tokens }); }
    }
  } catch (e) {
    err = 'connection: ' + e.message;
  }
  stats.requests++;
  if (err) { stats.errors++; if (stats.samples.length < 5) stats.samples.push(err); }
  else if (tokens !== null) stats.good_tokens += tokens;  // delivered in a complete answer (usage)
  if (first) stats.ttft.push(first - t0);
  stats.chunks += chunks;
}

async function main() {
  const stats = { requests: 0, errors: 0, samples: [], ttft: [], chunks: 0, empty: 0, empty_samples: [], good_tokens: 0 };
  const t0 = performance.now();
  const deadline = t0 + Number(seconds) * 1000;
  await Promise.all(Array.from({ length: Number(clients) }, async (_, c) => {
    for (let n = 0; performance.now() < deadline; n++) await one(c, n, stats);
  }));
  const wall = (performance.now() - t0) / 1000;
  const q = (p) => { const s = [...stats.ttft].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN; };
  console.log(JSON.stringify({ requests: stats.requests, errors: stats.errors, error_samples: stats.samples, wall_s: wall,
                               ttft_p50_ms: q(0.5), ttft_p99_ms: q(0.99), content_chunks: stats.chunks,
                               empty_answers: stats.empty, empty_samples: stats.empty_samples, good_tokens: stats.good_tokens,
                               good_tokens_per_s: stats.good_tokens / wall }));
}
main();
