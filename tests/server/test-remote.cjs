// `muse serve --backend URL`: Muse's modes and agents on llama-server (built from the pinned
// source) instead of a local model, driven by the official openai SDK. Instant and streamed
// answers, contemplating as K requests, the model and metrics; a cancelled stream stops
// llama-server's generation; a dead backend is a 503 naming it and the server stays up; bad
// --backend flags and an unreachable backend are clear startup errors. Two llama-servers
// behind one Muse: affinity, spread, failover when one is killed and its breaker closing when
// it is back; a slow server (behind a delaying proxy) gets fewer requests; the local model as
// a member beside a server; a backends file with weights and limits, and its errors.
// usage: node test-remote.cjs MUSE_BINARY MKMODEL LLAMA_SERVER WORK_DIR   (NODE_PATH: the cache's node_modules)
'use strict';
const fs = require('fs');
const http = require('http');
const net = require('net');
const path = require('path');
const zlib = require('zlib');
const { spawn, execFileSync, spawnSync } = require('child_process');
const OpenAI = require('openai');
const { check, summary, startServer, waitExit, metric, waitFor, pngChunk } = require('./lib.cjs');

const [muse, mkmodel, llamaServer, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const env = { MUSE_CACHE_DIR: path.join(work, 'cache'), OMP_WAIT_POLICY: 'passive' };

const freePort = () => new Promise((resolve) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
});

// llama-server on a free port (or the given one), resolved once /health answers 200 (the model
// is loaded).
async function startLlamaServer(model, fixedPort, extra = []) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = fixedPort || await freePort();
    const log = fs.openSync(path.join(work, `llama-server-${port}.log`), 'w');
    const proc = spawn(llamaServer, ['-m', model, '--host', '127.0.0.1', '--port', String(port), '-c', '4096', '-np', '4', '-t', '2',
      '--jinja', '--metrics', '--no-webui', ...extra], { stdio: ['ignore', log, log] });
    const url = `http://127.0.0.1:${port}`;
    const ready = await waitFor(async () => proc.exitCode === null && (await fetch(`${url}/health`).then((r) => r.status === 200, () => false)), 120000);
    if (ready) return { url, proc };
    proc.kill('SIGKILL');
    await waitExit(proc, 10000);
  }
  throw new Error('llama-server did not start; see the logs in ' + work);
}

