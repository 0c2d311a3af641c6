// `muse serve` end to end on the generated smoke model, driven by the official `openai` npm
// package (unchanged) and plain HTTP: chat, streaming, tools, JSON schema, contemplating with
// agent-tagged deltas and the muse trace, files, keys, limits, disconnects, 429, SIGTERM.
// usage: node test-server.cjs MUSE_BINARY WORK_DIR   (NODE_PATH: the cache's node_modules)
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');
const { execFileSync } = require('child_process');
const OpenAI = require('openai');
const { toFile } = require('openai');
const { check, summary, startServer, waitExit, metric, waitFor } = require('./lib.cjs');

const [muse, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const env = { MUSE_CACHE_DIR: path.join(work, 'cache'), OMP_WAIT_POLICY: 'passive' };
const KEY = 'sk-muse-test-key';
const MKEY = 'sk-muse-metrics-key';

async function expectError(name, promise, status, test) {
  try {
    await promise;
    check(name, false, 'no error');
  } catch (e) {
    check(name, e.status === status && (!test || test(e)), `${e.status} ${e.message}`);
  }
}

async function main() {
  // A local host serving an image, allowed with --allow-image-host (the only remote images Muse fetches).
  const png = path.join(work, 'note.png');
  execFileSync('convert', ['-size', '520x120', 'xc:white', '-font', 'DejaVu-Sans', '-fill', 'black', '-pointsize', '34',
    '-annotate', '+20+70', 'Invoice total 4821 EUR', png]);
  const imageHost = http.createServer((req, res) => {
    if (req.url === '/note.png') { res.writeHead(200, { 'Content-Type': 'image/png' }); res.end(fs.readFileSync(png)); }
    else { res.writeHead(404); res.end(); }
  });
  await new Promise((r) => imageHost.listen(0, '127.0.0.1', r));
  const imagePort = imageHost.address().port;
  const srv = await startServer(muse, ['--api-key', KEY, '--threads', '2', '--max-tokens', '512', '--quiet',
                                       '--allow-image-host', '127.0.0.1', '--metrics-key', MKEY], env);
  const url = srv.url;
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: KEY, maxRetries: 0, timeout: 120000 });
  try {
    // --- models, health ---------------------------------------------------------------
    const models = await client.models.list();
    const model = models.data[0].id;
    check('models.list names the served model', model === 'smoke-muse-glimmer', models.data);
    const health = await fetch(`${url}/health`);
    check('/health needs no key', health.status === 200);
    const port = new URL(url).port;
    const second = await startServer(muse, ['--port', port, '--api-key', KEY], env).then((s) => { s.proc.kill('SIGKILL'); return 'started'; },
      (e) => String(e.message));
    check('a second server on a busy port fails and says so', /exited with 2/.test(second) && /port is in use/.test(second), second);

    // --- keys -------------------------------------------------------------------------
    const anon = await fetch(`${url}/v1/chat/completions`, { method: 'POST', body: '{}' });
    check('no key: 401', anon.status === 401);
    const anonBody = await anon.json();
    check('401 uses the OpenAI error shape', anonBody.error && anonBody.error.type === 'authentication_error', anonBody);
    for (const route of ['/v1/models', '/metrics', '/v1/files', '/v1/files/file-x']) {
      const r = await fetch(`${url}${route}`);
      check(`no key on ${route}: 401`, r.status === 401);
    }
    const page = await fetch(`${url}/`);
    const pageText = await page.text();
    check('no key on /: 401 carrying the web chat page, which asks for the key', page.status === 401 &&
          pageText.includes('<title>Muse</title>') && pageText.includes('key-dialog'), page.status);
    const pageWithKey = await fetch(`${url}/`, { headers: { Authorization: `Bearer ${KEY}` } });
    check('with a key, / is 200', pageWithKey.status === 200);
    const wrong = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
    await expectError('SDK with a wrong key: AuthenticationError', wrong.models.list(), 401);

    // --- chat, not streamed -------------------------------------------------------------
    const r1 = await client.chat.completions.create({
      model, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hello.' }],
      max_tokens: 12, temperature: 0, seed: 7, reasoning_effort: 'none',
    });
    const c1 = r1.choices[0];
    check('chat: an answer', typeof c1.message.content === 'string' && c1.message.content.length > 0, r1);
    check('chat: finish_reason', ['stop', 'length'].includes(c1.finish_reason), c1.finish_reason);
    check('chat: usage', r1.usage.prompt_tokens > 0 && r1.usage.completion_tokens > 0 &&
          r1.usage.total_tokens === r1.usage.prompt_tokens + r1.usage.completion_tokens, r1.usage);
    check('chat: reasoning_effort none runs instant', r1.muse && r1.muse.mode === 'instant', r1.muse && r1.muse.mode);
    const r1b = await client.chat.completions.create({
      model, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hello.' }],
      max_tokens: 12, temperature: 0, seed: 7, reasoning_effort: 'none',
    });
    check('chat: same seed, same answer', r1b.choices[0].message.content === c1.message.content);
    check('prompt cache: the same conversation again reuses its prompt', r1b.usage.prompt_tokens_details.cached_tokens >= r1.usage.prompt_tokens - 1,
          r1b.usage);

    const rp = await client.chat.completions.create({
      model, messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 8, temperature: 0.5, seed: 7,
      reasoning_effort: 'none', frequency_penalty: 1.5, presence_penalty: 0.5,
    });
    check('chat: frequency and presence penalties are accepted', rp.choices[0].message.content.length > 0 &&
          rp.usage.completion_tokens > 0, rp.choices[0]);

    const rn = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Name a colour.' }],
      max_tokens: 6, n: 2, mode: 'instant' });
    check('n = 2: two choices', rn.choices.length === 2 && rn.choices[1].index === 1, rn.choices.length);

    // --- thinking: reasoning_content separated ------------------------------------------
    const rt = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'What is 12 * 12?' }],
      max_tokens: 16, reasoning_effort: 'low', thinking_budget: 24 });
    check('thinking: mode and reasoning_content', rt.muse.mode === 'thinking' && typeof rt.choices[0].message.reasoning_content === 'string' &&
          rt.choices[0].message.reasoning_content.length > 0, rt.muse.mode);

    // --- streaming ---------------------------------------------------------------------
    const stream = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Count to five.' }],
      max_tokens: 16, stream: true, stream_options: { include_usage: true }, mode: 'instant' });
    let text = '', finish = null, usage = null, chunks = 0, tagged = 0;
    for await (const chunk of stream) {
      chunks++;
      if (chunk.usage) usage = chunk.usage;
      const ch = chunk.choices[0];
      if (!ch) continue;
      if (ch.delta && ch.delta.content) { text += ch.delta.content; if (chunk.muse && chunk.muse.agent === 0) tagged++; }
      if (ch.finish_reason) finish = ch.finish_reason;
    }
    check('stream: content deltas', text.length > 0 && chunks > 3, { chunks, text });
    check('stream: deltas name their agent', tagged > 0);
    check('stream: finish_reason', finish === 'length' || finish === 'stop', finish);
    check('stream: include_usage', usage && usage.completion_tokens > 0, usage);

    // --- tools (the client's own) --------------------------------------------------------
    // The arguments follow the schema (a random-weight model rarely ends a free string: city is capped).
    const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Current weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'] } } }];
    const rtool = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Weather in Oslo?' }],
      tools, tool_choice: { type: 'function', function: { name: 'get_weather' } }, max_tokens: 160, mode: 'instant', temperature: 0 });
    const call = rtool.choices[0].message.tool_calls && rtool.choices[0].message.tool_calls[0];
    let args = null;
    try { args = call && JSON.parse(call.function.arguments); } catch (e) { /* checked below */ }
    check('tools: finish_reason tool_calls', rtool.choices[0].finish_reason === 'tool_calls', rtool.choices[0]);
    check('tools: the call names the function with arguments that follow its schema', call && call.type === 'function' &&
          call.function.name === 'get_weather' && args && typeof args.city === 'string', call);
    if (call) {
      const follow = await client.chat.completions.create({ model, max_tokens: 8, mode: 'instant', tools, messages: [
        { role: 'user', content: 'Weather in Oslo?' }, rtool.choices[0].message,
        { role: 'tool', tool_call_id: call.id, content: '{"temp_c": 4, "sky": "rain"}' }] });
      check('tools: the tool result goes back in and an answer comes', follow.choices.length === 1 &&
            ['stop', 'length', 'tool_calls'].includes(follow.choices[0].finish_reason), follow.choices[0]);
    }
    const stool = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Weather in Oslo?' }],
      tools, tool_choice: 'required', max_tokens: 160, mode: 'instant', temperature: 0, stream: true });
    let streamedCall = null;
    for await (const chunk of stool) {
      const d = chunk.choices[0] && chunk.choices[0].delta;
      if (d && d.tool_calls) streamedCall = d.tool_calls[0];
    }
    check('tools: streamed tool call', streamedCall && streamedCall.function.name === 'get_weather', streamedCall);

    // --- JSON schema -------------------------------------------------------------------
    const schema = { type: 'object', properties: { answer: { type: 'integer' }, sure: { type: 'boolean' } },
      required: ['answer', 'sure'], additionalProperties: false };
    const rj = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'What is 6 * 7? Reply in JSON.' }],
      response_format: { type: 'json_schema', json_schema: { name: 'result', schema, strict: true } }, max_tokens: 96, temperature: 0 });
    let parsed = null;
    try { parsed = JSON.parse(rj.choices[0].message.content); } catch (e) { /* checked below */ }
    check('json_schema: the answer parses and fits the schema', parsed && Number.isInteger(parsed.answer) &&
          typeof parsed.sure === 'boolean' && Object.keys(parsed).length === 2, rj.choices[0].message.content);

    // --- contemplating with reasoning_effort high: agent-tagged deltas and the muse trace --
    const sc = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Is 91 a prime number?' }],
      reasoning_effort: 'high', mode: 'contemplating', agents: 3, thinking_budget: 24, max_tokens: 12, planner: false,
      stream: true });
    const agents = new Set(); const events = new Set(); let trace = null, answer = '';
    for await (const chunk of sc) {
      if (chunk.muse) {
        events.add(chunk.muse.event);
        if (chunk.muse.event === 'delta') agents.add(chunk.muse.agent);
        if (chunk.muse.event === 'done') trace = chunk.muse.result;
      }
      const d = chunk.choices[0] && chunk.choices[0].delta;
      if (d && d.content) answer += d.content;
    }
    check('contemplating: deltas from 3 or more agents', agents.size >= 3, [...agents]);
    check('contemplating: start/end events per agent', events.has('agent_start') && events.has('agent_end') && events.has('mode'), [...events]);
    check('contemplating: ends with a muse trace', trace && trace.mode === 'contemplating' &&
          trace.agents.filter((a) => a.kind === 'solver').length === 3 && ['vote', 'synthesis', 'synthesis_all_pruned'].includes(trace.aggregation),
          trace && { mode: trace.mode, aggregation: trace.aggregation, agents: trace.agents.length });
    check('contemplating: the shared prefix was prefilled once', trace && trace.usage.shared_prefix_tokens > 0 && trace.usage.prompt_tokens_reused > 0,
          trace && trace.usage);
    check('contemplating: the final answer is streamed as content', answer.length > 0 && trace && answer === trace.content, { answer });

    // --- bad requests: 400 naming the field, 413 ------------------------------------------
    await expectError('temperature 3: 400 naming the field', client.chat.completions.create({ model, temperature: 3,
      messages: [{ role: 'user', content: 'hi' }] }), 400, (e) => /temperature/.test(e.message) && e.param === 'temperature');
    await expectError('agents 99: 400', client.chat.completions.create({ model, agents: 99, messages: [{ role: 'user', content: 'hi' }] }), 400,
      (e) => /agents/.test(e.message));
    await expectError('verify not a boolean: 400 naming the field', client.chat.completions.create({ model, verify: 'yes',
      messages: [{ role: 'user', content: 'hi' }] }), 400, (e) => /verify/.test(e.message));
    await expectError('max_tokens over the cap: 400', client.chat.completions.create({ model, max_tokens: 100000,
      messages: [{ role: 'user', content: 'hi' }] }), 400, (e) => /max_tokens/.test(e.message));
    const notJson = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' }, body: '{"messages": [' });
    check('malformed JSON: 400', notJson.status === 400 && /JSON/.test((await notJson.json()).error.message));
    const big = Buffer.alloc(49 * 1024 * 1024, 'a');
    const r413 = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' }, body: big })
      .catch((e) => ({ status: 'connection closed: ' + e.message }));
    check('oversized body: 413', r413.status === 413, r413.status);
    const remote = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: [{ type: 'text', text: 'what is it?' },
        { type: 'image_url', image_url: { url: 'http://example.com/cat.png' } }] }] }) });
    check('remote image URL refused without an allowed host', remote.status === 400 && /allow-image-host/.test((await remote.json()).error.message));
    const r2 = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'still fine?' }], max_tokens: 4, mode: 'instant' });
    check('bad requests did not disturb the server', r2.choices[0].message.content.length > 0);

    // --- images and uploaded tables --------------------------------------------------------
    const ru = await client.chat.completions.create({ model, max_tokens: 4, mode: 'instant', messages: [{ role: 'user', content: [
      { type: 'text', text: 'What does the note say?' }, { type: 'image_url', image_url: { url: `http://127.0.0.1:${imagePort}/note.png` } }] }] });
    const fetched = ru.muse.attachments && ru.muse.attachments.find((a) => a.type === 'image');
    check('image_url from an allowed host is fetched', fetched && /4821/.test(fetched.ocr_text), ru.muse.attachments);
    await expectError('image_url 404 on the allowed host: 400 naming it', client.chat.completions.create({ model, max_tokens: 4, messages: [
      { role: 'user', content: [{ type: 'text', text: 'x' }, { type: 'image_url', image_url: { url: `http://127.0.0.1:${imagePort}/missing.png` } }] }] }),
      400, (e) => /404/.test(e.message));
    const dataUri = 'data:image/png;base64,' + fs.readFileSync(png).toString('base64');
    const ri = await client.chat.completions.create({ model, max_tokens: 4, mode: 'instant', messages: [{ role: 'user', content: [
      { type: 'text', text: 'What does the note say?' }, { type: 'image_url', image_url: { url: dataUri } }] }] });
    const img = ri.muse.attachments && ri.muse.attachments.find((a) => a.type === 'image');
    check('image_url data URI: read (OCR on a text-only model)', img && img.width === 520 && /4821/.test(img.ocr_text), ri.muse.attachments);
    const badImg = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] }] }) });
    check('broken image: 400', badImg.status === 400, badImg.status);
    const textUri = 'data:image/png;base64,' + Buffer.from('just some text, not a picture').toString('base64');
    const notImg = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }, { type: 'image_url', image_url: { url: textUri } }] }] }) });
    const notImgErr = notImg.status === 400 ? (await notImg.json()).error : {};
    check('a data URI that is not an image: 400 in words, naming the image and its media type whole',
      notImgErr.param === 'image_url' && /^image 1: image\/png data URI: the data is not a PNG image/.test(notImgErr.message) && !/png\):/.test(notImgErr.message), notImgErr);

    const csv = 'region,amount\nnorth,120\nsouth,340\neast,560\n';
    const file = await client.files.create({ file: await toFile(Buffer.from(csv), 'sales.csv'), purpose: 'user_data' });
    check('files.create: an id', /^file-/.test(file.id) && file.bytes === csv.length, file);
    const listed = await client.files.list();
    check('files.list shows it', listed.data.some((f) => f.id === file.id));
    const rf = await client.chat.completions.create({ model, max_tokens: 4, mode: 'instant', attachments: [file.id],
      messages: [{ role: 'user', content: 'Which region sold most?' }] });
    const tab = rf.muse.attachments && rf.muse.attachments.find((a) => a.type === 'table');
    check('attachments: the uploaded table reaches the prompt', tab && tab.rows === 3 && /amount/.test(tab.summary), rf.muse.attachments);
    await expectError('attachments: unknown file id: 404', client.chat.completions.create({ model, attachments: ['file-nope'],
      messages: [{ role: 'user', content: 'x' }] }), 404);
    await expectError('files.create: a ragged CSV is refused at upload', client.files.create({
      file: await toFile(Buffer.from('a,b\n1,2\n3\n'), 'bad.csv'), purpose: 'user_data' }), 400, (e) => /line 3/.test(e.message));
    const del = await client.files.delete(file.id);
    check('files.delete', del.deleted === true);

    // --- a client that disconnects cancels its sequences --------------------------------------
    const cancelledBefore = await metric(url, MKEY, 'muse_requests_cancelled_total');
    const ac = new AbortController();
    const resp = await fetch(`${url}/v1/chat/completions`, { method: 'POST', signal: ac.signal,
      headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'Write a long story.' }], max_tokens: 512, mode: 'instant', stream: true }) });
    const reader = resp.body.getReader();
    await reader.read();
    ac.abort();
    let live = NaN, cancelled = NaN;
    await waitFor(async () => {
      cancelled = await metric(url, MKEY, 'muse_requests_cancelled_total');
      live = await metric(url, MKEY, 'muse_engine_live_sequences');
      return cancelled > cancelledBefore && live === 0;
    }, 30000);
    check('disconnect: the request is cancelled and its sequences freed', cancelled > cancelledBefore && live === 0, { cancelled, live });

    // --- metrics ---------------------------------------------------------------------------
    const userMetrics = await fetch(`${url}/metrics`, { headers: { Authorization: `Bearer ${KEY}` } });
    check('/metrics with a user key (not the metrics key): 403', userMetrics.status === 403 &&
          (await userMetrics.json()).error.code === 'metrics_key_required', userMetrics.status);
    const mt = await (await fetch(`${url}/metrics`, { headers: { Authorization: `Bearer ${MKEY}` } })).text();
    for (const name of ['muse_requests_total{route="/v1/chat/completions",code="200"}', 'muse_completion_tokens_total', 'muse_queue_depth',
      'muse_engine_batch_tokens_total', 'muse_generated_tokens_per_second', 'muse_request_errors_total']) {
      check(`/metrics has ${name}`, mt.includes(name));
    }
    check('/metrics counts the 400s', /muse_requests_total\{route="\/v1\/chat\/completions",code="400"\} [1-9]/.test(mt));
  } finally {
    srv.proc.kill('SIGTERM');
    const code = await waitExit(srv.proc, 30000);
    check('SIGTERM: exits 0', code === 0, code);
    imageHost.close();
  }

  // --- a second server: a full queue answers 429; SIGTERM lets the running request finish ----
  const small = await startServer(muse, ['--parallel', '1', '--queue', '1', '--threads', '2', '--grace', '30'], env);
  const body = (tokens) => JSON.stringify({ messages: [{ role: 'user', content: 'Tell me everything.' }], max_tokens: tokens, mode: 'instant' });
  const post = (tokens) => fetch(`${small.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: body(tokens) })
    .then(async (r) => ({ status: r.status, retry: r.headers.get('retry-after'), json: await r.json() }));
  // A client that leaves is cancelled the moment its connection closes (the kernel tells the
  // server; nothing polls): a running request that streams nothing, and one waiting its turn.
  {
    const m = (name) => metric(small.url, '', name);
    const leave = (tokens) => {
      const ac = new AbortController();
      const done = fetch(`${small.url}/v1/chat/completions`, { method: 'POST', signal: ac.signal, headers: { 'Content-Type': 'application/json' },
        body: body(tokens) }).then(() => 'answered', () => 'aborted');
      return { abort: () => ac.abort(), done };
    };
    const cancelled0 = await m('muse_requests_cancelled_total');
    const running = leave(4000);
    await waitFor(async () => await m('muse_engine_live_sequences') >= 1, 60000);
    const waiting = leave(8);
    await waitFor(async () => await m('muse_queue_depth') >= 1, 60000);
    waiting.abort();
    const leftQueue = await waitFor(async () => await m('muse_queue_depth') === 0 && await m('muse_requests_cancelled_total') >= cancelled0 + 1, 30000);
    check('a queued client that leaves frees its place while the other still runs',
      leftQueue && await m('muse_requests_running') === 1, { queue: await m('muse_queue_depth'), running: await m('muse_requests_running') });
    running.abort();
    const stopped = await waitFor(async () => await m('muse_engine_live_sequences') === 0 && await m('muse_requests_running') === 0 &&
      await m('muse_requests_cancelled_total') >= cancelled0 + 2, 30000);
    check('a running, unstreamed request whose client leaves is cancelled and its sequence freed', stopped,
      { live: await m('muse_engine_live_sequences'), cancelled: await m('muse_requests_cancelled_total') - cancelled0 });
    check('... the clients saw their own aborts', (await running.done) === 'aborted' && (await waiting.done) === 'aborted');
  }
  // The first runs and the second waits in the queue (seen on /metrics) before the third comes.
  const first = post(400);
  await waitFor(async () => await metric(small.url, '', 'muse_requests_running') >= 1, 60000);
  const second = post(8);
  await waitFor(async () => await metric(small.url, '', 'muse_queue_depth') >= 1, 60000);
  const third = await post(8);
  check('queue full: 429 with Retry-After', third.status === 429 && Number(third.retry) >= 1 && third.json.error.code === 'server_busy', third);
  small.proc.kill('SIGTERM');
  const [a, b] = await Promise.all([first, second]);
  check('SIGTERM: the running request finishes', a.status === 200 && a.json.choices[0].message.content.length > 0, a.status);
  check('SIGTERM: the queued request finishes too', b.status === 200, b.status);
  const code = await waitExit(small.proc, 60000);
  check('SIGTERM: exits 0 after the grace', code === 0, code);
  const after = await fetch(`${small.url}/health`).then(() => 'answered', () => 'refused');
  check('after SIGTERM no new connections', after === 'refused');
}

main().then(() => process.exit(summary()), (e) => { console.log('FAIL exception: ' + (e.stack || e)); summary(); process.exit(1); });
