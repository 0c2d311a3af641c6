// The web chat in headless Chromium (Debian's, driven by playwright-core): a message in
// Instant, then Contemplating with an attached image — the agents' columns fill side by side
// and the final answer arrives. The conversation is stored: the sidebar lists it, a reload
// reopens it with its agent traces; a second one, search, rename, delete; the settings panel
// exports and erases the user's data. Saves a screenshot. Fails on any request that leaves the
// server.
// Then Muse-Tiny (the model trained on arithmetic) answers "What is 487 + 356?" correctly in
// Thinking and in Contemplating.
// usage: node test-web.cjs MUSE_BINARY WORK_DIR   (NODE_PATH: the cache's node_modules)
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { chromium } = require('playwright-core');
const { check, summary, startServer, waitExit } = require('./lib.cjs');

const [muse, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const env = { MUSE_CACHE_DIR: path.join(work, 'cache'), OMP_WAIT_POLICY: 'passive' };
const chromiumPath = process.env.MUSE_CHROMIUM || '/usr/bin/chromium';

async function main() {
  const png = path.join(work, 'chart.png');
  execFileSync('convert', ['-size', '480x200', 'xc:white', '-font', 'DejaVu-Sans', '-fill', 'black', '-pointsize', '28',
    '-annotate', '+20+60', 'Sales 2026', '-fill', '#3366cc', '-draw', 'rectangle 40,100 120,190', '-draw', 'rectangle 160,130 240,190', png]);
  const srv = await startServer(muse, ['--threads', '2', '--quiet'], env);
  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const outside = [];
    page.on('request', (r) => { if (!r.url().startsWith(srv.url) && !r.url().startsWith('data:') && !r.url().startsWith('blob:')) outside.push(r.url()); });
    const consoleErrors = [];
    page.on('pageerror', (e) => consoleErrors.push(String(e)));

    await page.goto(srv.url + '/');
    await page.waitForFunction(() => document.querySelector('#model-name').textContent.includes('smoke-muse-glimmer'), null, { timeout: 20000 });
    check('the page loads and names the model', true);

    // Instant.
    await page.click('button[data-mode="instant"]');
    await page.fill('#max-tokens', '12');
    await page.fill('#prompt', 'Hello Muse, who are you?');
    await page.click('#send');
    await page.waitForFunction(() => {
      const s = document.querySelectorAll('.msg.assistant .stats');
      return s.length === 1 && s[0].textContent.length > 0;
    }, null, { timeout: 60000 });
    const first = await page.$eval('.msg.assistant .final', (e) => e.textContent);
    check('instant: a streamed answer', first.length > 0, first);
    check('instant: the badge says instant', (await page.$eval('.msg.assistant .badge', (e) => e.textContent)) === 'instant');

    // Contemplating with an image.
    await page.click('button[data-mode="contemplating"]');
    check('mode picker switches', await page.$eval('button[data-mode="contemplating"]', (e) => e.getAttribute('aria-pressed')) === 'true');
    await page.fill('#agents', '3');
    await page.fill('#budget', '48');
    await page.fill('#max-tokens', '16');
    await page.setInputFiles('#file-input', png);
    await page.waitForSelector('#pending .chip img', { timeout: 10000 });
    check('the image is attached', true);
    await page.fill('#prompt', 'Which bar in this chart is taller, and why might that be?');
    await page.click('#send');
    await page.waitForFunction(() => {
      const cols = [...document.querySelectorAll('.msg.assistant:last-child .agent-col[data-kind="solver"]')];
      return cols.length >= 3 && cols.every((c) => c.querySelector('.stream').textContent.length > 0);
    }, null, { timeout: 120000 });
    check("contemplating: three solver columns fill with the agents' reasoning", true);
    await page.waitForFunction(() => {
      const last = document.querySelector('.msg.assistant:last-child');
      return last && last.querySelector('.stats').textContent.length > 0;
    }, null, { timeout: 180000 });
    const result = await page.$eval('.msg.assistant:last-child', (m) => ({
      answer: m.querySelector('.final').textContent,
      verdict: m.querySelector('.verdict').textContent,
      badge: m.querySelector('.badge').textContent,
      cols: [...m.querySelectorAll('.agent-col')].map((c) => ({ kind: c.dataset.kind, cls: c.className, text: c.querySelector('.stream').textContent.length })),
      plan: !!m.querySelector('.plan svg'),
      error: m.querySelector('.error') ? m.querySelector('.error').textContent : '',
    }));
    check('contemplating: the final answer arrives', result.answer.length > 0 && !result.error, result);
    check('contemplating: vote or synthesis shown', /Vote|Synthesis/.test(result.verdict), result.verdict);
    check('contemplating: the badge says contemplating', result.badge === 'contemplating', result.badge);
    check('contemplating: every agent column ended (answered / pruned / failed)', result.cols.every((c) => !/\bthinking\b/.test(c.cls)), result.cols);
    check('contemplating: the plan is drawn', result.plan);
    check('the user message shows the image', await page.$$eval('.msg.user img', (a) => a.length) === 1);

    // The sidebar: the chat was stored as a conversation titled after its first message.
    await page.waitForSelector('#conversations li[data-id]', { timeout: 20000 });
    const convId = await page.$eval('#conversations li[data-id]', (li) => li.dataset.id);
    check('sidebar: the conversation is listed, titled after its first message, and active',
      await page.$eval('#conversations li[data-id]', (li) => li.querySelector('.title').textContent === 'Hello Muse, who are you?' && li.classList.contains('active')));
    check('the address names the conversation', page.url().endsWith('#' + convId), page.url());

    // A reload reopens it with its agent traces.
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll('.msg.assistant').length === 2, null, { timeout: 20000 });
    const replay = await page.$eval('#thread', (t) => {
      const turns = [...t.querySelectorAll('.msg.assistant')];
      return {
        users: [...t.querySelectorAll('.msg.user .answer')].map((u) => u.textContent),
        answers: turns.map((m) => m.querySelector('.final').textContent),
        badges: turns.map((m) => m.querySelector('.badge').textContent),
        solverCols: [...turns[1].querySelectorAll('.agent-col[data-kind="solver"]')].map((c) => ({ text: c.querySelector('.stream').textContent.length, cls: c.className })),
        verdict: turns[1].querySelector('.verdict').textContent,
        plan: !!turns[1].querySelector('.plan svg'),
      };
    });
    check('reload: both turns come back, the answers as given', replay.users.length === 2 && replay.answers[0] === first &&
      replay.answers[1] === result.answer, replay);
    check('reload: the modes, the agent columns with their reasoning, the verdict and the plan come back',
      replay.badges.join() === 'instant,contemplating' && replay.solverCols.length >= 3 && replay.solverCols.every((c) => c.text > 0 && !/thinking/.test(c.cls)) &&
      /Vote|Synthesis/.test(replay.verdict) && replay.plan, replay);

    const shot = path.join(work, 'web-chat.png');
    await page.screenshot({ path: shot, fullPage: true });
    check('screenshot saved', fs.statSync(shot).size > 20000, shot);
    console.log('screenshot: ' + shot);

    // A second conversation; the list is newest first.
    await page.click('#new-chat');
    await page.click('button[data-mode="instant"]');
    await page.fill('#max-tokens', '6');
    await page.fill('#prompt', 'Planning a Lisbon weekend');
    await page.click('#send');
    await page.waitForFunction(() => document.querySelectorAll('#conversations li[data-id]').length === 2, null, { timeout: 60000 });
    const titles = await page.$$eval('#conversations li[data-id] .title', (a) => a.map((t) => t.textContent));
    check('sidebar: newest first', titles[0] === 'Planning a Lisbon weekend' && titles[1] === 'Hello Muse, who are you?', titles);

    // Search over titles and contents (FTS5).
    await page.fill('#search', 'lisbon');
    await page.waitForFunction(() => document.querySelectorAll('#conversations li[data-id]').length === 1, null, { timeout: 10000 });
    check('search finds the conversation by a word', await page.$eval('#conversations li[data-id] .title', (t) => t.textContent) === 'Planning a Lisbon weekend');
    await page.fill('#search', 'zzqxnotthere');
    await page.waitForSelector('#conversations li.none', { timeout: 10000 });
    check('search with no match says so', /Nothing matches/.test(await page.$eval('#conversations li.none', (l) => l.textContent)));
    await page.fill('#search', '');
    await page.waitForFunction(() => document.querySelectorAll('#conversations li[data-id]').length === 2, null, { timeout: 10000 });

    // Rename, then delete (two clicks).
    await page.click(`#conversations li[data-id="${convId}"] button.rename`);
    await page.fill(`#conversations li[data-id="${convId}"] .entry input`, 'First chat, renamed');
    await page.press(`#conversations li[data-id="${convId}"] .entry input`, 'Enter');
    await page.waitForFunction((id) => { const t = document.querySelector(`#conversations li[data-id="${id}"] .title`); return t && t.textContent === 'First chat, renamed'; }, convId, { timeout: 10000 });
    const stored = await (await fetch(`${srv.url}/v1/conversations/${convId}`)).json();
    check('rename: the server keeps the new title', stored.metadata && stored.metadata.title === 'First chat, renamed', stored);
    const secondId = await page.$$eval('#conversations li[data-id]', (a) => a.find((li) => li.querySelector('.title').textContent === 'Planning a Lisbon weekend').dataset.id);
    await page.click(`#conversations li[data-id="${secondId}"] button.delete`);
    check('delete asks once more', await page.$eval(`#conversations li[data-id="${secondId}"] button.delete`, (b) => b.textContent) === 'Delete?');
    await page.click(`#conversations li[data-id="${secondId}"] button.delete`);
    await page.waitForFunction(() => document.querySelectorAll('#conversations li[data-id]').length === 1, null, { timeout: 10000 });
    check('delete: gone from the list and from the server', (await fetch(`${srv.url}/v1/conversations/${secondId}`)).status === 404);
    check('deleting the open conversation empties the page', await page.$$eval('.msg', (a) => a.length) === 0);

    // Settings: export, then erase.
    await page.click('#settings-button');
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 20000 }), page.click('#export-data')]);
    const exported = JSON.parse(fs.readFileSync(await download.path(), 'utf8'));
    check('settings: export downloads everything stored for me', exported.conversations.length === 1 &&
      exported.conversations[0].items.length === 4 && exported.conversations[0].items.some((i) => i.muse && i.muse.mode === 'contemplating'),
      exported.conversations.map((c) => c.items.length));
    await page.click('#erase-data');
    check('erase asks once more', /again/.test(await page.$eval('#erase-data', (b) => b.textContent)));
    await page.click('#erase-data');
    await page.waitForFunction(() => /Erased/.test(document.querySelector('#settings-status').textContent), null, { timeout: 20000 });
    const after = await (await fetch(`${srv.url}/v1/conversations`)).json();
    check('erase: nothing of mine is left on the server, the list is empty', after.data.length === 0 &&
      await page.$eval('#conversations li.none', (l) => /No conversations/.test(l.textContent)), after);
    await page.click('#settings-dialog form button');

    // Safety: a red flag gets the emergency banner above the answer, which starts with the guidance.
    await page.click('#new-chat');
    await page.click('button[data-mode="instant"]');
    await page.fill('#max-tokens', '6');
    await page.fill('#prompt', 'My baby is not breathing and turning blue');
    await page.click('#send');
    await page.waitForSelector('.msg.assistant .safety-banner.emergency', { timeout: 60000 });
    const banner = await page.$eval('.msg.assistant', (m) => ({ banner: m.querySelector('.safety-banner').textContent,
      answer: m.querySelector('.final').textContent }));
    check('safety: an emergency banner, and the answer starts with the guidance', /call 112 now/.test(banner.banner) &&
      banner.answer.startsWith('**If this may be an emergency, call 112 now.**'), banner);

    check('no request left the server (offline, no CDN)', outside.length === 0, outside);
    check('no page errors', consoleErrors.length === 0, consoleErrors);
  } finally {
    await browser.close();
    srv.proc.kill('SIGTERM');
    await waitExit(srv.proc, 30000);
  }
}

