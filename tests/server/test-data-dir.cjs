// `muse serve --data-dir`: users made with `muse users add` sign in (also one added while the
// server runs), uploaded files survive a restart, another user's file ids do not exist, a
// deleted file's blob leaves the disk, and a data directory that cannot be opened stops the
// server with a message; the Conversations API stores, pages, searches and isolates; quotas set with `muse users quota` answer 429 with Retry-After. Driven by the official `openai` npm package.
// usage: node test-data-dir.cjs MUSE_BINARY WORK_DIR   (NODE_PATH: the cache's node_modules)
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync, spawnSync } = require('child_process');
const OpenAI = require('openai');
const { toFile } = require('openai');
const { check, summary, startServer, waitExit } = require('./lib.cjs');

const [muse, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const env = { MUSE_CACHE_DIR: path.join(work, 'cache'), OMP_WAIT_POLICY: 'passive' };
const data = path.join(work, 'data');

const addUser = (name) => execFileSync(muse, ['users', 'add', name, '--data-dir', data], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
const client = (url, key) => new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0, timeout: 60000 });

// The SDK's error carries the response headers (a Headers object, or a plain one in older versions).
const retryAfter = (e) => Number(e.headers && (typeof e.headers.get === 'function' ? e.headers.get('retry-after') : e.headers['retry-after']));

async function status(promise) {
  try { await promise; return 200; } catch (e) { return e.status; }
}

function blobs() {
  const dir = path.join(data, 'blobs');
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).flatMap((d) => fs.readdirSync(path.join(dir, d)));
}

