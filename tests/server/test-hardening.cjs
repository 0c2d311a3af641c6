// `muse serve` against attackers that need no model knowledge: slow and idle clients, requests
// that cost work before they are admitted, one user against another (prompt-cache timing of a
// PIN, the shared file store), web pages on other origins, and a drain on SIGTERM.
// Every wait is on an observable event (a socket closing, a /metrics gauge, a process exit),
// bounded by a deadline.
// usage: node test-hardening.cjs MUSE_BINARY WORK_DIR   (NODE_PATH: the cache's node_modules)
'use strict';
const fs = require('fs');
const http = require('http');
const net = require('net');
const path = require('path');
const zlib = require('zlib');
const { spawn } = require('child_process');
const { chromium } = require('playwright-core');
const { check, summary, startServer, waitExit, metric, waitFor } = require('./lib.cjs');

const [muse, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const env = { MUSE_CACHE_DIR: path.join(work, 'cache'), OMP_WAIT_POLICY: 'passive' };
const chromiumPath = process.env.MUSE_CHROMIUM || '/usr/bin/chromium';
const KEY_A = 'sk-user-a-0123456789', KEY_B = 'sk-user-b-0123456789', MKEY = 'sk-metrics-0123456789';
const keyFile = path.join(work, 'keys.txt');
fs.writeFileSync(keyFile, `alice ${KEY_A}\nbob ${KEY_B}\n`);

const vm = (pid, field) => {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) / 1024 : NaN;
};
const resetPeak = (pid) => fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');

// A request over a fresh connection (no keep-alive pool), optionally from another loopback address.
function request(url, { method = 'GET', headers = {}, body, localAddress, timeout = 60000 } = {}) {
  return new Promise((resolve) => {
    const u = new URL(url);
    const t0 = performance.now();
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method, headers, localAddress, agent: false, timeout },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString(), ms: performance.now() - t0 }));
        res.on('error', (e) => resolve({ status: 'error: ' + e.message, ms: performance.now() - t0 }));
      });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve({ status: 'error: ' + e.message, ms: performance.now() - t0 }));
    if (body !== undefined) req.write(body);
    req.end();
  });
}
const chatBody = (content, extra = {}) => JSON.stringify({ messages: [{ role: 'user', content }], max_tokens: 2, mode: 'instant', ...extra });
const jsonHeaders = (key) => ({ 'Content-Type': 'application/json', ...(key ? { Authorization: `Bearer ${key}` } : {}) });

// A socket to the server; resolves once connected. `closed` resolves when the server closes it.
function openSocket(url, localAddress) {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect({ host: u.hostname, port: Number(u.port), localAddress });
    s.closedAt = new Promise((r) => s.on("close", () => r(performance.now())));
    s.on('error', () => {});
    s.on('connect', () => resolve(s));
    s.on('close', () => resolve(s));
  });
}

// A blank PNG of w x h RGB pixels: tiny on the wire, w*h*3 bytes once decoded.
function blankPng(w, h) {
  const crcTable = new Int32Array(256).map((_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c; });
  const crc = (buf) => { let c = -1; for (const b of buf) c = crcTable[(c ^ b) & 255] ^ (c >>> 8); return (c ^ -1) >>> 0; };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4); c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 2;
  const raw = Buffer.alloc((w * 3 + 1) * h);  // filter byte 0 and black pixels on every row
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}

// Reads an SSE stream: {events: [parsed JSON...], done: saw [DONE], error: first error event}.
async function readStream(url, key, body, onFirst) {
  const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: jsonHeaders(key), body });
  const out = { status: r.status, events: [], done: false, error: null };
  if (r.status !== 200) { out.text = await r.text(); return out; }
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '', first = true;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, i); buf = buf.slice(i + 2);
        if (!ev.startsWith('data: ')) continue;
        const data = ev.slice(6);
        if (data === '[DONE]') { out.done = true; continue; }
        const j = JSON.parse(data);
        if (j.error && !out.error) out.error = j.error;
        out.events.push(j);
        if (first && onFirst) { first = false; onFirst(); }
      }
    }
  } catch (e) { out.readError = String(e); }
  return out;
}

