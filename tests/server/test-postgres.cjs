// Two `muse serve --db postgresql://...` nodes on one throwaway PostgreSQL: a conversation
// started on node A continues on node B, a file uploaded on A is read on B, a quota set once
// holds across both, and PostgreSQL stopped under load makes requests 503 (muse stays up)
// until it is back, with every acknowledged turn in the database. Skipped, saying why, when
// PostgreSQL is not installed. Driven by the official `openai` npm package.
// usage: node test-postgres.cjs MUSE_BINARY WORK_DIR   (NODE_PATH: the cache's node_modules)
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync, spawnSync } = require('child_process');
const OpenAI = require('openai');
const { toFile } = require('openai');
const { check, summary, startServer, waitExit, waitFor, startPostgres } = require('./lib.cjs');

const [muse, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const env = { MUSE_CACHE_DIR: path.join(work, 'cache'), OMP_WAIT_POLICY: 'passive' };

const client = (url, key) => new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0, timeout: 60000 });
async function status(promise) {
  try { await promise; return 200; } catch (e) { return e.status; }
}

async function main() {
  const pg = startPostgres();
  if (!pg.ok) {
    console.log(`skip: ${pg.reason}`);
    return;
  }
  pg.sql('postgres', 'CREATE DATABASE muse');
  // Trust authentication ignores the password: it is there to check that it is never printed.
  const db = pg.url('muse', 'hunter2-secret');
  const users = (...args) => execFileSync(muse, ['users', ...args, '--db', db], { stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
  const aliceKey = users('add', 'alice');
  const bobKey = users('add', 'bob');
  const carolKey = users('add', 'carol');

  const bad = spawnSync(muse, ['users', 'list', '--db', 'mysql://x/y'], { encoding: 'utf8' });
  check('--db with another scheme is a usage error (exit 2)', bad.status === 2 && /postgres/.test(bad.stderr), `${bad.status} ${bad.stderr}`);
  const gone = spawnSync(muse, ['serve', '--port', '0', '--quiet', '--db', `postgresql://muse@/muse?host=${path.join(work, 'nowhere')}`],
    { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120000 });
  check('an unreachable database at startup: exit 1 with a message naming it', gone.status === 1 && /nowhere/.test(gone.stderr),
    `${gone.status} ${gone.stderr}`);

  const args = ['--threads', '1', '--max-tokens', '16', '--quiet', '--parallel', '4', '--db', db];
  const a = await startServer(muse, args, env);
  const b = await startServer(muse, args, env);
  try {
    check('the startup names the database', /data: PostgreSQL muse@.*\/muse/.test(a.log()), a.log());
    check('and never its password', !a.log().includes('hunter2') && !b.log().includes('hunter2'));
    const alice = { a: client(a.url, aliceKey), b: client(b.url, aliceKey) };
    check('a user added with muse users --db signs in on both nodes',
      await status(alice.a.models.list()) === 200 && await status(alice.b.models.list()) === 200);

    // A conversation started on A continues on B.
    const conv = await alice.a.conversations.create({ metadata: { title: 'two nodes' } });
    await alice.a.responses.create({ model: 'm', input: 'Asked on node A', conversation: conv.id, mode: 'instant', max_output_tokens: 4 });
    const r2 = await alice.b.responses.create({ model: 'm', input: 'Asked on node B', conversation: conv.id, mode: 'instant', max_output_tokens: 4 });
    const items = (await alice.b.conversations.items.list(conv.id, { order: 'asc', limit: 100 })).data;
    check("B continues A's conversation and sees A's turn first", items.length === 4 && items[0].content[0].text === 'Asked on node A' &&
      items[2].content[0].text === 'Asked on node B', items.map((i) => i.content && i.content[0] && i.content[0].text));
    const r3 = await alice.a.responses.create({ model: 'm', input: 'Back on A', previous_response_id: r2.id, mode: 'instant', max_output_tokens: 4 });
    check("A continues B's response by previous_response_id", r3.previous_response_id === r2.id);

    // A file uploaded on A is read on B (its bytes are in the database).
    const csv = 'city,visits\nLisbon,3\n';
    const file = await alice.a.files.create({ file: await toFile(Buffer.from(csv), 'trips.csv'), purpose: 'user_data' });
    const got = await fetch(`${b.url}/v1/files/${file.id}/content`, { headers: { Authorization: `Bearer ${aliceKey}` } });
    check('a file uploaded on A is read on B', got.status === 200 && (await got.text()) === csv);
    check('and deleted on B, it is gone on A', (await alice.b.files.delete(file.id)).deleted === true &&
      await status(alice.a.files.retrieve(file.id)) === 404);
    check('its blob left the database', pg.sql('muse', 'SELECT COUNT(*) FROM blobs') === '0');

    // Quotas hold across the nodes: set once, counted in the database.
    // The count is per calendar minute: start well inside one, so that all five fall in it.
    await waitFor(() => new Date().getSeconds() < 45, 20000);
    users('quota', 'bob', '--requests-per-minute', '3');
    const ask = (c) => c.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }], mode: 'instant', max_tokens: 2 });
    const bob = [client(a.url, bobKey), client(b.url, bobKey)];
    const seen = [];
    for (let i = 0; i < 5; i++) seen.push(await status(ask(bob[i % 2])));
    check('requests_per_minute 3 across both nodes: 3 answered, then 429 on either', seen.join(',') === '200,200,200,429,429', seen);
    users('quota', 'carol', '--tokens-per-day', '1');
    const carol = [client(a.url, carolKey), client(b.url, carolKey)];
    check("carol's first request on A spends the day's tokens", await status(ask(carol[0])) === 200);
    check('so B refuses her next one (429)', await status(ask(carol[1])) === 429);

    // PostgreSQL stopped under load: 503 while it is down, answers again after, and every
    // turn acknowledged with a 200 is in the database.
    const acked = [], statuses = {};
    let running = true, after = 0, down = false, up = false;
    const worker = async (c) => {
      while (running) {
        try {
          const r = await c.responses.create({ model: 'm', input: 'load', mode: 'instant', max_output_tokens: 2 });
          acked.push(r.id);
          if (up) after++;
          statuses[200] = (statuses[200] || 0) + 1;
        } catch (e) {
          statuses[e.status] = (statuses[e.status] || 0) + 1;
          if (down && e.status === 503) statuses.down503 = (statuses.down503 || 0) + 1;
        }
      }
    };
    const workers = [0, 1, 2, 3, 4, 5].map((i) => worker(i % 2 ? alice.b : alice.a));
    check('under load, turns are answered', await waitFor(() => acked.length >= 6, 60000), statuses);
    down = true;
    check('PostgreSQL stops', pg.stop());
    check('while it is down, requests get 503', await waitFor(() => (statuses.down503 || 0) >= 6, 30000), statuses);
    const health = await Promise.all([a, b].map(async (s) => (await fetch(`${s.url}/health`)).status));
    check('both nodes stay up', a.proc.exitCode === null && b.proc.exitCode === null && health.every((h) => h === 200), health);
    check('PostgreSQL starts again', pg.start());
    up = true;
    check('after it is back, requests succeed again (no restart of muse)', await waitFor(() => after >= 6, 60000), statuses);
    running = false;
    await Promise.all(workers);
    const other = Object.keys(statuses).filter((k) => k !== '200' && k !== '503' && k !== 'down503');
    check('nothing but 200 and 503 (no 500, no crash)', other.length === 0, statuses);
    const inDb = Number(pg.sql('muse', `SELECT COUNT(*) FROM responses WHERE id IN (${acked.map((id) => `'${id.replace(/[^A-Za-z0-9_]/g, '')}'`).join(',')})`));
    check('every acknowledged turn is in the database', inDb === acked.length, { inDb, acked: acked.length });
    check('and readable from either node', await status(alice.b.responses.retrieve(acked[0])) === 200 &&
      await status(alice.a.responses.retrieve(acked[acked.length - 1])) === 200);
  } finally {
    for (const s of [a, b]) s.proc.kill('SIGKILL');
    await Promise.all([a, b].map((s) => waitExit(s.proc, 10000)));
  }
}

main().then(() => process.exit(summary()), (e) => { console.log('FAIL', e.stack || e); process.exit(1); });