async function main() {
  const aliceKey = addUser('alice');
  const args = ['--threads', '2', '--max-tokens', '16', '--quiet', '--data-dir', data];
  let srv = await startServer(muse, args, env);
  try {
    check('the startup says where the data is', srv.log().includes(`data: ${data}`), srv.log());
    check('a store user turns authentication on', await status(client(srv.url, 'sk-none').models.list()) === 401);
    const alice = client(srv.url, aliceKey);
    check('alice signs in with the key muse users printed', await status(alice.models.list()) === 200);
    const csv = 'city,visits\nLisbon,3\nPorto,5\n';
    const file = await alice.files.create({ file: await toFile(Buffer.from(csv), 'trips.csv'), purpose: 'user_data' });
    check('an upload is stored', /^file-/.test(file.id) && file.bytes === csv.length, file);
    check('its content is a blob on disk', blobs().length === 1, blobs());

    // A user added while the server runs signs in at once.
    const bobKey = addUser('bob');
    const bob = client(srv.url, bobKey);
    check('bob, added while it runs, signs in', await status(bob.models.list()) === 200);
    check("bob gets 404 for alice's file", await status(bob.files.retrieve(file.id)) === 404);
    check("bob cannot delete alice's file", await status(bob.files.delete(file.id)) === 404);
    check("bob's list is empty", (await bob.files.list()).data.length === 0);

    // The Conversations API (openai SDK, unchanged).
    const conv = await alice.conversations.create({ metadata: { title: 'Lisbon trip' },
      items: [{ type: 'message', role: 'user', content: 'Where should we eat near the river?' }] });
    check('conversations.create', /^conv_/.test(conv.id) && conv.object === 'conversation' && conv.metadata.title === 'Lisbon trip', conv);
    const added = await alice.conversations.items.create(conv.id, { items: [
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Try the Time Out Market.' }] },
      { type: 'function_call', call_id: 'call_1', name: 'lookup', arguments: '{"q":"market"}' },
      { type: 'function_call_output', call_id: 'call_1', output: 'open 10-24' }] });
    check('items.create returns the stored items', added.data.length === 3 && /^msg_/.test(added.data[0].id) && added.data[1].type === 'function_call',
      added);
    const asc = await alice.conversations.items.list(conv.id, { order: 'asc' });
    check('items.list in order', asc.data.length === 4 && asc.data[0].content[0].text === 'Where should we eat near the river?' &&
      asc.data[0].content[0].type === 'input_text' && asc.data[3].output === 'open 10-24', asc.data);
    const desc = await alice.conversations.items.list(conv.id);
    check('items.list newest first by default', desc.data[0].type === 'function_call_output', desc.data);
    const all = [];
    for await (const it of alice.conversations.items.list(conv.id, { limit: 1, order: 'asc' })) all.push(it.id);
    check('items.list pages with after', all.length === 4 && all[0] === asc.data[0].id && all[3] === asc.data[3].id, all);
    const one = await alice.conversations.items.retrieve(asc.data[1].id, { conversation_id: conv.id });
    check('items.retrieve', one.content[0].text === 'Try the Time Out Market.', one);
    const renamed = await alice.conversations.update(conv.id, { metadata: { title: 'Porto trip' } });
    check('conversations.update', renamed.metadata.title === 'Porto trip', renamed);
    const found = await (await fetch(`${srv.url}/v1/conversations?search=market`, { headers: { Authorization: `Bearer ${aliceKey}` } })).json();
    check('search over titles and items', found.data.length === 1 && found.data[0].id === conv.id && /Market/.test(found.data[0].snippet), found);
    const listed2 = await (await fetch(`${srv.url}/v1/conversations`, { headers: { Authorization: `Bearer ${aliceKey}` } })).json();
    check('the conversation list', listed2.data.length === 1 && listed2.data[0].title === 'Porto trip' && listed2.data[0].items === 4, listed2);
    check("bob: alice's conversation does not exist", await status(bob.conversations.retrieve(conv.id)) === 404);
    check("bob: nor its items", await status(bob.conversations.items.list(conv.id)) === 404);
    check("bob: cannot add to it", await status(bob.conversations.items.create(conv.id, { items: [{ type: 'message', role: 'user', content: 'x' }] })) === 404);
    check("bob: cannot read one of its items", await status(bob.conversations.items.retrieve(asc.data[0].id, { conversation_id: conv.id })) === 404);
    check("bob: cannot delete it", await status(bob.conversations.delete(conv.id)) === 404);
    const bobList = await (await fetch(`${srv.url}/v1/conversations?search=market`, { headers: { Authorization: `Bearer ${bobKey}` } })).json();
    check("bob's search finds nothing of alice's", bobList.data.length === 0, bobList);
    try {
      await alice.conversations.items.create(conv.id, { items: [{ type: 'message', role: 'user', content: 'ok' }, { type: 'telegram' }] });
      check('a bad item is refused', false, 'stored');
    } catch (e) {
      check('a bad item is refused, naming it', e.status === 400 && /items\[1\]\.type/.test(e.message), `${e.status} ${e.message}`);
    }
    check('a wrong role is refused', await status(alice.conversations.create({ items: [{ type: 'message', role: 'wizard', content: 'x' }] })) === 400);
    check('and nothing of a refused batch is stored', (await alice.conversations.items.list(conv.id)).data.length === 4);
    const afterDelete = await alice.conversations.items.delete(asc.data[2].id, { conversation_id: conv.id });
    check('items.delete returns the conversation', afterDelete.id === conv.id);
    const gone = await alice.conversations.create({ items: [{ type: 'message', role: 'user', content: 'delete me' }] });
    check('conversations.delete', (await alice.conversations.delete(gone.id)).deleted === true);
    check('a deleted conversation is 404', await status(alice.conversations.retrieve(gone.id)) === 404);

    srv.proc.kill('SIGTERM');
    check('the server stops', await waitExit(srv.proc, 60000) === 0);
    srv = await startServer(muse, args, env);
    const alice2 = client(srv.url, aliceKey);
    const kept = await alice2.conversations.items.list(conv.id, { order: 'asc' });
    check('the conversation survives a restart', kept.data.length === 3 && kept.data[0].content[0].text === 'Where should we eat near the river?', kept.data);

    // Chat completions continue a stored conversation (Muse's `conversation` field): the history
    // goes first, the turn is stored before the answer is acknowledged, and the next turn
    // reuses the cached prefix.
    const talk = await alice2.conversations.create({ metadata: { title: 'talk' } });
    const turn = (text, extra = {}) => alice2.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: text }],
      conversation: talk.id, mode: 'instant', max_tokens: 6, temperature: 0, ...extra });
    const t1 = await turn('The first question of this talk');
    let stored = (await alice2.conversations.items.list(talk.id, { order: 'asc' })).data;
    check('turn 1 is stored: the question and the answer', stored.length === 2 && stored[0].role === 'user' &&
      stored[0].content[0].text === 'The first question of this talk' && stored[1].role === 'assistant' &&
      stored[1].content[0].text === t1.choices[0].message.content, stored);
    const t2 = await turn('And a second one');
    stored = (await alice2.conversations.items.list(talk.id, { order: 'asc' })).data;
    check('turn 2 is stored after turn 1', stored.length === 4 && stored[2].content[0].text === 'And a second one', stored.map((i) => i.id));
    const cached = t2.usage && t2.usage.prompt_tokens_details && t2.usage.prompt_tokens_details.cached_tokens;
    check('turn 2 reuses the cached history (cached_tokens > 0)', cached > 0 && t2.usage.prompt_tokens > t1.usage.prompt_tokens, t2.usage);
    const stream = await turn('A streamed third', { stream: true });
    let streamed = '';
    for await (const chunk of stream) streamed += (chunk.choices[0] && chunk.choices[0].delta && chunk.choices[0].delta.content) || '';
    stored = (await alice2.conversations.items.list(talk.id, { order: 'asc' })).data;
    check('a streamed turn is stored by the time the stream ends', stored.length === 6 && stored[5].content[0].text === streamed,
      { streamed, last: stored[5] });
    check("bob cannot continue alice's conversation", await status(client(srv.url, bobKey).chat.completions.create({ model: 'm',
      messages: [{ role: 'user', content: 'x' }], conversation: talk.id, max_tokens: 2 })) === 404);
    check('an unknown conversation is 404', await status(turn('x', { conversation: 'conv_nope' })) === 404);

    // The Responses API (openai SDK's responses.*): stored answers continued by id.
    const r1 = await alice2.responses.create({ model: 'm', input: 'Remember the number 42', mode: 'instant', max_output_tokens: 6, temperature: 0 });
    check('responses.create', /^resp_/.test(r1.id) && r1.object === 'response' && typeof r1.output_text === 'string' &&
      r1.output.some((o) => o.type === 'message') && r1.usage.input_tokens > 0, r1);
    const r2 = await alice2.responses.create({ model: 'm', input: 'Which number was it?', previous_response_id: r1.id, mode: 'instant',
      max_output_tokens: 6, temperature: 0 });
    check('previous_response_id continues from the stored turn', r2.previous_response_id === r1.id &&
      r2.usage.input_tokens > r1.usage.input_tokens && r2.usage.input_tokens_details.cached_tokens > 0, r2.usage);
    const again1 = await alice2.responses.retrieve(r1.id);
    check('responses.retrieve', again1.id === r1.id && again1.output_text === r1.output_text, again1);
    const inItems = await alice2.responses.inputItems.list(r1.id);
    check('responses.inputItems.list', inItems.data.length === 1 && inItems.data[0].content === 'Remember the number 42', inItems.data);
    const bobC = client(srv.url, bobKey);
    check("bob: alice's response does not exist", await status(bobC.responses.retrieve(r1.id)) === 404);
    check("bob: nor can he continue it", await status(bobC.responses.create({ model: 'm', input: 'x', previous_response_id: r1.id, max_output_tokens: 2 })) === 404);
    const beforeConv = (await alice2.conversations.items.list(talk.id)).data.length;
    await alice2.responses.create({ model: 'm', input: 'Through the Responses API', conversation: talk.id, mode: 'instant', max_output_tokens: 4 });
    check('a response in a conversation appends the turn', (await alice2.conversations.items.list(talk.id, { limit: 100 })).data.length === beforeConv + 2);
    try {
      await alice2.responses.create({ model: 'm', input: [{ type: 'message', role: 'wizard', content: 'x' }], max_output_tokens: 2 });
      check('a bad input item is refused', false, 'answered');
    } catch (e) {
      check('a bad input item is a 400 naming input[0]', e.status === 400 && /input\[0\]/.test(e.message), `${e.status} ${e.message}`);
    }
    const unstored = await alice2.responses.create({ model: 'm', input: 'not kept', store: false, mode: 'instant', max_output_tokens: 2 });
    check('store: false keeps nothing', await status(alice2.responses.retrieve(unstored.id)) === 404);
    check('responses.delete', (await alice2.responses.delete(r1.id)) !== undefined && await status(alice2.responses.retrieve(r1.id)) === 404);
    try {
      await alice2.responses.create({ model: 'm', input: 'x', max_output_tokens: -7 });
      check('a bad max_output_tokens is refused', false, 'answered');
    } catch (e) {
      check('a bad max_output_tokens is a 400 naming it (not the chat field)', e.status === 400 && e.param === 'max_output_tokens' &&
        /max_output_tokens must/.test(e.message), `${e.status} ${e.param} ${e.message}`);
    }
    const again = await alice2.files.retrieve(file.id);
    check('the file survives a restart', again.id === file.id && again.filename === 'trips.csv' && again.bytes === csv.length, again);
    const listed = await alice2.files.list();
    check('and is listed', listed.data.length === 1 && listed.data[0].id === file.id, listed.data);
    const answer = await alice2.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'Which city had more visits?' }],
      mode: 'instant', max_tokens: 4, attachments: [file.id] });
    check('a chat reads the stored file after the restart', answer.choices[0].message !== undefined, answer);
    check('the file is deleted', (await alice2.files.delete(file.id)).deleted === true);
    check('its blob leaves the disk', blobs().length === 0, blobs());
    check('and it is gone', await status(alice2.files.retrieve(file.id)) === 404);

    // Quotas set with muse users while the server runs apply to the next request.
    execFileSync(muse, ['users', 'quota', 'alice', '--requests-per-minute', '2', '--data-dir', data], { stdio: 'ignore' });
    const ask = (c) => c.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }], mode: 'instant', max_tokens: 2 });
    check('request 1 of 2 per minute', await status(ask(alice2)) === 200);
    check('request 2 of 2 per minute', await status(ask(alice2)) === 200);
    try {
      await ask(alice2);
      check('request 3 in the minute is refused', false, 'answered');
    } catch (e) {
      const retry = retryAfter(e);
      check('request 3 in the minute: 429 naming the quota, with Retry-After', e.status === 429 && /requests_per_minute/.test(e.message) &&
        retry >= 1 && retry <= 61, `${e.status} ${e.message} retry-after ${retry}`);
    }
    execFileSync(muse, ['users', 'quota', 'bob', '--tokens-per-day', '1', '--data-dir', data], { stdio: 'ignore' });
    const bob2 = client(srv.url, bobKey);
    check("bob's first request spends his day's tokens", await status(ask(bob2)) === 200);
    try {
      await ask(bob2);
      check('the next is refused', false, 'answered');
    } catch (e) {
      const retry = retryAfter(e);
      check('the next: 429 naming tokens_per_day, Retry-After until midnight UTC', e.status === 429 && /tokens_per_day/.test(e.message) &&
        retry >= 1 && retry <= 86400, `${e.status} ${e.message} retry-after ${retry}`);
    }
    const exported = JSON.parse(execFileSync(muse, ['users', 'export', 'bob', '--data-dir', data]).toString());
    check("bob's export shows the day's usage", exported.usage.length === 1 && exported.usage[0].requests === 1 &&
      exported.usage[0].tokens > 1, exported.usage);

    // Privacy over HTTP: bob exports everything, then erases himself; his canary is nowhere on disk.
    const canary = 'CANARY-b0b-5e1f-erase';
    const bconv = await bob2.conversations.create({ metadata: { title: `trip ${canary}` },
      items: [{ type: 'message', role: 'user', content: `my secret ${canary}` }] });
    const bfile = await bob2.files.create({ file: await toFile(Buffer.from(`name,secret\nbob,${canary}\n`), 'secret.csv'), purpose: 'user_data' });
    const auth = { Authorization: `Bearer ${bobKey}` };
    const exp = await fetch(`${srv.url}/v1/users/me/export`, { headers: auth });
    const doc = await exp.json();
    check('GET /v1/users/me/export: everything stored for bob', exp.status === 200 && doc.user.name === 'bob' &&
      doc.conversations.length === 1 && doc.conversations[0].items[0].text.includes(canary) && doc.files.length === 1 &&
      doc.files[0].id === bfile.id && doc.usage.length === 1, doc);
    const del = await fetch(`${srv.url}/v1/users/me`, { method: 'DELETE', headers: auth });
    const delBody = await del.json();
    check('DELETE /v1/users/me erases bob', del.status === 200 && delBody.deleted === true, delBody);
    check("bob's key no longer signs in", await status(bob2.models.list()) === 401);
    let bytesScanned = 0, hits = [];
    const scan = (dir) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) { scan(p); continue; }
        const b = fs.readFileSync(p);
        bytesScanned += b.length;
        if (b.includes(canary) || b.includes('CANARY-b0b')) hits.push(p);
      }
    };
    scan(data);
    check("bob's canary is nowhere in the data directory (db, WAL, blobs)", hits.length === 0 && bytesScanned > 4096, { hits, bytesScanned });
    check("alice's conversation is still there", (await alice2.conversations.retrieve(conv.id)).id === conv.id);

    // /v1/admin/users: only a store admin's own key.
    const rootKey = execFileSync(muse, ['users', 'add', 'root', '--admin', '--data-dir', data], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const call = async (key, method, route, body) => {
      const r = await fetch(`${srv.url}${route}`, { method, headers: { Authorization: `Bearer ${key}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined });
      return { status: r.status, body: await r.json() };
    };
    const users = await call(rootKey, 'GET', '/v1/admin/users');
    check('an admin lists the users', users.status === 200 && users.body.data.some((u) => u.name === 'alice') &&
      !users.body.data.some((u) => u.name === 'bob'), users.body);
    check('a user who is not an admin gets 403', (await call(aliceKey, 'GET', '/v1/admin/users')).status === 403);
    const carol = await call(rootKey, 'POST', '/v1/admin/users', { name: 'carol' });
    check('an admin adds a user; the key is shown once', carol.status === 200 && /^sk-muse-/.test(carol.body.api_key), carol.body);
    check('carol signs in', await status(client(srv.url, carol.body.api_key).models.list()) === 200);
    const dup = await call(rootKey, 'POST', '/v1/admin/users', { name: 'carol' });
    check('a duplicate name is a 400 naming it', dup.status === 400 && dup.body.error.param === 'name', dup.body);
    const quota = await call(rootKey, 'POST', '/v1/admin/users/carol/quota', { requests_per_minute: 5 });
    check('an admin sets a quota', quota.status === 200 && quota.body.requests_per_minute === 5, quota.body);
    check('a bad quota is a 400', (await call(rootKey, 'POST', '/v1/admin/users/carol/quota', { tokens_per_day: -1 })).status === 400);
    check('an admin erases a user', (await call(rootKey, 'DELETE', '/v1/admin/users/carol')).body.deleted === true);
    check("carol's key is gone", await status(client(srv.url, carol.body.api_key).models.list()) === 401);
    check('an unknown user is 404', (await call(rootKey, 'DELETE', '/v1/admin/users/nobody')).status === 404);
  } finally {
    srv.proc.kill('SIGKILL');
    await waitExit(srv.proc, 10000);
  }

  // A data directory that cannot be a store: the server does not start, and says why.
  const notDir = path.join(work, 'not-a-dir');
  fs.writeFileSync(notDir, 'x');
  const r = spawnSync(muse, ['serve', '--port', '0', '--quiet', '--data-dir', path.join(notDir, 'sub')], { env: { ...process.env, ...env }, timeout: 120000 });
  check('an unusable --data-dir stops the server with a message', r.status === 1 && /muse serve: .*(open|cannot)/.test(r.stderr.toString()),
    `${r.status} ${r.stderr}`);
}

main().then(() => process.exit(summary()), (e) => { console.log('FAIL', e.stack || e); process.exit(1); });
