// Load run of `muse serve` (driven by bench/run-load, which generates the model and passes
// the binaries): C clients for S seconds, each sending one request after another from a mix
// of non-streamed chat, streamed chat (read to [DONE]), file uploads (small CSV, small PNG)
// followed by a chat with the file attached and the file's deletion, file listing and
// /v1/models, under API keys of a few users. Slow clients join after a baseline phase and run
// beside them from another loopback address: sockets that open and stay idle, sockets that
// trickle header bytes, sockets that trickle a body. A probe times /health on a fresh
// connection every 250 ms. Clients answered 429 wait the Retry-After seconds before their
// next request.
//
// Prints per kind and phase (before / with slow clients): requests, statuses, p50/p99/max
// latency and time to first token for streams; 429s and Retry-After; 5xx; errors; /health
// latency; what happened to the slow clients; peak RSS (VmHWM). Exit 1 on any 5xx or if the
// server died.
'use strict';
const http = require('http');
const net = require('net');
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const { spawn } = require('child_process');

function parseArgs(argv) {
  const o = { clients: 64, seconds: 60, parallel: 4, queue: 32, users: 4, threads: 2, idle: 64, trickleHeaders: 16, trickleBody: 16,
              trickleMs: 1000, slowAfter: null, timeoutMs: 30000, maxTokens: 24, clientAddrs: 8, slowAddr: null,
              muse: null, model: null, work: null, pidfile: null, json: null, serverArgs: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => { if (i + 1 >= argv.length) throw new Error(`${a} needs a value`); return argv[++i]; };
    switch (a) {
      case '--clients': o.clients = Number(v()); break;
      case '--seconds': o.seconds = Number(v()); break;
      case '--parallel': o.parallel = Number(v()); break;
      case '--queue': o.queue = Number(v()); break;
      case '--users': o.users = Number(v()); break;
      case '--threads': o.threads = Number(v()); break;
      case '--idle': o.idle = Number(v()); break;
      case '--trickle-headers': o.trickleHeaders = Number(v()); break;
      case '--trickle-body': o.trickleBody = Number(v()); break;
      case '--trickle-ms': o.trickleMs = Number(v()); break;
      case '--slow-after': o.slowAfter = Number(v()); break;
      case '--timeout-ms': o.timeoutMs = Number(v()); break;
      case '--max-tokens': o.maxTokens = Number(v()); break;
      case '--client-addrs': o.clientAddrs = Number(v()); break;
      case '--slow-addr': o.slowAddr = v(); break;
      case '--muse': o.muse = v(); break;
      case '--model': o.model = v(); break;
      case '--work': o.work = v(); break;
      case '--pidfile': o.pidfile = v(); break;
      case '--json': o.json = v(); break;
      case '--server-arg': o.serverArgs.push(v()); break;
      default: throw new Error(`unknown option ${a}`);
    }
  }
  if (o.slowAfter === null) o.slowAfter = Math.round(o.seconds / 4);
  for (const k of ['muse', 'model', 'work']) if (!o[k]) throw new Error(`--${k} is required`);
  return o;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();

// ---------------------------------------------------------------------------------------
// Small inputs

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; t[n] = c >>> 0; }
  return t;
})();
function crc32(buf) { let c = 0xffffffff; for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; }
function pngChunk(type, data) {
  const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
function makePng(w, h, seed) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w * 3; x++) raw[y * (w * 3 + 1) + 1 + x] = (x * 7 + y * 13 + seed) & 0xff;
  const ihdr = Buffer.alloc(13); ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 2;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr),
                        pngChunk('IDAT', zlib.deflateSync(raw)), pngChunk('IEND', Buffer.alloc(0))]);
}
function makeCsv(seed) {
  const regions = ['north', 'south', 'east', 'west'];
  const lines = ['region,month,sales,units'];
  for (let i = 0; i < 12; i++) lines.push(`${regions[(i + seed) % 4]},${1 + (i % 12)},${(seed * 37 + i * 101) % 9000 + 100},${(i * 7 + seed) % 50 + 1}`);
  return lines.join('\n') + '\n';
}
const WORDS = 'the river carries light across stones while a quiet town counts its bridges and lanterns in the evening market where traders sell maps'.split(' ');
function prompt(c, n) {
  const w = []; for (let i = 0; i < 16; i++) w.push(WORDS[(c * 7 + n * 13 + i * 5) % WORDS.length]);
  return `Client ${c} request ${n}: ${w.join(' ')}.`;
}

