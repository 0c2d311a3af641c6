// Durability under crashes: clients post turns to stored conversations while `muse serve` is
// killed with SIGKILL at random moments and restarted; afterwards every turn a client saw
// acknowledged (a 200 with the answer) must be in its conversation, in order, and SQLite's
// integrity_check must say ok. Prints kills, acknowledged turns and lost turns (must be 0).
// usage: node test-crash.cjs MUSE_BINARY WORK_DIR [KILLS] [CLIENTS]   (NODE_PATH: node_modules)
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const OpenAI = require('openai');
const { check, summary, startServer, waitExit } = require('./lib.cjs');

const [muse, work, killsArg, clientsArg] = process.argv.slice(2);
const KILLS = Number(killsArg || 20);
const CLIENTS = Number(clientsArg || 3);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const env = { MUSE_CACHE_DIR: path.join(work, 'cache'), OMP_WAIT_POLICY: 'passive' };
const data = path.join(work, 'data');
const key = execFileSync(muse, ['users', 'add', 'soak', '--data-dir', data], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
const args = ['--threads', '2', '--max-tokens', '8', '--quiet', '--data-dir', data, '--grace', '0'];

// The server of the moment, and a promise that resolves when the next one is up.
let current = null;
let upWaiters = [];
const whenUp = () => (current ? Promise.resolve(current) : new Promise((r) => upWaiters.push(r)));
async function bringUp() {
  const srv = await startServer(muse, args, env);
  current = { srv, client: new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: key, maxRetries: 0, timeout: 60000 }) };
  upWaiters.splice(0).forEach((r) => r(current));
}

async function main() {
  await bringUp();
  const convs = [];
  for (let c = 0; c < CLIENTS; c++) convs.push((await current.client.conversations.create({ metadata: { title: `client ${c}` } })).id);
  const acked = convs.map(() => []);  // per client: the texts acknowledged, in order
  let stop = false, attempts = 0, failures = 0, stuck = false;
  const ackWaiters = [];    // resolved at each acknowledged turn
  const startWaiters = [];  // resolved each time a client posts a turn

  const clientLoop = async (c) => {
    for (let k = 0; !stop; k++) {
      const text = `client ${c} turn ${k}`;
      const { client } = await whenUp();
      attempts++;
      startWaiters.splice(0).forEach((w) => w());
      try {
        const r = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: text }],
          conversation: convs[c], mode: 'instant', max_tokens: 4 });
        if (r.choices && r.choices[0]) {
          acked[c].push(text);
          ackWaiters.splice(0).forEach((w) => w());
        }
      } catch (e) {
        failures++;  // the server died under it: not acknowledged, so not owed
        await whenUp();
      }
    }
  };
  const loops = convs.map((_, c) => clientLoop(c));

  let kills = 0;
  const total = () => acked.reduce((n, a) => n + a.length, 0);
  while (kills < KILLS) {
    // Let a few turns be acknowledged, then kill at a random moment within the next turns.
    const base = total();
    const timer = setTimeout(() => { stuck = true; ackWaiters.splice(0).forEach((w) => w()); }, 120000);
    while (total() < base + 2 && !stuck) await new Promise((r) => ackWaiters.push(r));  // woken by each acknowledgement
    clearTimeout(timer);
    if (stuck) throw new Error(`no turn acknowledged in 120 s after kill ${kills}:\n${current ? current.srv.log() : ''}`);
    // The moment: after 1-3 more turns were posted, so the kill lands while some are in flight
    // (being prefilled, generated or stored) and others were just acknowledged.
    for (let n = 1 + Math.floor(Math.random() * 3); n > 0 && !stuck; n--) await new Promise((r) => startWaiters.push(r));
    const { srv } = current;
    current = null;
    srv.proc.kill('SIGKILL');
    await waitExit(srv.proc, 30000);
    kills++;
    await bringUp();
  }
  stop = true;
  await Promise.all(loops);

  // Every acknowledged turn is stored, in order, each followed by the answer.
  let lost = 0, acknowledged = 0;
  for (let c = 0; c < CLIENTS; c++) {
    const texts = [];
    for await (const it of current.client.conversations.items.list(convs[c], { order: 'asc', limit: 100 })) {
      if (it.role === 'user') texts.push(it.content[0].text);
    }
    let i = 0;
    for (const t of acked[c]) {
      acknowledged++;
      while (i < texts.length && texts[i] !== t) i++;
      if (i === texts.length) lost++;
    }
  }
  current.srv.proc.kill('SIGTERM');
  await waitExit(current.srv.proc, 60000);
  const integrity = execFileSync('python3', ['-c', 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])',
    path.join(data, 'muse.db')]).toString().trim();
  console.log(`crash soak: ${kills} kills, ${attempts} turns posted, ${acknowledged} acknowledged, ${failures} cut by a kill, ${lost} lost; ` +
              `integrity_check: ${integrity}`);
  check(`${kills} kills done`, kills === KILLS);
  check('turns were acknowledged between the kills', acknowledged >= 2 * KILLS, acknowledged);
  check('no acknowledged turn is lost', lost === 0, { lost, acknowledged });
  check('integrity_check says ok', integrity === 'ok', integrity);
}

main().then(() => process.exit(summary()), (e) => { console.log('FAIL', e.stack || e); if (current) current.srv.proc.kill('SIGKILL'); process.exit(1); });
