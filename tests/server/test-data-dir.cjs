// `muse serve --data-dir`: users made with `muse users add` sign in (also one added while the
// server runs), uploaded files survive a restart, another user's file ids do not exist, a
// deleted file's blob leaves the disk, and a data directory that cannot be opened stops the
// server with a message; quotas set with `muse users quota` answer 429 with Retry-After. Driven by the official `openai` npm package.
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

    srv.proc.kill('SIGTERM');
    check('the server stops', await waitExit(srv.proc, 60000) === 0);
    srv = await startServer(muse, args, env);
    const alice2 = client(srv.url, aliceKey);
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
