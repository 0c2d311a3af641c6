// bench/run-cluster's measurements (see its --help): contemplating through the routing backend
// over llama-servers against one llama-server and against Muse's local engine, and 16 clients
// with affinity against round-robin routing (the servers' own prompt-cache counters).
'use strict';
const fs = require('fs');
const net = require('net');
const path = require('path');
const { spawn } = require('child_process');

function parseArgs(argv) {
  const o = { rounds: 3, agents: 4, npp: 256, ntg: 48, clients: 16, turns: 3, json: '' };
  const ranges = { rounds: [1, 20], agents: [1, 16], npp: [16, 4096], ntg: [16, 1024], clients: [1, 64], turns: [1, 10] };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '').replace(/-/g, '_');
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${argv[i]} needs a value`);
    if (k in ranges) {
      const n = Number(v);
      if (!Number.isInteger(n) || n < ranges[k][0] || n > ranges[k][1]) throw new Error(`--${k} must be an integer in [${ranges[k].join(', ')}], got '${v}'`);
      o[k] = n;
    } else {
      o[k] = v;
    }
  }
  return o;
}

const opt = parseArgs(process.argv.slice(2));
const children = [];
const log = (s) => process.stderr.write(`[bench] ${s}\n`);

const freePort = () => new Promise((resolve) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(cond, ms) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (await cond()) return true;
  return false;
}

async function startLlamaServer(tag, threads) {
  const port = await freePort();
  const logf = fs.openSync(path.join(opt.out, `llama-server-${tag}.log`), 'w');
  const proc = spawn(opt.llama_server, ['-m', opt.model, '--host', '127.0.0.1', '--port', String(port), '-c', '16384', '-np', '4',
    '-t', String(threads), '-tb', String(threads), '--jinja', '--metrics', '--no-webui'], { stdio: ['ignore', logf, logf] });
  children.push(proc);
  const url = `http://127.0.0.1:${port}`;
  const ok = await waitFor(async () => proc.exitCode === null && await fetch(`${url}/health`).then((r) => r.status === 200, () => false), 180000);
  if (!ok) throw new Error(`llama-server ${tag} did not start; see ${opt.out}/llama-server-${tag}.log`);
  return { url, proc, tag };
}

function startMuse(tag, args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(opt.muse, ['serve', '--port', '0', '--data-dir', ':memory:', '--quiet', '--no-web', ...args],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(proc);
    let out = '';
    const t = setTimeout(() => reject(new Error(`muse serve (${tag}) did not start:\n${out}`)), 180000);
    const on = (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) { clearTimeout(t); resolve({ url: m[1], proc, tag }); }
    };
    proc.stdout.on('data', on);
    proc.stderr.on('data', on);
    proc.on('exit', (c) => { clearTimeout(t); reject(new Error(`muse serve (${tag}) exited ${c}:\n${out}`)); });
  });
}

