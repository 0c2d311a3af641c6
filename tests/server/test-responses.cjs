// OpenAI's Responses API on `muse serve`, driven by the official `openai` npm package unchanged:
// streamed responses (the typed events, in order, with sequence numbers, and the SDK's own
// stream helper accumulating them), reasoning and function-call items streamed, continuing a
// streamed response by id with cached tokens, truncation ("auto" drops the oldest turns,
// otherwise a 400 naming the overflow), the per-user prompt-cache salt over stored history,
// and the isolation walk: every route that takes an id, as user B with user A's ids, is a 404.
// usage: node test-responses.cjs MUSE_BINARY WORK_DIR   (NODE_PATH: the cache's node_modules)
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const OpenAI = require('openai');
const { toFile } = require('openai');
const { check, summary, startServer, waitExit } = require('./lib.cjs');

const [muse, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const env = { MUSE_CACHE_DIR: path.join(work, 'cache'), OMP_WAIT_POLICY: 'passive' };
const data = path.join(work, 'data');
const addUser = (name) => execFileSync(muse, ['users', 'add', name, '--data-dir', data], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
const client = (url, key) => new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0, timeout: 120000 });

async function status(promise) {
  try { await promise; return 200; } catch (e) { return e.status; }
}

// All events of a streamed create, in order.
async function events(stream) {
  const all = [];
  for await (const ev of stream) all.push(ev);
  return all;
}

// The event stream's grammar: created first, a terminal event last, sequence numbers 0..n-1,
// every item opened before its deltas and closed after them.
function wellFormed(evs) {
  const errs = [];
  if (!evs.length || evs[0].type !== 'response.created') errs.push('first is not response.created');
  const last = evs[evs.length - 1];
  if (!last || !['response.completed', 'response.incomplete'].includes(last.type)) errs.push(`last is ${last && last.type}`);
  evs.forEach((e, i) => { if (e.sequence_number !== i) errs.push(`event ${i} has sequence_number ${e.sequence_number}`); });
  const open = new Map();
  for (const e of evs) {
    if (e.type === 'response.output_item.added') open.set(e.output_index, 'open');
    if (e.type === 'response.output_item.done') {
      if (open.get(e.output_index) !== 'open') errs.push(`item ${e.output_index} closed before it was opened`);
      open.set(e.output_index, 'done');
    }
    if (/\.delta$/.test(e.type) && open.get(e.output_index) !== 'open') errs.push(`${e.type} outside its item ${e.output_index}`);
  }
  for (const [i, s] of open) if (s !== 'done') errs.push(`item ${i} never closed`);
  return errs;
}

const joined = (evs, type) => evs.filter((e) => e.type === type).map((e) => e.delta).join('');