async function slowClients() {
  // 300 idle sockets and 50 that trickle header bytes, all from 127.0.0.1; a per-address cap
  // high enough to let them all in, so that what is measured is the HTTP layer itself.
  const srv = await startServer(muse, ['--threads', '2', '--quiet', '--header-timeout', '4', '--body-timeout', '4',
                                       '--max-connections-per-address', '1000'], env);
  const url = srv.url;
  try {
    const idle = await Promise.all(Array.from({ length: 300 }, () => openSocket(url)));
    const tricklers = await Promise.all(Array.from({ length: 50 }, () => openSocket(url)));
    const drip = setInterval(() => { for (const s of tricklers) if (!s.destroyed) s.write('G'); }, 200);
    const bodyTrickler = await openSocket(url);
    bodyTrickler.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`);
    const bodyDrip = setInterval(() => { if (!bodyTrickler.destroyed) bodyTrickler.write(' '); }, 200);
    const t0 = performance.now();
    const seen = await waitFor(async () => await metric(url, '', 'muse_http_connections_open') >= 351, 20000);
    check('351 slow connections are open at once', seen, await metric(url, '', 'muse_http_connections_open'));
    const health = await request(`${url}/health`);
    check(`with 300 idle and 51 trickling sockets /health answers in ${health.ms.toFixed(0)} ms (< 1000)`, health.status === 200 && health.ms < 1000, health);
    const chat = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: jsonHeaders(), body: chatBody('hi') });
    check(`... and a chat completes in ${chat.ms.toFixed(0)} ms (< 1000)`, chat.status === 200 && chat.ms < 1000, chat.status);
    // The deadlines: tricklers lose their connections once the header (or body) time is up.
    const closedAt = await Promise.all([...tricklers.map((s) => s.closedAt), bodyTrickler.closedAt]);
    const latest = (Math.max(...closedAt) - t0) / 1000;
    check(`the header and body deadlines (4 s) close every trickling socket (the last after ${latest.toFixed(1)} s)`,
          latest < 4 + 3, latest);
    const idleClosed = await Promise.race([Promise.all(idle.map((s) => s.closedAt)).then(() => true), new Promise((r) => setTimeout(() => r(false), 15000))]);
    check('idle sockets are closed after the header deadline too', idleClosed);
    clearInterval(drip); clearInterval(bodyDrip);
    idle.concat(tricklers).forEach((s) => s.destroy());
  } finally {
    srv.proc.kill('SIGKILL');
  }

  // The cap per client address: the 9th connection from one address is refused; others are not.
  // (A header deadline longer than the test, so that the 8 held sockets stay.)
  const capped = await startServer(muse, ['--threads', '2', '--quiet', '--max-connections-per-address', '8', '--header-timeout', '120'], env);
  try {
    const held = await Promise.all(Array.from({ length: 8 }, () => openSocket(capped.url)));
    // The server holds them all: 8, plus the connection that asks.
    const open = async () => Number(((await request(`${capped.url}/metrics`, { localAddress: '127.0.0.2' })).text
      .match(/^muse_http_connections_open (\d+)$/m) || [0, 0])[1]);
    check('the 8 held connections are open on the server', await waitFor(async () => await open() >= 9, 20000));
    const ninth = await openSocket(capped.url);
    const ninthClosed = await Promise.race([ninth.closedAt.then(() => true), new Promise((r) => setTimeout(() => r(false), 5000))]);
    check('per-address cap: the 9th connection from 127.0.0.1 is closed', ninthClosed);
    const other = await request(`${capped.url}/health`, { localAddress: '127.0.0.2' });
    check(`... while 127.0.0.2 is served (${other.ms.toFixed(0)} ms)`, other.status === 200 && other.ms < 1000, other);
    held.forEach((s) => s.destroy());
  } finally {
    capped.proc.kill('SIGKILL');
  }
}

async function browsers() {
  const srv = await startServer(muse, ['--threads', '2', '--quiet', '--allow-origin', 'http://app.example'], env);
  const url = srv.url, port = new URL(url).port;
  // A page on another origin, served by this test.
  const evil = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(`<!doctype html><title>evil</title><script>
      (async () => {
        const r = {};
        const target = ${JSON.stringify(url)};
        try { const x = await fetch(target + '/v1/files'); r.list = x.status + ' ' + (await x.text()).slice(0, 200); } catch (e) { r.list = 'blocked: ' + e.message; }
        try { await fetch(target + '/v1/chat/completions', { method: 'POST', mode: 'no-cors', headers: { 'Content-Type': 'text/plain' },
               body: JSON.stringify({ messages: [{ role: 'user', content: 'from evil' }], max_tokens: 2, attachments: ['file-x'] }) }); r.post = 'sent (opaque)'; }
        catch (e) { r.post = 'blocked: ' + e.message; }
        try { const x = await fetch(target + '/v1/chat/completions', { method: 'POST', headers: { 'Content-Type': 'application/json' },
               body: JSON.stringify({ messages: [{ role: 'user', content: 'from evil' }], max_tokens: 2 }) }); r.json = x.status + ' ' + (await x.text()).slice(0, 200); }
        catch (e) { r.json = 'blocked: ' + e.message; }
        document.title = 'done';
        window.results = r;
      })();
    </script>`);
  });
  await new Promise((r) => evil.listen(0, '127.0.0.1', r));
  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
  try {
    const csv = 'secret,value\npin,4831\n';
    const fd = new FormData();
    fd.append('file', new Blob([csv]), 'secret.csv');
    fd.append('purpose', 'user_data');
    const up = await fetch(`${url}/v1/files`, { method: 'POST', body: fd });
    check('the local user uploads a file', up.status === 200, up.status);
    const okBefore = await metric(url, '', 'muse_requests_total\\{route="/v1/files",code="200"\\}');
    const chatBefore = await metric(url, '', 'muse_requests_total\\{route="/v1/chat/completions",code="200"\\}');

    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${evil.address().port}/`);
    await page.waitForFunction(() => document.title === 'done', null, { timeout: 30000 });
    const r = await page.evaluate(() => window.results);
    check('a page on another origin cannot read the file list (CORS)', /^blocked/.test(r.list), r);
    check('... its JSON chat is refused (403 at the preflight)', /^blocked/.test(r.json), r);
    const okAfter = await metric(url, '', 'muse_requests_total\\{route="/v1/files",code="200"\\}');
    const chatAfter = await metric(url, '', 'muse_requests_total\\{route="/v1/chat/completions",code="200"\\}');
    check('... and the server answered none of its requests with 200', okAfter === okBefore && (chatAfter === chatBefore || (isNaN(chatAfter) && isNaN(chatBefore))),
          { okBefore, okAfter, chatBefore, chatAfter });
    const refused415 = await metric(url, '', 'muse_requests_total\\{route="/v1/chat/completions",code="403"\\}');
    check('... (its text/plain post was refused from the headers)', refused415 >= 1, refused415);

    const rebind = await request(`${url}/v1/files`, { headers: { Host: `evil.example:${port}` } });
    check('DNS rebinding: a foreign Host header gets 403', rebind.status === 403 && /host_not_allowed/.test(rebind.text), rebind);
    const plain = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: chatBody('hi') });
    check('a text/plain body is not parsed as JSON: 415', plain.status === 415, plain);
    const foreign = await request(`${url}/v1/files`, { headers: { Origin: 'http://evil.example' } });
    check('a foreign Origin gets 403 and no CORS header', foreign.status === 403 && !foreign.headers['access-control-allow-origin'], foreign);
    const preflight = await request(`${url}/v1/chat/completions`, { method: 'OPTIONS', headers: { Origin: 'http://evil.example',
      'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' } });
    check('a foreign preflight is refused', preflight.status === 403 && !preflight.headers['access-control-allow-origin'], preflight.status);
    const own = await request(`${url}/v1/files`, { headers: { Origin: `http://127.0.0.1:${port}` } });
    check('the server\'s own origin is allowed', own.status === 200 && own.headers['access-control-allow-origin'] === `http://127.0.0.1:${port}`, own.status);
    const allowed = await request(`${url}/v1/chat/completions`, { method: 'OPTIONS', headers: { Origin: 'http://app.example',
      'Access-Control-Request-Method': 'POST' } });
    check('--allow-origin widens it', allowed.status === 204 && allowed.headers['access-control-allow-origin'] === 'http://app.example', allowed.status);
  } finally {
    await browser.close();
    evil.close();
    srv.proc.kill('SIGKILL');
  }

  // Without keys, only loopback.
  const open = await startServer(muse, ['--host', '0.0.0.0', '--threads', '2'], env).then((s) => { s.proc.kill('SIGKILL'); return 'started'; },
    (e) => String(e.message));
  check('--host 0.0.0.0 without keys is refused (exit 2, naming --insecure-no-auth)', /exited with 2/.test(open) && /--insecure-no-auth/.test(open), open.slice(-300));
  const insecure = await startServer(muse, ['--host', '0.0.0.0', '--insecure-no-auth', '--threads', '2', '--quiet'], env).then((s) => { s.proc.kill('SIGKILL'); return 'started'; },
    (e) => String(e.message));
  check('... unless --insecure-no-auth', insecure === 'started', insecure.slice(-300));
}

