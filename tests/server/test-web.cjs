// The web chat in headless Chromium (Debian's, driven by playwright-core): a message in
// Instant, then Contemplating with an attached image — the agents' columns fill side by side
// and the final answer arrives. Saves a screenshot. Fails on any request that leaves the server.
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

    const shot = path.join(work, 'web-chat.png');
    await page.screenshot({ path: shot, fullPage: true });
    check('screenshot saved', fs.statSync(shot).size > 20000, shot);
    console.log('screenshot: ' + shot);
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