// A small RGB PNG (a gradient), for a picture in a request.
function png(w, h) {
  const chunk = pngChunk;
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 2;
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const o = y * (w * 3 + 1) + 1 + x * 3;
    raw[o] = (x * 4) & 255; raw[o + 1] = (y * 5) & 255; raw[o + 2] = 128;
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

// A proxy that holds every request `delayMs` before passing it to `upstream`: a slow server.
function delayingProxy(upstream, delayMs) {
  const target = new URL(upstream);
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => setTimeout(() => {
      if (stats.bodies.length < 64) stats.bodies.push(Buffer.concat(chunks).toString());
      const up = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => { res.writeHead(502); res.end(); });
      res.on('close', () => up.destroy());
      up.end(Buffer.concat(chunks));
    }, delayMs));
  });
  const stats = { connections: 0, bodies: [] };
  server.on('connection', () => { stats.connections++; });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${server.address().port}`, server, stats })));
}

// `muse serve ARGS` that must fail: its exit code and stderr.
function failing(args) {
  return new Promise((resolve) => {
    const p = spawn(muse, ['serve', '--port', '0', '--data-dir', ':memory:', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), 60000);
    p.on('exit', (code) => { clearTimeout(t); resolve({ code, err }); });
  });
}

async function main() {
  const model = path.join(work, 'tiny-qwen.gguf');
  execFileSync(mkmodel, ['--family', 'qwen2', '--quiet', '-o', model]);
  const ls = await startLlamaServer(model);
  let srv = null;
  try {
    srv = await startServer(muse, ['--backend', ls.url, '--quiet'], env);
    const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'none' });

    const models = await client.models.list();
    const m = models.data[0];
    // llama-server names its model by the path it loaded; Muse serves it under that name.
    check('/v1/models: the remote model, with its backend', m && m.meta && m.meta.backend === 'remote' && m.meta.url === ls.url &&
      m.id === model && m.meta.n_ctx === 1024, m);

    const r = await client.chat.completions.create({ model: m.id, messages: [{ role: 'user', content: 'hi' }], max_tokens: 6, mode: 'instant', temperature: 0 });
    check('instant through llama-server: an answer, counted', r.choices[0].message.content.length > 0 && r.usage.completion_tokens === 6 &&
      r.usage.prompt_tokens > 0, r.usage);

    const stream = await client.chat.completions.create({ model: m.id, messages: [{ role: 'user', content: 'hello there' }], max_tokens: 8,
      mode: 'thinking', thinking_budget: 8, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '', chunks = 0, usage = null;
    for await (const c of stream) {
      chunks++;
      if (c.choices[0] && c.choices[0].delta && c.choices[0].delta.content) text += c.choices[0].delta.content;
      if (c.usage) usage = c.usage;
    }
    check('streamed through llama-server: deltas and the usage', chunks > 2 && usage && usage.completion_tokens > 0, { chunks, usage });

    const rc = await client.chat.completions.create({ model: m.id, messages: [{ role: 'user', content: 'What is 2 + 2?' }], max_tokens: 6,
      mode: 'contemplating', agents: 3, thinking_budget: 12, temperature: 0.5, seed: 25, planner: false });
    const solvers = rc.muse.agents.filter((a) => a.kind === 'solver');
    check('contemplating through llama-server: three solver requests, each with tokens or the backend\'s refusal in words',
      solvers.length === 3 && solvers.some((a) => a.tokens > 0) && ['vote', 'synthesis', 'single'].includes(rc.muse.aggregation), rc.muse.agents.map((a) => [a.kind, a.tokens]));
    const sent = await metric(srv.url, null, 'muse_remote_requests_total');
    check('/metrics counts the requests sent to the backend', sent >= 6, sent);

    // A cancelled stream closes the connection: llama-server stops generating.
    const ac = new AbortController();
    const long = await client.chat.completions.create({ model: m.id, messages: [{ role: 'user', content: 'Write a very long essay.' }],
      max_tokens: 4000, mode: 'instant', temperature: 1, seed: 3, stream: true }, { signal: ac.signal });
    let got = 0;
    try {
      for await (const c of long) { if (c.choices[0] && c.choices[0].delta && c.choices[0].delta.content && ++got >= 3) ac.abort(); }
    } catch (e) { /* the abort */ }
    const busy = async () => (await fetch(`${ls.url}/metrics`).then((x) => x.text())).match(/^llamacpp:requests_processing (\d+)/m);
    const idle = await waitFor(async () => { const b = await busy(); return b && b[1] === '0'; }, 30000);
    check('a cancelled stream stops the generation on llama-server', got >= 3 && idle, got);
    check('... and Muse counts it cancelled, nothing left in flight', await waitFor(async () =>
      (await metric(srv.url, null, 'muse_remote_cancelled_total')) >= 1 && (await metric(srv.url, null, 'muse_remote_in_flight')) === 0, 20000));

    // The backend dies: a 503 that names it, and Muse stays up.
    ls.proc.kill('SIGKILL');
    await waitExit(ls.proc, 10000);
    const dead = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, mode: 'instant' }) });
    const deadErr = dead.status === 503 ? (await dead.json()).error : {};
    check('a dead backend: 503 backend_unavailable naming it', dead.status === 503 && deadErr.code === 'backend_unavailable' &&
      deadErr.message.includes(ls.url), [dead.status, deadErr]);
    check('... and Muse is still up', (await fetch(`${srv.url}/health`)).status === 200 && srv.proc.exitCode === null);
  } finally {
    if (srv) { srv.proc.kill('SIGTERM'); await waitExit(srv.proc, 30000); }
    if (ls.proc.exitCode === null) { ls.proc.kill('SIGKILL'); await waitExit(ls.proc, 10000); }
  }

  // Two llama-servers behind one Muse: conversations spread over both and each stays on one;
  // one server killed, and every request still succeeds (failover before the first token),
  // with its breaker open.
  const la = await startLlamaServer(model), lb = await startLlamaServer(model);
  let two = null;
  try {
    two = await startServer(muse, ['--backend', la.url, '--backend', lb.url, '--quiet'], env);
    const ask = (content) => fetch(`${two.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content }], max_tokens: 3, mode: 'instant', temperature: 0 }) });
    const sent = async (u) => metric(two.url, null, `muse_routing_requests_total\\{backend="${u.replace(/\./g, '\\.')}"\\}`);
    const statuses = [];
    for (let c = 0; c < 12; c++) statuses.push((await ask(`Conversation number ${c}`)).status);
    const [na, nb] = [await sent(la.url), await sent(lb.url)];
    check('two backends: twelve conversations answered, spread over both', statuses.every((s) => s === 200) && na > 0 && nb > 0 && na + nb === 12,
      { statuses, na, nb });
    for (let k = 0; k < 3; k++) await ask('Conversation number 5');
    const [ma, mb] = [await sent(la.url), await sent(lb.url)];
    check('two backends: one conversation stays on one server', (ma - na === 3 && mb === nb) || (mb - nb === 3 && ma === na), { na, nb, ma, mb });

    la.proc.kill('SIGKILL');
    await waitExit(la.proc, 10000);
    const after = [];
    for (let c = 0; c < 12; c++) after.push((await ask(`After the crash ${c}`)).status);
    check('one backend killed: every request still answered by the other, no 5xx', after.every((s) => s === 200), after);
    const failovers = await metric(two.url, null, `muse_routing_failovers_total\\{backend="${la.url.replace(/\./g, '\\.')}"\\}`);
    const open = await metric(two.url, null, `muse_routing_breaker_open\\{backend="${la.url.replace(/\./g, '\\.')}"\\}`);
    // Whether a request met the dead server first (a failover) or the health check found it
    // first, its breaker is open now.
    check('... and its breaker is open', open === 1, { failovers, open });

    // The server comes back on its address: a health check closes its breaker (every 5 s), and
    // new conversations reach it again.
    const back = await startLlamaServer(model, Number(new URL(la.url).port));
    la.proc = back.proc;
    const closed = await waitFor(async () => (await metric(two.url, null, `muse_routing_breaker_open\\{backend="${la.url.replace(/\./g, '\\.')}"\\}`)) === 0, 30000);
    const beforeBack = await sent(la.url);
    for (let c = 0; c < 6; c++) await ask(`Back again ${c}`);
    check('the killed server is back: its breaker closes and it gets requests again', closed && (await sent(la.url)) > beforeBack,
      { closed, beforeBack, now: await sent(la.url) });
  } finally {
    if (two) { two.proc.kill('SIGTERM'); await waitExit(two.proc, 30000); }
    for (const l of [la, lb]) if (l.proc.exitCode === null) { l.proc.kill('SIGKILL'); await waitExit(l.proc, 10000); }
  }

  // A slow server (every request held 1.5 s by a proxy) beside a fast one: new conversations go
  // to the server with fewer requests in flight, so the slow one gets few of them.
  const fast = await startLlamaServer(model), slowUp = await startLlamaServer(model);
  const proxy = await delayingProxy(slowUp.url, 1500);
  let mix = null;
  try {
    mix = await startServer(muse, ['--backend', fast.url, '--backend', proxy.url, '--quiet'], env);
    const ask = (content) => fetch(`${mix.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content }], max_tokens: 3, mode: 'instant', temperature: 0 }) }).then((r) => r.status);
    const sent = async (u) => metric(mix.url, null, `muse_routing_requests_total\\{backend="${u.replace(/\./g, '\\.')}"\\}`);
    const statuses = [];
    let next = 0;
    const client = async () => { while (next < 24) statuses.push(await ask(`Client question ${next++}`)); };
    await Promise.all([client(), client(), client(), client()]);
    const [nf, ns] = [await sent(fast.url), await sent(proxy.url)];
    check('a slow server beside a fast one: all answered, the slow one gets at most a quarter', statuses.length === 24 &&
      statuses.every((x) => x === 200) && nf + ns === 24 && ns <= 6, { nf, ns, statuses });
    const fastLat = (await metric(mix.url, null, `muse_routing_first_token_seconds_total\\{backend="${fast.url.replace(/\./g, '\\.')}"\\}`)) / nf;
    const slowLat = (await metric(mix.url, null, `muse_routing_first_token_seconds_total\\{backend="${proxy.url.replace(/\./g, '\\.')}"\\}`)) / ns;
    check('... and /metrics shows its latency', slowLat >= 1.4 && fastLat < slowLat, { fastLat, slowLat });
  } finally {
    if (mix) { mix.proc.kill('SIGTERM'); await waitExit(mix.proc, 30000); }
    proxy.server.close();
    slowUp.proc.kill('SIGKILL');
    await waitExit(slowUp.proc, 10000);
  }

  // Connections are kept alive: twelve requests one after another reach the server over the
  // same TCP connection (a proxy that adds no delay counts them).
  const counting = await delayingProxy(fast.url, 0);
  let kept = null;
  try {
    kept = await startServer(muse, ['--backend', counting.url, '--quiet'], env);
    const before = counting.stats.connections;  // startup: /v1/models and /props
    const statuses = [];
    for (let c = 0; c < 12; c++) {
      statuses.push((await fetch(`${kept.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ messages: [{ role: 'user', content: `Kept alive ${c}` }], max_tokens: 3, mode: 'instant', temperature: 0 }) })).status);
    }
    const opened = counting.stats.connections - before;
    check('twelve requests in a row reuse one kept-alive connection to the server', statuses.every((x) => x === 200) && opened <= 1,
      { opened, before, statuses });
    // Its template renders tools: a thinking request offers Muse's tools to it.
    const n0 = counting.stats.bodies.length;
    await fetch(`${kept.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'What is 12 * 7?' }], mode: 'thinking', thinking_budget: 8, max_tokens: 4, temperature: 0 }) });
    const thinking = counting.stats.bodies.slice(n0).filter((b) => b.includes('"messages"'));
    check('a template with tools: a thinking request offers the tools', thinking.length >= 1 &&
      thinking.some((b) => Array.isArray(JSON.parse(b).tools) && JSON.parse(b).tools.length > 0), thinking.map((b) => Object.keys(JSON.parse(b))));
  } finally {
    if (kept) { kept.proc.kill('SIGTERM'); await waitExit(kept.proc, 30000); }
    counting.server.close();
  }

  // The local model beside a server, from a backends file with weights and limits; /v1/models
  // lists every member.
  const file = path.join(work, 'backends.json');
  fs.writeFileSync(file, JSON.stringify({ backends: [{ url: fast.url, weight: 3, max_in_flight: 2 }, { url: 'local', weight: 1 }] }));
  let both = null;
  try {
    both = await startServer(muse, ['--model', model, '--backends', file, '--quiet', '--threads', '1'], env);
    check('a backends file: the startup line names the members, weights and limits',
      /routing over: .*:\d+ \(weight 3, at most 2 at once\), local \(weight 1\)/.test(both.log()), both.log());
    const list = (await (await fetch(`${both.url}/v1/models`)).json()).data[0].meta;
    check('/v1/models lists each member with its model, weight and state', list.backend === 'routing' && list.policy === 'affinity' &&
      list.members.length === 2 && list.members[0].weight === 3 && list.members[0].max_in_flight === 2 && list.members[1].name === 'local' &&
      list.members.every((x) => x.available === true && typeof x.model === 'string' && x.model.length > 0), list);
    const ask = (content) => fetch(`${both.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content }], max_tokens: 3, mode: 'instant', temperature: 0 }) }).then((r) => r.status);
    const statuses = [];
    for (let c = 0; c < 8; c++) statuses.push(await ask(`Local or remote ${c}`));
    const local = await metric(both.url, null, 'muse_routing_requests_total\\{backend="local"\\}');
    const remote = await metric(both.url, null, `muse_routing_requests_total\\{backend="${fast.url.replace(/\./g, '\\.')}"\\}`);
    check('the local model and llama-server share the requests', statuses.every((x) => x === 200) && local > 0 && remote > 0 && local + remote === 8,
      { statuses, local, remote });
  } finally {
    if (both) { both.proc.kill('SIGTERM'); await waitExit(both.proc, 30000); }
    fast.proc.kill('SIGKILL');
    await waitExit(fast.proc, 10000);
  }
  const bad = async (json, want, extra = []) => {
    fs.writeFileSync(file, typeof json === 'string' ? json : JSON.stringify(json));
    const r = await failing(['--backends', file, ...extra]);
    check(`a bad backends file (${want}): exit 2 naming it`, r.code === 2 && r.err.includes('--backends') && r.err.includes(want), r);
  };
  await bad([{ url: 'http://127.0.0.1:1', wieght: 2 }], 'unknown key "wieght"');
  await bad([{ url: 'http://127.0.0.1:1', weight: 0 }], 'weight must be a whole number in [1, 1000]');
  await bad([{ url: 'http://127.0.0.1:1', max_in_flight: 1e9 }], 'max_in_flight must be');
  await bad([{ url: 'http://127.0.0.1:1', key_env: 'MUSE_TEST_NO_SUCH_VARIABLE' }], 'MUSE_TEST_NO_SUCH_VARIABLE is not set');
  await bad([{ url: 'local' }, { url: 'local' }], 'listed twice');
  await bad([{ url: 'ftp://x' }], 'http://');
  await bad('{"backends": [', 'not valid JSON');
  await bad([], 'no backends listed');
  await bad({ servers: [] }, 'unknown key "servers"');
  const missing = await failing(['--backends', path.join(work, 'no-such-file.json')]);
  check('a missing backends file: exit 2 naming it', missing.code === 2 && missing.err.includes('no-such-file.json'), missing);
  const policy = await failing(['--backend', 'http://127.0.0.1:1', '--routing', 'random']);
  check('an unknown --routing policy: exit 2 naming the choices', policy.code === 2 && /affinity, least-loaded or round-robin/.test(policy.err), policy);

  // A llama-server with a vision projector: Muse sends images to it as pictures (PNG data URIs
  // in image_url parts), and its prompt grows by the image's tokens.
  const mmproj = path.join(work, 'tiny-mmproj.gguf');
  execFileSync(mkmodel, ['--family', 'mmproj', '--quiet', '-o', mmproj]);
  const lv = await startLlamaServer(model, 0, ['--mmproj', mmproj]);
  let vis = null;
  try {
    vis = await startServer(muse, ['--backend', lv.url, '--quiet'], env);
    const meta = (await (await fetch(`${vis.url}/v1/models`)).json()).data[0].meta;
    check('a llama-server with a projector: /v1/models says it sees images', meta.vision === true, meta);
    const ask = (content) => fetch(`${vis.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content }], max_tokens: 2, mode: 'instant', temperature: 0 }) });
    const plain = await ask('Describe the picture.');
    const pj = await plain.json();
    const withImage = await ask([{ type: 'text', text: 'Describe the picture.' },
      { type: 'image_url', image_url: { url: 'data:image/png;base64,' + png(64, 48).toString('base64') } }]);
    const wj = await withImage.json();
    const served = await (await fetch(`${lv.url}/metrics`)).text();
    check('an image reaches the remote model as a picture: the prompt grows by its tokens, not by OCR text',
      plain.status === 200 && withImage.status === 200 && wj.usage.prompt_tokens > pj.usage.prompt_tokens &&
      !(wj.muse && JSON.stringify(wj.muse.attachments || []).includes('ocr_text":"')), { plain: pj.usage, image: wj.usage, att: wj.muse && wj.muse.attachments });
  } finally {
    if (vis) { vis.proc.kill('SIGTERM'); await waitExit(vis.proc, 30000); }
    lv.proc.kill('SIGKILL');
    await waitExit(lv.proc, 10000);
  }

  // Budget forcing on the server: a model whose template opens the reasoning with a thinking tag (Qwen3.5's), a
  // thinking budget of 8 tokens; llama-server closes the reasoning there (thinking_budget_tokens).
  // A random model trips llama-server's output parser now and then, so a few seeds are tried;
  // every answered one must keep the budget.
  const llamaDir = execFileSync(path.join(__dirname, '..', '..', 'scripts', 'setup')).toString().trim().split('\n').pop();
  const thinker = path.join(work, 'tiny-qwen3.gguf');
  execFileSync(mkmodel, ['--family', 'qwen2', '--quiet', '--template', path.join(llamaDir, 'models', 'templates', 'Qwen3.5-4B.jinja'), '-o', thinker]);
  const lt = await startLlamaServer(thinker);
  let th = null;
  try {
    th = await startServer(muse, ['--backend', lt.url, '--quiet'], env);
    const tokens = async (t) => (await (await fetch(`${lt.url}/tokenize`, { method: 'POST', body: JSON.stringify({ content: t }) })).json()).tokens.length;
    const kept = [], unbounded = [];
    for (let seed = 1; seed <= 6 && (kept.length < 2 || unbounded.length < 1); seed++) {
      for (const budget of [8, 200]) {
        const r = await fetch(`${th.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ messages: [{ role: 'user', content: 'Think about the sea.' }], mode: 'thinking', thinking_budget: budget,
            max_tokens: 48, temperature: 1, seed }) });
        if (r.status !== 200) continue;
        const j = await r.json();
        const n = await tokens(j.choices[0].message.reasoning_content || '');
        (budget === 8 ? kept : unbounded).push(n);
      }
    }
    check('budget forcing on llama-server: a budget of 8 closes the reasoning within it, a large one does not',
      kept.length >= 2 && kept.every((n) => n <= 10) && unbounded.some((n) => n > 12), { kept, unbounded });
  } finally {
    if (th) { th.proc.kill('SIGTERM'); await waitExit(th.proc, 30000); }
    lt.proc.kill('SIGKILL');
    await waitExit(lt.proc, 10000);
  }

  // A model whose chat template cannot render tools (plain ChatML): llama-server's /props says
  // so, and Muse offers no tools to it, as to such a local model.
  const plain = path.join(work, 'tiny-chatml.gguf');
  execFileSync(mkmodel, ['--family', 'qwen2', '--quiet', '--template', path.join(__dirname, '..', '..', 'bench', 'chatml.jinja'), '-o', plain]);
  const lp = await startLlamaServer(plain);
  const spy = await delayingProxy(lp.url, 0);
  let np = null;
  try {
    np = await startServer(muse, ['--backend', spy.url, '--quiet'], env);
    const meta = (await (await fetch(`${np.url}/v1/models`)).json()).data[0].meta;
    const r = await fetch(`${np.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'What is 12 * 7?' }], mode: 'thinking', thinking_budget: 8, max_tokens: 4, temperature: 0 }) });
    const sent = spy.stats.bodies.filter((b) => b.includes('"messages"'));
    check('a template without tools: /v1/models says so, and no request carries tools', meta.tools === false && sent.length >= 1 &&
      sent.every((b) => !('tools' in JSON.parse(b))) && [200, 503].includes(r.status), { tools: meta.tools, sent: sent.length, status: r.status });
  } finally {
    if (np) { np.proc.kill('SIGTERM'); await waitExit(np.proc, 30000); }
    spy.server.close();
    lp.proc.kill('SIGKILL');
    await waitExit(lp.proc, 10000);
  }

  // muse eval on a served model: Muse-Tiny behind llama-server, ten sums with known answers,
  // Thinking at temperature 0.
  const tiny = path.join(__dirname, '..', '..', 'models', 'muse-tiny.gguf');
  const le = await startLlamaServer(tiny);
  try {
    const tasks = path.join(work, 'sums.jsonl');
    const pairs = [[487, 356], [120, 905], [738, 264], [555, 445], [901, 99], [346, 782], [610, 207], [873, 128], [259, 641], [432, 519]];
    fs.writeFileSync(tasks, pairs.map(([a, b], i) => JSON.stringify({ id: `s${i}`, question: `What is ${a} + ${b}?`, answer: String(a + b) })).join('\n') + '\n');
    const out = execFileSync(muse, ['eval', tasks, '--backend', le.url, '--modes', 'thinking', '--temp', '0', '--json', '--quiet'],
      { env: { ...process.env, ...env }, timeout: 300000 }).toString();
    const rep = JSON.parse(out);
    const row = (rep.modes || []).find((m) => m.mode === 'thinking') || {};
    check('muse eval --backend: Muse-Tiny on llama-server answers the sums in Thinking', row.questions === 10 && row.correct >= 8 &&
      String(rep.model_path) === le.url, { row, model: rep.model, model_path: rep.model_path });
    const ask = spawnSync(muse, ['ask', '--backend', le.url, '--mode', 'thinking', '--temp', '0', 'What is 487 + 356?'], { env: { ...process.env, ...env } });
    check('muse ask --backend: Muse-Tiny on llama-server says 843', ask.status === 0 && ask.stdout.toString().trim().endsWith('843'),
      [ask.status, ask.stdout.toString(), ask.stderr.toString()]);
    const chat = spawnSync(muse, ['chat', '--backend', le.url, '--mode', 'thinking', '--temp', '0', '--data-dir', path.join(work, 'chat-data')],
      { env: { ...process.env, ...env }, input: 'What is 120 + 905?\n' });
    check('muse chat --backend: a piped question answered by the served model', chat.status === 0 && /\b1025\b/.test(chat.stdout.toString()),
      [chat.status, chat.stdout.toString(), chat.stderr.toString()]);
    const both = spawnSync(muse, ['eval', tasks, '--backend', le.url, '--model', 'tiny'], { env: { ...process.env, ...env } });
    check('muse eval --backend with --model: a usage error', both.status === 2 && /leave out --model/.test(both.stderr.toString()), both.stderr.toString());
  } finally {
    le.proc.kill('SIGKILL');
    await waitExit(le.proc, 10000);
  }

  // Startup errors.
  const unreachable = await failing(['--backend', `http://127.0.0.1:${await freePort()}`]);
  check('an unreachable backend: exit 1, saying so', unreachable.code === 1 && /cannot be reached/.test(unreachable.err), unreachable);
  const ftp = await failing(['--backend', 'ftp://example.com']);
  check('a backend URL that is not http://: exit 2 naming the flag', ftp.code === 2 && /--backend/.test(ftp.err) && /http:\/\//.test(ftp.err), ftp);
  const withLocal = await failing(['--backend', `http://127.0.0.1:${await freePort()}`, '--model', 'smoke']);
  check('--backend with --model and the server unreachable: exit 1 naming it', withLocal.code === 1 && /cannot be reached/.test(withLocal.err), withLocal);
}

main().then(() => process.exit(summary()), (e) => { console.log('FAIL exception: ' + (e.stack || e)); summary(); process.exit(1); });