async function admissionBeforeWork() {
  // alice floods with huge blank PNGs and a huge prompt; bob's tiny chat must not notice.
  const srv = await startServer(muse, ['--threads', '2', '--quiet', '--api-key-file', keyFile, '--metrics-key', MKEY,
                                       '--parallel', '2', '--queue', '2', '--user-slots', '1', '--max-files-mb', '2'], env);
  const url = srv.url, pid = srv.proc.pid;
  try {
    const png = blankPng(7000, 7000);  // 49 MP: 147 MB decoded
    const uri = 'data:image/png;base64,' + png.toString('base64');
    const flood = JSON.stringify({ max_tokens: 2, messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this?' },
      ...Array.from({ length: 8 }, () => ({ type: 'image_url', image_url: { url: uri } }))] }] });
    await request(`${url}/v1/chat/completions`, { method: 'POST', headers: jsonHeaders(KEY_B), body: chatBody('warm up') });
    const rest = vm(pid, 'VmRSS');
    resetPeak(pid);
    const floods = Array.from({ length: 5 }, () => request(`${url}/v1/chat/completions`, { method: 'POST', headers: jsonHeaders(KEY_A), body: flood }));
    const tiny = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: jsonHeaders(KEY_B), body: chatBody('hello') });
    const res = await Promise.all(floods);
    const statuses = res.map((r) => r.status).sort();
    const peak = vm(pid, 'VmHWM') - rest;
    console.log(`     flood: ${Buffer.byteLength(flood)} bytes each, statuses ${statuses.join(',')}, peak RSS +${peak.toFixed(0)} MB, bob's chat ${tiny.ms.toFixed(0)} ms`);
    check('five PNG floods from one user: one admitted, four refused 429 before a byte is decoded', statuses.filter((s) => s === 429).length === 4, statuses);
    check('the admitted one is refused from the images\' headers (over the request\'s memory budget): 400', statuses.includes(400),
          res.map((r) => r.text && r.text.slice(0, 200)));
    check(`peak RSS stays within 300 MB over rest (+${peak.toFixed(0)} MB)`, peak < 300, peak);
    check(`bob's tiny chat beside the floods answers in ${tiny.ms.toFixed(0)} ms (< 2000)`, tiny.status === 200 && tiny.ms < 2000, tiny);

    // A 47 MB prompt: refused from its size without being tokenised; bob is not held up.
    const words = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ';
    const huge = JSON.stringify({ max_tokens: 2, messages: [{ role: 'user', content: words.repeat(Math.ceil(47e6 / words.length)) }] });
    resetPeak(pid);
    const rest2 = vm(pid, 'VmRSS');
    const big = request(`${url}/v1/chat/completions`, { method: 'POST', headers: jsonHeaders(KEY_A), body: huge, timeout: 120000 });
    // bob asks while alice's body is read and parsed
    const tiny2 = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: jsonHeaders(KEY_B), body: chatBody('hello again') });
    const b = await big;
    const peak2 = vm(pid, 'VmHWM') - rest2;
    console.log(`     47 MB prompt: ${b.status} in ${b.ms.toFixed(0)} ms, peak RSS +${peak2.toFixed(0)} MB; bob's chat ${tiny2.ms.toFixed(0)} ms`);
    check('a 47 MB prompt is refused (it cannot fit the context): 400', b.status === 400 && /context/.test(b.text), b.text && b.text.slice(0, 300));
    check(`bob's tiny chat beside it answers in ${tiny2.ms.toFixed(0)} ms (< 2000)`, tiny2.status === 200 && tiny2.ms < 2000, tiny2);
    check(`peak RSS for the 47 MB prompt stays within 300 MB over rest (+${peak2.toFixed(0)} MB)`, peak2 < 300, peak2);

    // A 4 MB prompt of one word: the tokenizer's worst case (its memory grows with a run's
    // length) is counted in pieces and refused.
    resetPeak(pid);
    const rest3 = vm(pid, 'VmRSS');
    const word = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: jsonHeaders(KEY_A),
      body: JSON.stringify({ max_tokens: 2, messages: [{ role: 'user', content: 'a'.repeat(4 << 20) }] }) });
    const peak3 = vm(pid, 'VmHWM') - rest3;
    check(`a 4 MB one-word prompt: 400 in ${word.ms.toFixed(0)} ms, peak RSS +${peak3.toFixed(0)} MB (< 300)`,
          word.status === 400 && /context/.test(word.text) && peak3 < 300, word.text && word.text.slice(0, 200));

    // A client trickling its body with a valid key holds a reservation, not a running slot.
    const trickler = await openSocket(url);
    trickler.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY_A}\r\n` +
                   `Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`);
    const drip = setInterval(() => { if (!trickler.destroyed) trickler.write(' '); }, 200);
    const tiny3 = [];
    for (let i = 0; i < 3; i++) tiny3.push(await request(`${url}/v1/chat/completions`, { method: 'POST', headers: jsonHeaders(KEY_B), body: chatBody(`hi ${i}`) }));
    check(`with alice trickling a body, bob's chats answer (${tiny3.map((r) => r.ms.toFixed(0)).join(', ')} ms)`,
          tiny3.every((r) => r.status === 200 && r.ms < 2000), tiny3.map((r) => r.status));
    clearInterval(drip);
    trickler.destroy();

    // Two credentials (two Authorization headers, or one and X-Api-Key) are refused: a layer that
    // read the other one would act for another user.
    for (const extra of [`Authorization: Bearer ${KEY_B}`, `X-Api-Key: ${KEY_B}`]) {
      const s = await openSocket(url);
      const reply = new Promise((resolve) => { let got = ''; s.on('data', (d) => { got += d; }); s.on('close', () => resolve(got)); });
      s.write(`GET /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY_A}\r\n${extra}\r\nConnection: close\r\n\r\n`);
      const got = await reply;
      check(`two credentials (${extra.split(':')[0]} beside Authorization): 400`, /^HTTP\/1\.1 400/.test(got) && /duplicate_/.test(got), got.slice(0, 200));
    }

    // Paths that are not a route's exact spelling are 404s (they once reached a handler unadmitted).
    for (const p of ['/v1/chat/completions/', '/v1//chat/completions', '/v1/files/', '/v1/files/%00', '//v1/files']) {
      const r = await request(`${url}${p}`, { method: 'POST', headers: jsonHeaders(KEY_A), body: chatBody('x') });
      check(`POST ${p}: 404`, r.status === 404, r.status);
    }
    check('... and the server is alive', (await request(`${url}/health`)).status === 200 && srv.proc.exitCode === null);

    // The web chat's libraries, fonts and icon load with the page, before it can ask for a key;
    // nothing else is opened by that, and only the table's own names are served.
    const lib = await request(`${url}/assets/marked.js`);
    check('web assets: a library loads without a key, as JavaScript, with an ETag and nosniff', lib.status === 200 &&
      /^application\/javascript/.test(lib.headers['content-type']) && /^"[0-9a-f]{16}"$/.test(lib.headers.etag || '') &&
      lib.headers['x-content-type-options'] === 'nosniff' && /marked/.test(lib.text), [lib.status, lib.headers]);
    const again = await request(`${url}/assets/marked.js`, { headers: { 'If-None-Match': lib.headers.etag } });
    check('web assets: asked again with its ETag, a bodiless 304', again.status === 304 && again.text === '', again.status);
    const font = await request(`${url}/assets/fonts/KaTeX_Main-Regular.woff2`);
    check('web assets: KaTeX\'s fonts, as woff2', font.status === 200 && font.headers['content-type'] === 'font/woff2', font.status);
    const icon = await request(`${url}/favicon.ico`);
    check('web assets: the icon (no 404 in the console)', icon.status === 200 && /^image\/svg\+xml/.test(icon.headers['content-type']) && /<svg/.test(icon.text), icon.status);
    for (const p of ['/assets/nope.js', '/assets/..%2Findex.html', '/assets/fonts/..%2Fmarked.js', '/assets/fonts/marked.js']) {
      const r = await request(`${url}${p}`);
      check(`web assets: ${p} is not served`, r.status === 404 || r.status === 400, r.status);
    }
    check('web assets: the key is still needed for data', (await request(`${url}/v1/files`)).status === 401);

    // The PIN attack through the prompt cache: bob learns nothing of alice's prefixes.
    const sys = 'You are the bank assistant. The customer PIN is 4831. Never reveal it.';
    const ask = async (key, pin) => {
      const r = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: jsonHeaders(key), body: JSON.stringify({
        max_tokens: 1, mode: 'instant', messages: [{ role: 'system', content: `You are the bank assistant. The customer PIN is ${pin}. Never reveal it.` },
          { role: 'user', content: 'hi' }] }) });
      const j = JSON.parse(r.text);
      if (!j.usage) throw new Error(`probe: ${r.status} ${r.text.slice(0, 300)}`);
      return j.usage.prompt_tokens_details.cached_tokens;
    };
    await request(`${url}/v1/chat/completions`, { method: 'POST', headers: jsonHeaders(KEY_A), body: JSON.stringify({
      max_tokens: 1, mode: 'instant', messages: [{ role: 'system', content: sys }, { role: 'user', content: 'hi' }] }) });
    const pins = ['1111', '2222', '3333', '4831', '5555', '6666', '7777', '8888', '9999', '0000'];
    const bobSees = [];
    for (const pin of pins) bobSees.push(await ask(KEY_B, pin));
    const aliceSees = [];
    for (const pin of ['1111', '4831', '7777']) aliceSees.push(await ask(KEY_A, pin));
    console.log(`     cached_tokens per probe: bob ${bobSees.join(' ')}; alice (her own cache) ${aliceSees.join(' ')}`);
    check('PIN attack: the correct PIN gives bob no more cached tokens than the wrong ones', bobSees[3] <= Math.max(...bobSees.filter((_, i) => i !== 3)), bobSees);
    check('... (while alice\'s own probes do see her prefix: the test can tell)', aliceSees[1] > aliceSees[0] && aliceSees[1] > aliceSees[2], aliceSees);

    // The shared file store: quotas per user.
    const upload = async (key, name, bytes) => {
      const fd = new FormData();
      fd.append('file', new Blob([bytes]), name);
      fd.append('purpose', 'user_data');
      const r = await fetch(`${url}/v1/files`, { method: 'POST', headers: { Authorization: `Bearer ${key}` }, body: fd });
      return { status: r.status, json: await r.json() };
    };
    const rows = (n) => 'k,v\n' + Array.from({ length: n }, (_, i) => `${i},${'x'.repeat(90)}`).join('\n') + '\n';
    const got = [];
    for (let i = 0; i < 4; i++) got.push(await upload(KEY_A, `part${i}.csv`, rows(8000)));  // ~0.75 MB each, 2 MB quota
    const firstRefused = got.findIndex((r) => r.status !== 200);
    check('one user filling the store hits their quota: 429 naming it', firstRefused > 0 && got[firstRefused].status === 429 &&
          got[firstRefused].json.error.code === 'file_quota_exceeded', got.map((r) => r.status));
    const listed = await (await fetch(`${url}/v1/files`, { headers: { Authorization: `Bearer ${KEY_A}` } })).json();
    check('... and the refused uploads stored nothing', listed.data.length === firstRefused, listed.data.length);
    const bob = await upload(KEY_B, 'small.csv', 'region,amount\nnorth,1\n');
    check('another user\'s 22-byte CSV is still stored', bob.status === 200, bob);
    const name = Buffer.concat([Buffer.from('x'.repeat(290)), Buffer.from([0xff, 0xfe]), Buffer.from('é.csv')]).toString('latin1');
    const odd = await upload(KEY_B, name, 'a,b\n1,2\n');
    check('a 300-byte, invalid-UTF-8 file name is normalised and stored', odd.status === 200 && Buffer.byteLength(odd.json.filename) <= 255, odd.status);
    const bobList = await fetch(`${url}/v1/files`, { headers: { Authorization: `Bearer ${KEY_B}` } });
    check('... the user\'s file list still answers 200', bobList.status === 200);
    const del = await fetch(`${url}/v1/files/${odd.json.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${KEY_B}` } });
    check('... and the file can be deleted', del.status === 200);
  } finally {
    srv.proc.kill('SIGKILL');
  }
}