async function main() {
  const aliceKey = addUser('alice');
  const bobKey = addUser('bob');
  // A small context, so that a long history overflows it.
  const srv = await startServer(muse, ['--threads', '2', '--max-tokens', '160', '--ctx', '1024', '--parallel', '2', '--quiet', '--data-dir', data], env);
  try {
    const alice = client(srv.url, aliceKey);
    const bob = client(srv.url, bobKey);

    // --- streamed: instant ----------------------------------------------------------------
    const s1 = await events(await alice.responses.create({ model: 'm', input: 'Tell me a story about the sea', mode: 'instant',
      max_output_tokens: 12, temperature: 0, stream: true }));
    const done1 = s1[s1.length - 1];
    check('stream: the events are well formed', wellFormed(s1).length === 0, { errs: wellFormed(s1), types: s1.map((e) => e.type) });
    const types1 = s1.map((e) => e.type);
    for (const t of ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
      'response.output_text.delta', 'response.output_text.done', 'response.content_part.done', 'response.output_item.done']) {
      check(`stream: sends ${t}`, types1.includes(t), types1);
    }
    const text1 = joined(s1, 'response.output_text.delta');
    const final1 = done1.response;
    check('stream: the deltas add up to the final text', text1.length > 0 && text1 === s1.find((e) => e.type === 'response.output_text.done').text &&
      final1.output.find((o) => o.type === 'message').content[0].text === text1, { text1, final1 });
    check('stream: the final response carries usage and the muse trace', final1.usage.output_tokens > 0 && final1.muse &&
      final1.muse.mode === 'instant', final1.usage);
    const kept = await alice.responses.retrieve(final1.id);
    check('stream: the streamed response was stored as sent', kept.id === final1.id && kept.output_text === text1, kept);

    // Continued by id: only the new tokens are prefilled.
    const s2 = await events(await alice.responses.create({ model: 'm', input: 'And then?', previous_response_id: final1.id, mode: 'instant',
      max_output_tokens: 8, temperature: 0, stream: true }));
    const u2 = s2[s2.length - 1].response.usage;
    check('stream: a follow-up by previous_response_id reuses the cached history', u2.input_tokens_details.cached_tokens > 0 &&
      u2.input_tokens > final1.usage.input_tokens, u2);

    // --- streamed: thinking (reasoning items) -------------------------------------------------
    const s3 = await events(await alice.responses.create({ model: 'm', input: 'What is 12 * 12?', mode: 'thinking', thinking_budget: 12,
      max_output_tokens: 8, stream: true }));
    check('stream (thinking): well formed', wellFormed(s3).length === 0, wellFormed(s3));
    const reasoning = joined(s3, 'response.reasoning_text.delta');
    const f3 = s3[s3.length - 1].response;
    check('stream (thinking): reasoning_text deltas, then the reasoning item', reasoning.length > 0 && f3.output[0].type === 'reasoning' &&
      f3.output[0].content[0].text === reasoning, { reasoning, out: f3.output[0] });
    check('stream (thinking): the reasoning item ends before the message begins',
      s3.findIndex((e) => e.type === 'response.output_item.done' && e.item.type === 'reasoning') <
      s3.findIndex((e) => e.type === 'response.output_item.added' && e.item.type === 'message'));

    // --- the SDK's stream helper accumulates Muse's events without complaint ------------------
    const helper = alice.responses.stream({ model: 'm', input: 'Name a colour', mode: 'instant', max_output_tokens: 6, temperature: 0 });
    let helperDeltas = '';
    helper.on('response.output_text.delta', (e) => { helperDeltas += e.delta; });
    const hf = await helper.finalResponse();
    check('responses.stream(): finalResponse() and output_text', typeof hf.output_text === 'string' && hf.output_text === helperDeltas &&
      hf.status !== 'in_progress', { out: hf.output_text, helperDeltas, status: hf.status });

    // --- function calls streamed -------------------------------------------------------------
    const tools = [{ type: 'function', name: 'get_weather', description: 'Current weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'] } }];
    const s4 = await events(await alice.responses.create({ model: 'm', input: 'Weather in Oslo?', tools, tool_choice: 'required',
      mode: 'instant', max_output_tokens: 160, temperature: 0, stream: true }));
    const f4 = s4[s4.length - 1].response;
    const call = f4.output.find((o) => o.type === 'function_call');
    const argDeltas = s4.filter((e) => e.type === 'response.function_call_arguments.delta').map((e) => e.delta).join('');
    let args = null;
    try { args = JSON.parse(call.arguments); } catch (e) { /* checked below */ }
    check('stream (tools): a function_call item with arguments deltas', wellFormed(s4).length === 0 && call && call.name === 'get_weather' &&
      argDeltas === call.arguments && args && typeof args.city === 'string' &&
      s4.some((e) => e.type === 'response.function_call_arguments.done'), { call, types: s4.map((e) => e.type) });
    if (call) {
      const back = await alice.responses.create({ model: 'm', previous_response_id: f4.id, tools, mode: 'instant', max_output_tokens: 6,
        input: [{ type: 'function_call_output', call_id: call.call_id, output: '{"temp_c": 4}' }] });
      check('function_call_output continues the call', back.previous_response_id === f4.id && back.status !== 'failed', back.status);
    }

    // --- contemplating: the trace as muse.event events when asked ----------------------------
    const s5 = await events(await alice.responses.create({ model: 'm', input: 'Is 91 prime?', mode: 'contemplating', agents: 2,
      thinking_budget: 8, max_output_tokens: 6, planner: false, stream: true, stream_options: { muse_events: true } }));
    const museEvents = s5.filter((e) => e.type === 'muse.event').map((e) => e.muse.event);
    const f5 = s5[s5.length - 1].response;
    check('stream (contemplating): agent events as muse.event, the voted answer as a message', wellFormed(s5).length === 0 &&
      museEvents.includes('agent_start') && museEvents.includes('agent_end') && f5.muse.agents.length >= 2 &&
      f5.output.some((o) => o.type === 'message'), { museEvents: [...new Set(museEvents)], out: f5.output.map((o) => o.type) });
    const s5b = await events(await alice.responses.create({ model: 'm', input: 'Is 91 prime?', mode: 'contemplating', agents: 2,
      thinking_budget: 8, max_output_tokens: 6, planner: false, stream: true }));
    check('stream: no muse.event unless asked (the SDK helper throws on unknown types)', !s5b.some((e) => e.type === 'muse.event'));

    // --- a failure after the stream began: an error event ---------------------------------
    const bad = await status(alice.responses.create({ model: 'm', input: 'x', stream: true, max_output_tokens: -5 }));
    check('stream: a bad field is a 400 before any event', bad === 400, bad);

    // --- truncation ----------------------------------------------------------------------------
    // A history of 30 long turns (~3000 tokens) against a context of 1024 / 2 sequences.
    const long = [];
    for (let i = 0; i < 30; i++) {
      long.push({ role: 'user', content: `Turn ${i}: ` + 'the quick brown fox jumps over the lazy dog '.repeat(8) });
      long.push({ role: 'assistant', content: `Answer ${i}: ` + 'a lazy dog sleeps under the old oak tree '.repeat(8) });
    }
    long.push({ role: 'user', content: 'And the last question?' });
    try {
      await alice.responses.create({ model: 'm', input: long, mode: 'instant', max_output_tokens: 4 });
      check('a history over the context without truncation is refused', false, 'answered');
    } catch (e) {
      check('without truncation: 400 context_length_exceeded, naming the overflow and the remedy', e.status === 400 &&
        e.code === 'context_length_exceeded' && /tokens/.test(e.message) && /truncation/.test(e.message), `${e.status} ${e.code} ${e.message}`);
    }
    const tr = await alice.responses.create({ model: 'm', input: long, mode: 'instant', max_output_tokens: 4, truncation: 'auto' });
    check('truncation: "auto" drops the oldest turns and answers', tr.truncation === 'auto' && tr.muse.truncated_messages > 0 &&
      tr.muse.truncated_messages % 2 === 0 && tr.usage.input_tokens < 1024, { dropped: tr.muse.truncated_messages, usage: tr.usage });
    const tooBig = [{ role: 'user', content: 'word '.repeat(3000) }];
    try {
      await alice.responses.create({ model: 'm', input: tooBig, mode: 'instant', max_output_tokens: 4, truncation: 'auto' });
      check('a last turn over the context is refused even with truncation', false, 'answered');
    } catch (e) {
      check('truncation cannot drop the last turn: 400 naming it', e.status === 400 && e.code === 'context_length_exceeded' &&
        /last turn/.test(e.message), `${e.status} ${e.message}`);
    }
    check('truncation must be auto or disabled', await status(alice.responses.create({ model: 'm', input: 'x', truncation: 'some' })) === 400);

    // --- the per-user cache salt covers stored history ----------------------------------------
    // Alice's stored turn is cached; Bob sends the very same history as items: none of alice's
    // cells serve him (his first send prefills all), his own repeat is served from his cache.
    const a1 = await alice.responses.create({ model: 'm', input: 'My locker code is 4711, remember it', mode: 'instant', max_output_tokens: 6, temperature: 0 });
    const a2 = await alice.responses.create({ model: 'm', input: 'What is my code?', previous_response_id: a1.id, mode: 'instant',
      max_output_tokens: 6, temperature: 0 });
    check("alice's own follow-up is served from her cache", a2.usage.input_tokens_details.cached_tokens > 0, a2.usage);
    const same = [{ role: 'user', content: 'My locker code is 4711, remember it' },
      { role: 'assistant', content: a1.output_text }, { role: 'user', content: 'What is my code?' }];
    const b1 = await bob.responses.create({ model: 'm', input: same, mode: 'instant', max_output_tokens: 6, temperature: 0 });
    check("bob's identical history gets none of alice's cached cells", b1.usage.input_tokens_details.cached_tokens === 0 &&
      b1.usage.input_tokens >= a2.usage.input_tokens - 2, { bob: b1.usage, alice: a2.usage });
    const b2 = await bob.responses.create({ model: 'm', input: same, mode: 'instant', max_output_tokens: 6, temperature: 0 });
    check('his own repeat is served from his cache', b2.usage.input_tokens_details.cached_tokens > 0, b2.usage);
    // The same through a stored conversation.
    const conv = await alice.conversations.create({ items: [{ type: 'message', role: 'user', content: 'The boat is called Aurora.' }] });
    await alice.responses.create({ model: 'm', input: 'What is the boat called?', conversation: conv.id, mode: 'instant', max_output_tokens: 6 });
    const c2 = await alice.responses.create({ model: 'm', input: 'Spell it.', conversation: conv.id, mode: 'instant', max_output_tokens: 6 });
    check("a conversation's next turn reuses its owner's cache", c2.usage.input_tokens_details.cached_tokens > 0, c2.usage);
    const items = (await alice.conversations.items.list(conv.id, { limit: 100, order: 'asc' })).data;
    const asItems = items.map((it) => ({ role: it.role, content: it.content.map((p) => p.text).join('') }));
    // Bob's own earlier requests share the template's opening with anything he sends: measured.
    const base = (await bob.responses.create({ model: 'm', input: 'Unrelated words', mode: 'instant', max_output_tokens: 2 })).usage.input_tokens_details.cached_tokens;
    const bc = await bob.responses.create({ model: 'm', input: [...asItems, { role: 'user', content: 'Spell it.' }], mode: 'instant', max_output_tokens: 6 });
    check("bob sending alice's conversation verbatim reuses nothing of hers (only his own template opening)",
      bc.usage.input_tokens_details.cached_tokens <= base && c2.usage.input_tokens_details.cached_tokens > base + 10,
      { bob: bc.usage, base, alice: c2.usage });

    // --- the isolation walk: every route with an id, as bob with alice's ids ------------------
    const file = await alice.files.create({ file: await toFile(Buffer.from('a,b\n1,2\n'), 'a.csv'), purpose: 'user_data' });
    const item = items[0];
    const ids = { conv: conv.id, item: item.id, resp: a1.id, file: file.id };
    const routes = [
      ['GET', `/v1/conversations/${ids.conv}`], ['POST', `/v1/conversations/${ids.conv}`, { metadata: { title: 'x' } }],
      ['DELETE', `/v1/conversations/${ids.conv}`], ['GET', `/v1/conversations/${ids.conv}/items`],
      ['POST', `/v1/conversations/${ids.conv}/items`, { items: [{ type: 'message', role: 'user', content: 'x' }] }],
      ['GET', `/v1/conversations/${ids.conv}/items/${ids.item}`], ['DELETE', `/v1/conversations/${ids.conv}/items/${ids.item}`],
      ['GET', `/v1/responses/${ids.resp}`], ['DELETE', `/v1/responses/${ids.resp}`], ['GET', `/v1/responses/${ids.resp}/input_items`],
      ['POST', '/v1/responses', { input: 'x', previous_response_id: ids.resp, max_output_tokens: 2 }],
      ['POST', '/v1/responses', { input: 'x', conversation: ids.conv, max_output_tokens: 2 }],
      ['POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], conversation: ids.conv, max_tokens: 2 }],
      ['POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], attachments: [ids.file], max_tokens: 2 }],
      ['GET', `/v1/files/${ids.file}`], ['GET', `/v1/files/${ids.file}/content`], ['DELETE', `/v1/files/${ids.file}`],
    ];
    const walk = [];
    for (const [method, route, body] of routes) {
      const r = await fetch(`${srv.url}${route}`, { method, headers: { Authorization: `Bearer ${bobKey}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined });
      const j = await r.json().catch(() => null);
      if (r.status !== 404 || !j || !j.error || typeof j.error.message !== 'string') walk.push(`${method} ${route}: ${r.status}`);
    }
    check(`isolation walk: all ${routes.length} routes are 404 (OpenAI's error shape) for another user's ids`, walk.length === 0, walk);
    // ...and every one of them still works for alice (the walk changed nothing).
    check("alice's conversation, item, response and file are intact", (await alice.conversations.retrieve(ids.conv)).id === ids.conv &&
      (await alice.conversations.items.retrieve(ids.item, { conversation_id: ids.conv })).id === ids.item &&
      (await alice.responses.retrieve(ids.resp)).id === ids.resp && (await alice.files.retrieve(ids.file)).id === ids.file);
    const content = await (await alice.files.content(ids.file)).text();
    check('files.content returns the bytes uploaded', content === 'a,b\n1,2\n', content);

    // Deleted things are gone for their owner too: a 404 naming what, and a continuation is refused.
    await alice.responses.delete(a1.id);
    try {
      await alice.responses.create({ model: 'm', input: 'x', previous_response_id: a1.id, max_output_tokens: 2 });
      check('continuing a deleted response is refused', false, 'answered');
    } catch (e) {
      check('continuing a deleted response: 404 naming previous_response_id', e.status === 404 && e.param === 'previous_response_id', `${e.status} ${e.param}`);
    }
    await alice.conversations.delete(conv.id);
    check('a turn in a deleted conversation is 404', await status(alice.responses.create({ model: 'm', input: 'x', conversation: conv.id, max_output_tokens: 2 })) === 404);
    check('the server is still up', (await fetch(`${srv.url}/health`)).status === 200);
  } finally {
    srv.proc.kill('SIGKILL');
    await waitExit(srv.proc, 10000);
  }
}

main().then(() => process.exit(summary()), (e) => { console.log('FAIL', e.stack || e); process.exit(1); });