// ---------------------------------------------------------------------------------------
// HTTP over node's http module: each client has its own keep-alive agent (one socket) and,
// optionally, its own loopback source address.

function multipart(fields, file) {
  const b = '----muse-load-' + Math.random().toString(16).slice(2);
  const parts = [];
  for (const [k, v] of Object.entries(fields)) parts.push(Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  parts.push(Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="file"; filename="${file.name}"\r\nContent-Type: ${file.type}\r\n\r\n`), file.data, Buffer.from('\r\n'));
  parts.push(Buffer.from(`--${b}--\r\n`));
  return { body: Buffer.concat(parts), type: `multipart/form-data; boundary=${b}` };
}

function request(ctx, client, opt, retried) {
  return new Promise((resolve) => {
    const t0 = now();
    let ttft = null, sawDone = false, streamErr = null, settled = false, events = 0;
    const chunks = [];
    const headers = { Host: `127.0.0.1:${ctx.port}`, ...(opt.headers || {}) };
    if (client.key) headers.Authorization = `Bearer ${client.key}`;
    if (opt.body) headers['Content-Length'] = String(opt.body.length);
    const req = http.request({ host: '127.0.0.1', port: ctx.port, method: opt.method, path: opt.path, headers, agent: client.agent,
                               localAddress: client.addr });
    const done = (r) => { if (settled) return; settled = true; clearTimeout(timer); resolve({ ms: now() - t0, ttft, sawDone, streamErr, events, ...r }); };
    const timer = setTimeout(() => { req.destroy(new Error('client timeout')); }, ctx.o.timeoutMs);
    req.on('response', (res) => {
      let sseBuf = '';
      res.on('data', (d) => {
        if (opt.stream && res.statusCode === 200) {
          sseBuf += d.toString('utf8');
          let i;
          while ((i = sseBuf.indexOf('\n\n')) >= 0) {
            const ev = sseBuf.slice(0, i); sseBuf = sseBuf.slice(i + 2);
            for (const line of ev.split('\n')) {
              if (!line.startsWith('data: ')) continue;
              if (line === 'data: [DONE]') { sawDone = true; continue; }
              events++;
              try {
                const j = JSON.parse(line.slice(6));
                if (j.error) streamErr = j.error;
                const dl = j.choices && j.choices[0] && j.choices[0].delta;
                if (ttft === null && dl && (dl.content || dl.reasoning_content)) ttft = now() - t0;
              } catch (e) { streamErr = { message: 'unparseable event' }; }
            }
          }
        } else if (chunks.length < 64) {
          chunks.push(d);
        }
      });
      res.on('end', () => done({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (e) => done({ status: res.statusCode, error: e.message }));
      res.on('aborted', () => done({ status: res.statusCode, error: 'response aborted' }));
    });
    req.on('error', (e) => {
      // A keep-alive socket the server had just closed: retry once on a new one (as browsers do).
      if (!retried && req.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) {
        settled = true; clearTimeout(timer);
        return resolve(request(ctx, client, opt, true));
      }
      done({ error: e.message === 'client timeout' ? 'timeout' : e.code || e.message });
    });
    req.end(opt.body);
  });
}

// ---------------------------------------------------------------------------------------
// The server

function startServer(o, keysFile) {
  const args = ['serve', '--port', '0', '--model', o.model, '--threads', String(o.threads), '--parallel', String(o.parallel),
                '--queue', String(o.queue), '--api-key-file', keysFile, '--max-tokens', '256', '--quiet', '--no-web', '--grace', '5',
                '--data-dir', path.join(o.work, 'data'), ...o.serverArgs];
  const proc = spawn(o.muse, args, { env: { ...process.env, MUSE_CACHE_DIR: path.join(o.work, 'cache'), OMP_WAIT_POLICY: 'passive' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  if (o.pidfile) fs.appendFileSync(o.pidfile, `${proc.pid}\n`);
  const srv = { proc, log: '', exit: null, args };
  const tail = (d) => { srv.log = (srv.log + d).slice(-20000); };
  proc.stderr.on('data', tail);
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error('muse serve did not start in 120 s:\n' + srv.log)); }, 120000);
    proc.stdout.on('data', (d) => {
      tail(d); out += d;
      const m = out.match(/listening on http:\/\/[^\s:]+:(\d+)/);
      if (m && !srv.port) { clearTimeout(timer); srv.port = Number(m[1]); resolve(srv); }
    });
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      srv.exit = { code, signal, at: now() };
      if (!srv.port) reject(new Error(`muse serve exited with ${code}${signal ? ' (' + signal + ')' : ''}:\n${srv.log}`));
    });
  });
}

function procStatus(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => { const m = s.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm')); return m ? Number(m[1]) : NaN; };
    return { hwm: kb('VmHWM'), rss: kb('VmRSS'), threads: Number((s.match(/^Threads:\s+(\d+)/m) || [])[1]) };
  } catch (e) { return { hwm: NaN, rss: NaN, threads: NaN }; }
}

// ---------------------------------------------------------------------------------------
// Statistics

function pct(a, p) { if (!a.length) return NaN; const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]; }
function fmt(x, d = 0) { return Number.isFinite(x) ? x.toFixed(d) : '-'; }

class Stats {
  constructor() { this.kinds = {}; this.fiveXX = []; this.errors = {}; this.r429 = { n: 0, withRetryAfter: 0, waitedS: 0, values: {} }; }
  add(kind, phase, r) {
    const k = (this.kinds[kind] = this.kinds[kind] || {});
    const p = (k[phase] = k[phase] || { n: 0, status: {}, lat: [], ttft: [], incomplete: 0 });
    const st = r.error && !r.status ? (r.error === 'timeout' ? 'timeout' : 'error') : String(r.status);
    p.n++; p.status[st] = (p.status[st] || 0) + 1;
    if (r.status && r.status !== 429) p.lat.push(r.ms);
    if (r.ttft !== null && r.ttft !== undefined) p.ttft.push(r.ttft);
    if (r.incomplete) p.incomplete++;
    if (r.error) { const e = `${kind}: ${r.error}`; this.errors[e] = (this.errors[e] || 0) + 1; }
    if (r.status >= 500 && this.fiveXX.length < 1000) this.fiveXX.push({ kind, phase, status: r.status, body: (r.body || '').slice(0, 300) });
  }
}

// ---------------------------------------------------------------------------------------
// Legitimate clients

const KINDS = ['chat', 'stream', 'upload', 'chat+file', 'delete', 'list', 'models'];

async function client(ctx, c) {
  const { o, stats } = ctx;
  const cl = { id: c, key: ctx.keys[c % ctx.keys.length], agent: new http.Agent({ keepAlive: true, maxSockets: 1 }),
               addr: o.clientAddrs > 1 ? `127.0.1.${(c % o.clientAddrs) + 1}` : '127.0.0.1', files: [] };
  let n = 0;
  const phase = () => (ctx.slowStarted ? 'with slow' : 'before slow');
  const run = async (kind, opt) => {
    const ph = phase();
    const r = await request(ctx, cl, opt);
    if (opt.stream && r.status === 200) {
      if (!r.sawDone) { r.incomplete = true; r.error = r.error || 'stream ended without [DONE]'; }
      if (r.streamErr) r.error = 'stream error: ' + JSON.stringify(r.streamErr).slice(0, 200);
    }
    stats.add(kind, ph, r);
    if (r.status === 429) {
      stats.r429.n++;
      const ra = r.headers && r.headers['retry-after'];
      const secs = Number(ra);
      if (ra !== undefined && Number.isFinite(secs) && secs >= 0) {
        stats.r429.withRetryAfter++;
        stats.r429.values[ra] = (stats.r429.values[ra] || 0) + 1;
        const wait = Math.min(secs * 1000, Math.max(0, ctx.end - Date.now()));
        stats.r429.waitedS += wait / 1000;
        await sleep(wait);
      } else {
        await sleep(1000);  // no usable Retry-After: a second, and it shows in the report
      }
    }
    return r;
  };
  const chatBody = (extra) => {
    const b = { model: 'muse', messages: [{ role: 'user', content: prompt(c, n) }], max_tokens: 8 + ((c * 7 + n * 5) % (o.maxTokens - 7)),
                temperature: 0.7, ...extra };
    if (!('mode' in b)) b.mode = (c + n) % 5 === 0 ? 'thinking' : 'instant';
    if (b.mode === 'thinking') b.thinking_budget = 16;
    return Buffer.from(JSON.stringify(b));
  };
  const json = { 'Content-Type': 'application/json' };
  // Weighted kinds: chat 30, stream 30, upload+chat+delete 15, list 10, models 10, delete a leftover 5.
  const table = [[30, 'chat'], [30, 'stream'], [15, 'fileflow'], [10, 'list'], [10, 'models'], [5, 'cleanup']];
  const tot = table.reduce((a, [w]) => a + w, 0);
  while (Date.now() < ctx.end && !ctx.died) {
    n++;
    let x = ((c * 7919 + n * 104729) % 1000) / 1000 * tot, what = table[0][1];
    for (const [w, k] of table) { if ((x -= w) < 0) { what = k; break; } }
    switch (what) {
      case 'chat': await run('chat', { method: 'POST', path: '/v1/chat/completions', headers: json, body: chatBody() }); break;
      case 'stream': await run('stream', { method: 'POST', path: '/v1/chat/completions', headers: json, stream: true,
                                           body: chatBody({ stream: true, stream_options: { include_usage: true } }) }); break;
      case 'fileflow': {
        const png = (c + n) % 2 === 0;
        const mp = multipart({ purpose: 'user_data' }, png ? { name: `chart-${c}-${n}.png`, type: 'image/png', data: makePng(32 + (n % 16), 24, c + n) }
                                                           : { name: `sales-${c}-${n}.csv`, type: 'text/csv', data: Buffer.from(makeCsv(c + n)) });
        const up = await run('upload', { method: 'POST', path: '/v1/files', headers: { 'Content-Type': mp.type }, body: mp.body });
        let id = null;
        if (up.status === 200) { try { id = JSON.parse(up.body).id; } catch (e) { /* counted by status */ } }
        if (!id || Date.now() >= ctx.end) break;
        cl.files.push(id);
        await run('chat+file', { method: 'POST', path: '/v1/chat/completions', headers: json,
                                 body: chatBody({ mode: 'instant', attachments: [id], messages: [{ role: 'user', content: png ? 'What does the chart show?' : 'Which region sold most?' }] }) });
        if (Date.now() >= ctx.end) break;
        const d = await run('delete', { method: 'DELETE', path: `/v1/files/${id}` });
        if (d.status === 200 || d.status === 204 || d.status === 404) cl.files.splice(cl.files.indexOf(id), 1);
        break;
      }
      case 'list': await run('list', { method: 'GET', path: '/v1/files' }); break;
      case 'models': await run('models', { method: 'GET', path: '/v1/models' }); break;
      case 'cleanup':
        if (cl.files.length) { const id = cl.files[0]; const d = await run('delete', { method: 'DELETE', path: `/v1/files/${id}` }); if (d.status !== 429) cl.files.shift(); }
        else await run('list', { method: 'GET', path: '/v1/files' });
        break;
    }
  }
  // Leftovers go, so that a long run does not fill the user's quota.
  for (const id of cl.files) await request(ctx, cl, { method: 'DELETE', path: `/v1/files/${id}` });
  cl.agent.destroy();
}

// ---------------------------------------------------------------------------------------
// Slow clients: each keeps one connection of its kind open, reconnecting when the server
// closes it, until the run ends. Records how long the server let each connection live and
// what (if anything) it answered.

const SLOW_ADDR = { idle: '127.0.0.2', headers: '127.0.0.3', body: '127.0.0.4' };

function slowClient(ctx, kind, idx, st) {
  const { o } = ctx;
  let stop = false, sock = null, timer = null, backoff = 0;
  const open = () => {
    if (stop || ctx.done) return;
    const t0 = now(); let got = '';
    st.opened++;
    sock = net.connect({ host: '127.0.0.1', port: ctx.port, localAddress: o.slowAddr || SLOW_ADDR[kind] });
    sock.on('error', (e) => { st.errors[e.code || e.message] = (st.errors[e.code || e.message] || 0) + 1; });
    sock.on('data', (d) => { if (got.length < 200) got += d.toString('latin1'); });
    sock.on('connect', () => {
      st.connected++;
      if (kind === 'idle') return;
      if (kind === 'headers') {
        sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${ctx.port}\r\nX-Trickle: `);
      } else {
        const key = ctx.keys[idx % ctx.keys.length];
        sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${ctx.port}\r\nAuthorization: Bearer ${key}\r\n` +
                   `Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"messages":[{"role":"user","content":"`);
      }
      timer = setInterval(() => { if (!sock.destroyed) sock.write('a'); st.bytes++; }, o.trickleMs);
    });
    sock.on('close', () => {
      clearInterval(timer);
      if (stop || ctx.done) return;
      const held = (now() - t0) / 1000;
      st.closed++; st.held.push(held);
      const m = /^HTTP\/1\.\d (\d{3})/.exec(got);
      const k = m ? m[1] : got ? 'garbled' : 'no answer';
      st.answers[k] = (st.answers[k] || 0) + 1;
      // Refused or cut at once (a connection cap): back off, up to 2 s, instead of spinning.
      if (held < 0.5) { st.quick++; backoff = Math.min(2000, backoff ? backoff * 2 : 50); } else backoff = 50;
      setTimeout(open, backoff);
    });
  };
  open();
  return () => { stop = true; clearInterval(timer); if (sock) sock.destroy(); };
}