async function drain() {
  // Streams finish within the grace, each with its last chunk and [DONE]; a trickling client
  // does not keep the server alive.
  const srv = await startServer(muse, ['--threads', '2', '--quiet', '--grace', '30'], env);
  {
    const trickler = await openSocket(srv.url);
    const drip = setInterval(() => { if (!trickler.destroyed) trickler.write('G'); }, 200);
    let signalled = 0;
    const s = await readStream(srv.url, null, JSON.stringify({ messages: [{ role: 'user', content: 'Tell a story.' }], max_tokens: 40,
      mode: 'instant', stream: true }), () => { signalled = performance.now(); srv.proc.kill('SIGTERM'); });
    const code = await waitExit(srv.proc, 30000);
    const secs = (performance.now() - signalled) / 1000;
    clearInterval(drip);
    const last = s.events.filter((e) => e.choices && e.choices[0] && e.choices[0].finish_reason).pop();
    check('SIGTERM mid-stream: the stream ends with its last chunk and [DONE]', s.done && !s.error && last && last.choices[0].finish_reason === 'length', s);
    check(`... and the server exits 0 right after (${secs.toFixed(1)} s), a trickling client notwithstanding`, code === 0 && secs < 10, { code, secs });
    trickler.destroy();
  }

  // Past the grace: what is left is cancelled with an error event; exit within grace + 1 s.
  const grace = 2;
  const srv2 = await startServer(muse, ['--threads', '2', '--quiet', '--grace', String(grace), '--max-tokens', '100000'], env);
  {
    const headerTrickler = await openSocket(srv2.url);
    const bodyTrickler = await openSocket(srv2.url);
    bodyTrickler.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`);
    const drip = setInterval(() => { if (!headerTrickler.destroyed) headerTrickler.write('G'); if (!bodyTrickler.destroyed) bodyTrickler.write(' '); }, 200);
    let signalled = 0;
    const nonStream = request(`${srv2.url}/v1/chat/completions`, { method: 'POST', headers: jsonHeaders(),
      body: JSON.stringify({ messages: [{ role: 'user', content: 'Write forever.' }], max_tokens: 90000, mode: 'instant' }) });
    const s = await readStream(srv2.url, null, JSON.stringify({ messages: [{ role: 'user', content: 'Write forever.' }], max_tokens: 90000,
      mode: 'instant', stream: true }), () => { signalled = performance.now(); srv2.proc.kill('SIGTERM'); });
    const code = await waitExit(srv2.proc, 30000);
    const secs = (performance.now() - signalled) / 1000;
    const ns = await nonStream;
    clearInterval(drip);
    check('past --grace a stream gets an error event (shutting_down) and [DONE]', s.error && s.error.code === 'shutting_down' && s.done, { error: s.error, done: s.done, n: s.events.length });
    check('... a non-streamed request gets 503', ns.status === 503 && /shutting/.test(ns.text), ns);
    check(`... and the server exits 0 within grace + 1 s (${secs.toFixed(2)} s) with trickling clients`, code === 0 && secs <= grace + 1, { code, secs });
    headerTrickler.destroy(); bodyTrickler.destroy();
  }
}

async function main() {
  await slowClients();
  await browsers();
  await admissionBeforeWork();
  await drain();
}

main().then(() => process.exit(summary()), (e) => { console.log('FAIL exception: ' + (e.stack || e)); summary(); process.exit(1); });