async function metrics(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = {};
  for (const line of text.split('\n')) {
    const x = line.match(/^([^#\s]+) ([0-9.eE+-]+)$/);
    if (x) m[x[1]] = Number(x[2]);
  }
  return m;
}

// llama-server refuses some of a random model's outputs (its chat parser meets broken UTF-8:
// "does not match the expected peg-native format"); such a request is sent again with another
// seed, up to 5 times, and counted. The time is the answered attempt's.
let refused = 0;
async function chat(museUrl, body) {
  for (let attempt = 0; ; attempt++) {
    const t0 = process.hrtime.bigint();
    const r = await fetch(`${museUrl}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ ...body, seed: (body.seed || 0) + 7919 * attempt }) });
    const j = await r.json();
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.status === 200) return { s, j };
    const msg = JSON.stringify(j).slice(0, 300);
    if (r.status === 503 && /peg-native|expected .* format/.test(msg) && attempt < 5) { refused++; continue; }
    throw new Error(`HTTP ${r.status}: ${msg}`);
  }
}

const words = ['harbour', 'lantern', 'meadow', 'copper', 'violet', 'granite', 'orchard', 'thistle', 'compass', 'ember', 'willow', 'quartz',
  'saddle', 'juniper', 'falcon', 'marble', 'cinder', 'hollow', 'velvet', 'tundra', 'beacon', 'pebble', 'saffron', 'glacier'];
function text(seed, n) {
  let x = seed * 2654435761 % 4294967296, out = [];
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) % 2147483648; out.push(words[x % words.length]); }
  return out.join(' ');
}
const median = (a) => { const b = [...a].sort((p, q) => p - q); return b.length % 2 ? b[(b.length - 1) / 2] : (b[b.length / 2 - 1] + b[b.length / 2]) / 2; };
const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');

async function main() {
  log(`starting llama-servers A, B (-t 1) and C (-t 2), model ${opt.model}`);
  const A = await startLlamaServer('A', 1), B = await startLlamaServer('B', 1), C = await startLlamaServer('C', 2);
  const backendsFile = path.join(opt.out, 'backends-max2.json');
  fs.writeFileSync(backendsFile, JSON.stringify({ backends: [{ url: A.url, max_in_flight: 2 }, { url: B.url, max_in_flight: 2 }] }));
  const configs = [
    { name: 'routing A+B (1 thread each)', muse: await startMuse('routing', ['--backend', A.url, '--backend', B.url]) },
    { name: 'routing A+B, max_in_flight 2', muse: await startMuse('routing-max2', ['--backends', backendsFile]) },
    { name: 'one llama-server C (2 threads)', muse: await startMuse('single', ['--backend', C.url]) },
    { name: 'Muse local (2 threads)', muse: await startMuse('local', ['--model', opt.model, '--threads', '2']) },
  ];
  const results = { part1: {}, part2: {} };

  // Part 1: contemplating.
  log(`part 1: contemplating K=${opt.agents}, ~${opt.npp}-word question, ${opt.ntg} tokens per agent, ${opt.rounds} round(s)`);
  for (const c of configs) results.part1[c.name] = { s: [], tokens: [], ratio: [] };
  for (let r = 0; r < opt.rounds; r++) {
    const question = `Round ${r}. ${text(100 + r, opt.npp)}. Which of these words comes up most often?`;
    const order = configs.map((_, i) => configs[(i + r) % configs.length]);
    const round = {};
    for (const c of order) {
      const { s, j } = await chat(c.muse.url, { messages: [{ role: 'user', content: question }], mode: 'contemplating', agents: opt.agents,
        planner: false, max_tokens: opt.ntg, thinking_budget: opt.ntg, temperature: 0.7, seed: 1000 + r });
      const solvers = (j.muse && j.muse.agents || []).filter((a) => a.kind === 'solver');
      round[c.name] = s;
      results.part1[c.name].s.push(s);
      results.part1[c.name].tokens.push(j.usage.completion_tokens);
      log(`  round ${r + 1} ${c.name}: ${f(s)} s, ${j.usage.completion_tokens} tokens, ${solvers.length} solvers`);
    }
    for (const c of configs) results.part1[c.name].ratio.push(round[c.name] / round['Muse local (2 threads)']);
  }

  // Part 2: 16 clients, affinity against round-robin.
  const aff = await startMuse('affinity', ['--backend', A.url, '--backend', B.url, '--routing', 'affinity', '--parallel', String(Math.min(64, opt.clients))]);
  const rr = await startMuse('round-robin', ['--backend', A.url, '--backend', B.url, '--routing', 'round-robin', '--parallel', String(Math.min(64, opt.clients))]);
  const system = `You are a careful assistant for a shipping company. ${text(7, 60)}.`;
  log(`part 2: ${opt.clients} clients x ${opt.turns} turns, affinity vs round-robin, ${opt.rounds} round(s) each`);
  for (const p of ['affinity', 'round-robin']) results.part2[p] = { hit: [], tps: [], s: [], processed: 0, cached: 0, tokens: 0, moves: 0, hits: 0 };
  for (let r = 0; r < opt.rounds; r++) {
    for (const [policy, m] of (r % 2 ? [['round-robin', rr], ['affinity', aff]] : [['affinity', aff], ['round-robin', rr]])) {
      const before = [await metrics(A.url), await metrics(B.url)];
      const mb = await metrics(m.url);
      let tokens = 0;
      const t0 = process.hrtime.bigint();
      await Promise.all(Array.from({ length: opt.clients }, async (_, k) => {
        const messages = [{ role: 'system', content: system }, { role: 'user', content: `Case ${r}-${policy}-${k}: ${text(1000 * r + k + (policy === 'affinity' ? 0 : 500), 200)}` }];
        for (let t = 0; t < opt.turns; t++) {
          const { j } = await chat(m.url, { messages, mode: 'instant', max_tokens: 16, temperature: 0, seed: k });
          tokens += j.usage.completion_tokens;
          messages.push({ role: 'assistant', content: j.choices[0].message.content || '.' }, { role: 'user', content: `Turn ${t + 2}: and the ${words[(k + t) % words.length]}?` });
        }
      }));
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      const after = [await metrics(A.url), await metrics(B.url)];
      const ma = await metrics(m.url);
      const d = (k) => after.reduce((x, a, i) => x + (a[k] || 0) - (before[i][k] || 0), 0);
      const processed = d('llamacpp:prompt_tokens_total'), cached = d('llamacpp:prompt_tokens_cached_total');
      const R = results.part2[policy];
      R.hit.push(cached / Math.max(1, cached + processed));
      R.tps.push(tokens / s);
      R.s.push(s);
      R.processed += processed; R.cached += cached; R.tokens += tokens;
      R.hits += (ma.muse_routing_affinity_hits_total || 0) - (mb.muse_routing_affinity_hits_total || 0);
      R.moves += (ma.muse_routing_affinity_moves_total || 0) - (mb.muse_routing_affinity_moves_total || 0);
      log(`  round ${r + 1} ${policy}: ${f(s)} s, hit rate ${f(100 * R.hit[R.hit.length - 1], 1)}%, ${f(tokens / s, 1)} tok/s`);
    }
  }

  // The table.
  const lines = [];
  lines.push(`bench/run-cluster: ${path.basename(opt.model)}, ${opt.rounds} round(s); llama-servers A, B with 1 thread, C with 2, each -np 4`);
  lines.push('');
  lines.push(`part 1: contemplating K=${opt.agents} (planner off), ~${opt.npp}-word question, ${opt.ntg} tokens per agent`);
  lines.push('| configuration | wall s (median) | tokens/s | / local (median) | / local per round |');
  lines.push('|---|---:|---:|---:|---|');
  for (const c of configs) {
    const R = results.part1[c.name];
    const tps = R.tokens.map((t, i) => t / R.s[i]);
    lines.push(`| ${c.name} | ${f(median(R.s))} | ${f(median(tps), 1)} | ${f(median(R.ratio))} | ${R.ratio.map((x) => f(x)).join(', ')} |`);
  }
  lines.push('');
  lines.push(`part 2: ${opt.clients} clients x ${opt.turns} turns (instant, 16 tokens), routing over A+B`);
  lines.push('| policy | prompt-cache hit rate (servers\' counters) | per round | tokens/s (median) | per round | affinity kept / moved |');
  lines.push('|---|---:|---|---:|---|---|');
  for (const p of ['affinity', 'round-robin']) {
    const R = results.part2[p];
    lines.push(`| ${p} | ${f(100 * R.cached / Math.max(1, R.cached + R.processed), 1)}% | ${R.hit.map((x) => f(100 * x, 1) + '%').join(', ')} | ` +
      `${f(median(R.tps), 1)} | ${R.tps.map((x) => f(x, 1)).join(', ')} | ${R.hits} / ${R.moves} |`);
  }
  const a = results.part2.affinity, b = results.part2['round-robin'];
  lines.push('');
  lines.push(`affinity / round-robin: tokens/s per round ${a.tps.map((x, i) => f(x / b.tps[i])).join(', ')}; prompt tokens computed ` +
    `${a.processed} vs ${b.processed}`);
  lines.push(`requests sent again after llama-server refused a random output: ${refused}`);
  console.log(lines.join('\n'));
  if (opt.json) fs.writeFileSync(opt.json, JSON.stringify(results, null, 2));
}

main().then(() => { for (const c of children) c.kill('SIGTERM'); process.exit(0); },
  (e) => { console.error('bench/run-cluster: ' + (e.stack || e)); for (const c of children) c.kill('SIGKILL'); process.exit(1); });