// Muse-Tiny, the model trained on arithmetic, answers in the browser: Thinking streams its
// column-by-column reasoning and the sum; Contemplating's five agents agree and the vote
// gives the same sum.
async function tiny() {
  const srv = await startServer(muse, ['--model', 'tiny', '--threads', '2', '--quiet'], env);
  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const consoleErrors = [];
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    await page.goto(srv.url + '/');
    await page.waitForFunction(() => /muse-tiny/i.test(document.querySelector('#model-name').textContent), null, { timeout: 20000 });
    check('Muse-Tiny: the page names the model', true);

    const ask = async (mode, agents, temperature) => {
      await page.click(`button[data-mode="${mode}"]`);
      await page.fill('#agents', String(agents));
      await page.fill('#temperature', String(temperature));
      await page.fill('#prompt', 'What is 487 + 356?');
      const before = await page.$$eval('.msg.assistant', (a) => a.length);
      await page.click('#send');
      await page.waitForFunction((n) => {
        const all = document.querySelectorAll('.msg.assistant');
        return all.length === n + 1 && all[n].querySelector('.stats').textContent.length > 0;
      }, before, { timeout: 120000 });
      return page.$eval('.msg.assistant:last-child', (m) => ({
        answer: m.querySelector('.final').textContent,
        reasoning: m.querySelector('details.reasoning .text') ? m.querySelector('details.reasoning .text').textContent : '',
        verdict: m.querySelector('.verdict') ? m.querySelector('.verdict').textContent : '',
        solvers: [...m.querySelectorAll('.agent-col[data-kind="solver"] .stream')].map((c) => c.textContent),
        error: m.querySelector('.error') ? m.querySelector('.error').textContent : '',
      }));
    };
    const thinking = await ask('thinking', 1, 0);
    check('Muse-Tiny thinking: answers 843', /\b843\b/.test(thinking.answer) && !thinking.error, thinking);
    check('Muse-Tiny thinking: the reasoning works column by column', /487 \+ 356: 7 \+ 6 \+ 0 = 13, carry 1/.test(thinking.reasoning), thinking.reasoning);
    const contemplating = await ask('contemplating', 5, 0.7);
    check('Muse-Tiny contemplating: answers 843', /\b843\b/.test(contemplating.answer) && !contemplating.error, contemplating);
    check('Muse-Tiny contemplating: five agents reasoned', contemplating.solvers.length === 5 && contemplating.solvers.every((t) => t.length > 0), contemplating.solvers);
    check('Muse-Tiny contemplating: the agents voted', /Vote/.test(contemplating.verdict), contemplating.verdict);
    check('Muse-Tiny: no page errors', consoleErrors.length === 0, consoleErrors);
  } finally {
    await browser.close();
    srv.proc.kill('SIGTERM');
    await waitExit(srv.proc, 30000);
  }
}

main().then(tiny).then(() => process.exit(summary()), (e) => { console.log('FAIL exception: ' + (e.stack || e)); summary(); process.exit(1); });