// ---------------------------------------------------------------------------------------

async function main() {
  let o;
  try { o = parseArgs(process.argv.slice(2)); } catch (e) { console.error(`run-load: ${e.message}`); process.exit(2); }
  const keys = []; const lines = [];
  for (let u = 0; u < o.users; u++) { const k = `sk-load-user${u}-${(u * 2654435761 >>> 0).toString(16)}`; keys.push(k); lines.push(`user${u} ${k}`); }
  const keysFile = path.join(o.work, 'keys.txt');
  fs.writeFileSync(keysFile, lines.join('\n') + '\n');
  const srv = await startServer(o, keysFile);
  // The server runs in its own process group (a Ctrl-C must not stop it before the report);
  // whatever way node exits, it goes with it.
  process.on('exit', () => { if (srv.exit === null) srv.proc.kill('SIGKILL'); });
  const stats = new Stats();
  const ctx = { o, port: srv.port, keys, stats, end: 0, slowStarted: false, died: false, done: false };
  const slow = o.idle + o.trickleHeaders + o.trickleBody;
  console.error(`[load] muse serve pid ${srv.proc.pid} on :${srv.port} (--parallel ${o.parallel} --queue ${o.queue}, ${o.users} users); ` +
                `${o.clients} clients x ${o.seconds} s from ${o.clientAddrs > 1 ? `127.0.1.1-${o.clientAddrs}` : '127.0.0.1'}${slow ? `; after ${o.slowAfter} s: ${o.idle} idle sockets, ${o.trickleHeaders} header tricklers, ${o.trickleBody} body tricklers (1 byte per ${o.trickleMs} ms)` : ''}`);

  // Probe of /health on a fresh connection, and the server's memory.
  const health = { 'before slow': [], 'with slow': [], fail: 0, failSamples: [] };
  let rssMax = 0, threadsMax = 0, stopProbe = false;
  const probe = (async () => {
    while (!stopProbe) {
      const ph = ctx.slowStarted ? 'with slow' : 'before slow';
      const t0 = now();
      const r = await new Promise((resolve) => {
        const req = http.get({ host: '127.0.0.1', port: srv.port, path: '/health', agent: false, headers: { Host: `127.0.0.1:${srv.port}` } }, (res) => {
          res.resume(); res.on('end', () => resolve({ status: res.statusCode }));
        });
        const tm = setTimeout(() => req.destroy(new Error('timeout')), 30000);
        req.on('error', (e) => resolve({ error: e.message }));
        req.on('close', () => clearTimeout(tm));
      });
      const ms = now() - t0;
      health[ph].push(ms);
      if (r.status !== 200 && !stopProbe) { health.fail++; if (health.failSamples.length < 5) health.failSamples.push(`${r.status || r.error} after ${ms.toFixed(0)} ms`); }
      const ps = procStatus(srv.proc.pid);
      if (ps.rss > rssMax) rssMax = ps.rss;
      if (ps.threads > threadsMax) threadsMax = ps.threads;
      await sleep(250);
    }
  })();

  let interrupted = false;
  const onSig = () => { if (interrupted) process.exit(130); interrupted = true; ctx.end = Date.now(); console.error('[load] interrupted: finishing the requests in flight'); };
  process.on('SIGINT', onSig); process.on('SIGTERM', onSig);
  srv.proc.on('exit', (code, signal) => { if (!ctx.done) { ctx.died = true; console.error(`[load] THE SERVER DIED: exit code ${code}, signal ${signal}`); } });

  const t0 = Date.now();
  ctx.end = t0 + o.seconds * 1000;
  const slowStats = {};
  const stoppers = [];
  const slowTimer = setTimeout(() => {
    if (!slow || Date.now() >= ctx.end) return;
    ctx.slowStarted = true;
    ctx.slowStartedAt = (Date.now() - t0) / 1000;
    for (const [kind, count] of [['idle', o.idle], ['headers', o.trickleHeaders], ['body', o.trickleBody]]) {
      const st = (slowStats[kind] = { count, opened: 0, connected: 0, closed: 0, quick: 0, held: [], answers: {}, errors: {}, bytes: 0 });
      for (let i = 0; i < count; i++) stoppers.push(slowClient(ctx, kind, i, st));
    }
  }, o.slowAfter * 1000);
  const progress = setInterval(() => {
    const n = Object.values(stats.kinds).reduce((a, k) => a + Object.values(k).reduce((b, p) => b + p.n, 0), 0);
    console.error(`[load] ${((Date.now() - t0) / 1000).toFixed(0)} s: ${n} requests, ${stats.fiveXX.length} 5xx, ${stats.r429.n} 429, health max ${fmt(Math.max(0, ...health['before slow'], ...health['with slow']))} ms`);
  }, 10000);

  await Promise.all(Array.from({ length: o.clients }, (_, c) => client(ctx, c)));
  const wall = (Date.now() - t0) / 1000;
  clearTimeout(slowTimer); clearInterval(progress);
  const slowOpenAtEnd = {};
  for (const [k, st] of Object.entries(slowStats)) slowOpenAtEnd[k] = st.opened - st.closed;
  ctx.done = true;
  for (const s of stoppers) s();
  stopProbe = true; await probe;
  const mem = procStatus(srv.proc.pid);
  const alive = !ctx.died && srv.exit === null;
  let term = null;
  if (alive) {
    const ts = now();
    const ex = new Promise((r) => srv.proc.once('exit', (code, signal) => r({ code, signal })));
    srv.proc.kill('SIGTERM');
    term = await Promise.race([ex, sleep(15000).then(() => null)]);
    if (!term) { srv.proc.kill('SIGKILL'); term = { code: null, signal: 'SIGKILL after 15 s' }; }
    term.s = (now() - ts) / 1000;
  }

  // ----- report -----
  const L = [];
  const phases = slow ? ['before slow', 'with slow'] : ['before slow'];
  L.push('');
  L.push(`run-load${interrupted ? ' (interrupted)' : ''}: ${o.clients} clients x ${o.seconds} s (${wall.toFixed(1)} s with the requests in flight) against muse serve --parallel ${o.parallel} --queue ${o.queue}, ${o.users} users` +
         (slow ? `; slow clients ${ctx.slowStartedAt !== undefined ? `from ${ctx.slowStartedAt.toFixed(0)} s` : '(never started)'}: ${o.idle} idle, ${o.trickleHeaders} header tricklers, ${o.trickleBody} body tricklers, 1 byte / ${o.trickleMs} ms` : ''));
  L.push('');
  L.push(`${'kind'.padEnd(10)} ${'phase'.padEnd(12)} ${'requests'.padStart(8)} ${'req/s'.padStart(6)}  ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'max ms'.padStart(7)}  ${'TTFT p50'.padStart(8)} ${'TTFT p99'.padStart(8)}  statuses`);
  const phaseLen = { 'before slow': slow && ctx.slowStartedAt !== undefined ? ctx.slowStartedAt : wall, 'with slow': slow && ctx.slowStartedAt !== undefined ? wall - ctx.slowStartedAt : 0 };
  let total = 0;
  for (const kind of KINDS) {
    const k = stats.kinds[kind]; if (!k) continue;
    for (const ph of phases) {
      const p = k[ph]; if (!p) continue;
      total += p.n;
      const hist = Object.entries(p.status).sort().map(([s, v]) => `${s}: ${v}`).join('  ');
      L.push(`${kind.padEnd(10)} ${ph.padEnd(12)} ${String(p.n).padStart(8)} ${fmt(p.n / Math.max(phaseLen[ph], 1e-9), 1).padStart(6)}  ${fmt(pct(p.lat, 50)).padStart(7)} ${fmt(pct(p.lat, 99)).padStart(7)} ${fmt(p.lat.length ? Math.max(...p.lat) : NaN).padStart(7)}  ` +
             `${(kind === 'stream' ? fmt(pct(p.ttft, 50)) : '').padStart(8)} ${(kind === 'stream' ? fmt(pct(p.ttft, 99)) : '').padStart(8)}  ${hist}${p.incomplete ? `  (${p.incomplete} streams without [DONE])` : ''}`);
    }
  }
  L.push(`${'all'.padEnd(10)} ${''.padEnd(12)} ${String(total).padStart(8)} ${fmt(total / wall, 1).padStart(6)}`);
  L.push('(latency: answered requests except 429s; TTFT: first content or reasoning delta)');
  L.push('');
  const r = stats.r429;
  L.push(`429              ${r.n}${r.n ? `, ${r.withRetryAfter} with a Retry-After (values ${Object.entries(r.values).map(([k, v]) => `${k} s: ${v}`).join(', ')}); clients waited ${r.waitedS.toFixed(1)} s in all as told` : ''}${r.n - r.withRetryAfter ? `; ${r.n - r.withRetryAfter} WITHOUT a usable Retry-After` : ''}`);
  L.push(`5xx              ${stats.fiveXX.length}${stats.fiveXX.length ? ': ' + stats.fiveXX.slice(0, 5).map((x) => `${x.kind} ${x.status} ${x.body.replace(/\s+/g, ' ')}`).join(' | ') : ''}`);
  const errs = Object.entries(stats.errors).sort((a, b) => b[1] - a[1]);
  L.push(`errors           ${errs.reduce((a, [, v]) => a + v, 0)}${errs.length ? ' (' + errs.slice(0, 8).map(([k, v]) => `${k}: ${v}`).join('; ') + ')' : ''}`);
  for (const ph of phases) {
    const h = health[ph];
    L.push(`/health ${ph.padEnd(12)} ${h.length} probes, p50 ${fmt(pct(h, 50), 1)} ms, p99 ${fmt(pct(h, 99), 1)} ms, max ${fmt(h.length ? Math.max(...h) : NaN, 1)} ms`);
  }
  if (health.fail) L.push(`/health failures ${health.fail} (${health.failSamples.join('; ')})`);
  for (const [kind, st] of Object.entries(slowStats)) {
    if (!st.count) continue;
    const name = { idle: 'idle sockets', headers: 'header trickle', body: 'body trickle' }[kind];
    const long = st.held.filter((h) => h >= 0.5);
    L.push(`slow: ${name.padEnd(14)} ${st.count} from ${o.slowAddr || SLOW_ADDR[kind]}: ${st.opened} connections, ${st.closed} closed by the server` +
           (st.quick ? ` (${st.quick} within 0.5 s: refused or cut at once)` : '') +
           (long.length ? `; the others after p50 ${fmt(pct(long, 50), 1)} s, max ${fmt(Math.max(...long), 1)} s` : '') +
           (st.closed ? `; answers ${Object.entries(st.answers).map(([k, v]) => `${k}: ${v}`).join(', ')}` : '') +
           `; ${slowOpenAtEnd[kind]} still open at the end${Object.keys(st.errors).length ? '; socket errors ' + JSON.stringify(st.errors) : ''}`);
  }
  L.push(`server           peak RSS (VmHWM) ${fmt(mem.hwm / 1024)} MB, largest sampled VmRSS ${fmt(rssMax / 1024)} MB, up to ${threadsMax} threads; ` +
         (alive ? `alive at the end; SIGTERM: exit ${term.code}${term.signal ? ' ' + term.signal : ''} after ${term.s.toFixed(1)} s` : `DIED: ${JSON.stringify(srv.exit)}`));
  const fail = stats.fiveXX.length > 0 || !alive;
  L.push(`result           ${fail ? 'FAIL' : 'ok'}: ${stats.fiveXX.length} 5xx, server ${alive ? 'alive' : 'died'}`);
  if (!alive) L.push('server log (tail):\n' + srv.log.split('\n').slice(-20).join('\n'));
  console.log(L.join('\n'));
  if (o.json) {
    const kinds = {};
    for (const [k, v] of Object.entries(stats.kinds)) {
      kinds[k] = {};
      for (const [ph, p] of Object.entries(v)) kinds[k][ph] = { requests: p.n, statuses: p.status, p50_ms: pct(p.lat, 50), p99_ms: pct(p.lat, 99), ttft_p50_ms: pct(p.ttft, 50), ttft_p99_ms: pct(p.ttft, 99) };
    }
    fs.writeFileSync(o.json, JSON.stringify({ clients: o.clients, seconds: o.seconds, wall_s: wall, kinds, r429: stats.r429, five_xx: stats.fiveXX.length, errors: stats.errors,
      health: Object.fromEntries(phases.map((ph) => [ph, { p50: pct(health[ph], 50), p99: pct(health[ph], 99), max: Math.max(0, ...health[ph]) }])), slow: slowStats,
      vmhwm_kb: mem.hwm, alive }, null, 1));
  }
  process.exit(fail ? 1 : interrupted ? 130 : 0);
}

main().catch((e) => { console.error(`run-load: ${e.stack || e.message}`); process.exit(1); });
