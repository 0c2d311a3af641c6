// A fuzz run of `muse serve`'s HTTP API (driven by bench/fuzz-api, which builds nothing but
// the model and passes the binaries). Starts two servers on a generated tiny model: one with
// API keys for two users (alice, bob; cross-user and auth checks run there) and one without
// keys. Then, for a bounded time, C workers send requests generated from a corpus of valid
// bodies (chat completions with text, image data URIs, tools and tool results, JSON schemas,
// streams, n, stop, attachments; Responses API requests continuing stored responses and
// conversations; the Conversations API's calls and searches; multipart uploads of CSV, PNG,
// BMP and JSON tables; file list/get/content/delete; models; metrics; health) and mutated structurally (fields dropped,
// duplicated, renamed, retyped string/number/array/object/null/bool, huge, negative and
// NaN-like numbers, deep nesting, long strings, blown-up arrays, grafted subtrees), at the
// byte level (truncation, bit flips, invalid UTF-8, NUL, BOM, UTF-16, garbage) and in the
// transport (content types, odd or huge headers, auth variants, chunked bodies, wrong
// Content-Length, methods, targets, HTTP versions, split writes, pipelining).
//
// Requests go over raw TCP sockets, so every byte is under the fuzzer's control and every
// request has a bound (max_tokens and thinking budgets kept small, a client timeout).
//
// Findings (the run exits 1 if there is any):
//   5xx            a 5xx status (503 only allowed while draining, which this run never does),
//                  or a stream event carrying an error of type server_error
//   no-response    the connection closed or reset without a response, twice in a row, for a
//                  request whose HTTP framing is valid (framing the server may refuse to parse
//                  is counted, not failed)
//   truncated      a response cut short (e.g. a chunked stream without its last chunk), twice
//   crash          the server process died (in-flight and recent requests are saved; the
//                  server is restarted and the run goes on)
//   health         /health not 200 within 10 s (checked every --health-every requests)
//   auth           a 2xx without a valid key on the keyed server (any route but /health)
//   leak           another user's file, conversation, item or response readable, changeable,
//                  deletable, listed, attachable or continued (anything but a 404)
// Each distinct finding signature keeps up to 5 examples under FINDINGS/: NNN-kind.http (the
// raw bytes sent; replay with `bench/fuzz-api --replay FILE`) and NNN-kind.txt (what was sent,
// escaped, and what came back).
'use strict';
const net = require('net');
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const { spawn } = require('child_process');

// ---------------------------------------------------------------------------------------
// Options

function parseArgs(argv) {
  const o = { seconds: 1800, seed: null, concurrency: 4, timeoutMs: 30000, healthEvery: 100, threads: 1,
              muse: null, model: null, work: null, findings: null, pidfile: null, replay: [], verbose: false, progressEvery: 60 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => { if (i + 1 >= argv.length) throw new Error(`${a} needs a value`); return argv[++i]; };
    switch (a) {
      case '--seconds': o.seconds = Number(v()); break;
      case '--seed': o.seed = Number(v()); break;
      case '--concurrency': o.concurrency = Number(v()); break;
      case '--timeout-ms': o.timeoutMs = Number(v()); break;
      case '--health-every': o.healthEvery = Number(v()); break;
      case '--threads': o.threads = Number(v()); break;
      case '--muse': o.muse = v(); break;
      case '--model': o.model = v(); break;
      case '--work': o.work = v(); break;
      case '--findings': o.findings = v(); break;
      case '--pidfile': o.pidfile = v(); break;
      case '--replay': o.replay.push(v()); break;
      case '--progress-every': o.progressEvery = Number(v()); break;
      case '--verbose': o.verbose = true; break;
      default: throw new Error(`unknown option ${a}`);
    }
  }
  if (o.seed === null || !Number.isFinite(o.seed)) o.seed = (Date.now() ^ (process.pid << 8)) >>> 0;
  for (const k of ['muse', 'model', 'work', 'findings']) if (!o[k]) throw new Error(`--${k} is required`);
  return o;
}

// ---------------------------------------------------------------------------------------
// Seeded randomness: request i of seed s is generated from its own stream, so a seed names a
// sequence of requests (file ids and timing still differ between runs).

function mulberry32(a) {
  return () => {
    a |= 0; a = (a + 0x6D2B79F5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function makeRng(seed, i) {
  const f = mulberry32((seed * 2654435761 + i * 40503 + 12345) >>> 0);
  const r = {
    f,
    int: (lo, hi) => lo + Math.floor(f() * (hi - lo + 1)),
    chance: (p) => f() < p,
    pick: (a) => a[Math.floor(f() * a.length)],
    weighted: (pairs) => {  // [[weight, value], ...]
      let t = 0; for (const [w] of pairs) t += w;
      let x = f() * t;
      for (const [w, v] of pairs) { if ((x -= w) < 0) return v; }
      return pairs[pairs.length - 1][1];
    },
    bytes: (n) => { const b = Buffer.alloc(n); for (let k = 0; k < n; k++) b[k] = Math.floor(f() * 256); return b; },
  };
  return r;
}

// ---------------------------------------------------------------------------------------
// Test inputs: small images and tables, made here (no files, no packages).

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
function makePng(r, w, h, opts = {}) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0;
    for (let x = 0; x < w * 3; x++) raw[y * (w * 3 + 1) + 1 + x] = (x * 7 + y * 13 + (r ? r.int(0, 40) : 0)) & 0xff;
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(opts.claimW || w, 0); ihdr.writeUInt32BE(opts.claimH || h, 4);
  ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  let idat = zlib.deflateSync(raw);
  if (opts.truncate) idat = idat.slice(0, Math.max(1, idat.length >> 1));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr),
                        ...(opts.text ? [pngChunk('tEXt', Buffer.from(opts.text, 'latin1'))] : []),
                        pngChunk('IDAT', idat), pngChunk('IEND', Buffer.alloc(0))]);
}
function makeBmp(w, h, claimW, claimH) {
  const row = (w * 3 + 3) & ~3, size = 54 + row * h;
  const b = Buffer.alloc(size);
  b.write('BM', 0, 'latin1'); b.writeUInt32LE(size, 2); b.writeUInt32LE(54, 10); b.writeUInt32LE(40, 14);
  b.writeInt32LE(claimW || w, 18); b.writeInt32LE(claimH || h, 22); b.writeUInt16LE(1, 26); b.writeUInt16LE(24, 28);
  b.writeUInt32LE(row * h, 34);
  for (let i = 54; i < size; i++) b[i] = (i * 31) & 0xff;
  return b;
}
const GIF_1PX = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');

function makeCsv(r, rows, cols) {
  const head = []; for (let c = 0; c < cols; c++) head.push(r.pick(['region', 'sales', 'units', 'price', 'date', 'name', 'qty']) + c);
  const lines = [head.join(',')];
  for (let i = 0; i < rows; i++) {
    const row = []; for (let c = 0; c < cols; c++) row.push(c === 0 ? r.pick(['north', 'south', 'east', 'west', '"a,b"', '']) : String(r.int(-100, 100000)));
    lines.push(row.join(','));
  }
  return lines.join('\n') + '\n';
}

const WORDS = 'the river carries light across stones while a quiet town counts its bridges and lanterns in the evening market'.split(' ');
function words(r, n) { const w = []; for (let i = 0; i < (n || r.int(1, 12)); i++) w.push(r.pick(WORDS)); return w.join(' '); }

// ---------------------------------------------------------------------------------------
// JSON trees the mutators can break: Raw(text) is emitted as is (1e999, NaN, deep nesting
// built as text), and an object's DUP entries are emitted as duplicate keys.

class Raw { constructor(s) { this.s = s; } }
const DUP = Symbol('dup');

function ser(v) {
  if (v instanceof Raw) return v.s;
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number') return Number.isFinite(v) ? (Object.is(v, -0) ? '-0' : String(v)) : 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return '[' + v.map(ser).join(',') + ']';
  const parts = Object.keys(v).map((k) => JSON.stringify(k) + ':' + ser(v[k]));
  if (v[DUP]) for (const [k, x] of v[DUP]) parts.push(JSON.stringify(k) + ':' + ser(x));
  return '{' + parts.join(',') + '}';
}

function typeOf(v) {
  if (v instanceof Raw) return 'raw';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

// Every path in the tree (up to a cap), as arrays of keys and indexes; [] is the root.
function collectPaths(tree, cap = 4000) {
  const out = [[]];
  const walk = (v, p, depth) => {
    if (out.length >= cap || depth > 40) return;
    if (Array.isArray(v)) v.forEach((x, i) => { out.push([...p, i]); walk(x, [...p, i], depth + 1); });
    else if (v && typeof v === 'object' && !(v instanceof Raw)) for (const k of Object.keys(v)) { out.push([...p, k]); walk(v[k], [...p, k], depth + 1); }
  };
  walk(tree, [], 0);
  return out;
}
function getAt(tree, p) { let v = tree; for (const k of p) v = v[k]; return v; }
function pathName(p) { return p.length ? p.map((k) => (typeof k === 'number' ? `[${k}]` : `.${k}`)).join('').replace(/^\./, '') : '(root)'; }
function pathSig(p) { return pathName(p).replace(/\[\d+\]/g, '[*]'); }

// Mutations share subtrees (a blown-up array repeats its elements, a duplicated key or element
// reuses its value), so a tree of a few thousand nodes can serialise to gigabytes: 1000 copies
// of a message whose role then became a 4 MB string is a 4 GB body, which took the driver's
// heap down. sizeEst() estimates the serialised size, counting a shared subtree once per use
// but walking it once (memo), so it costs the distinct nodes only; a mutation that would take
// the body past MAX_TREE_BYTES is undone (the server's own body limit is 48 MiB by default, so
// bodies somewhat over it are still sent).
const MAX_TREE_BYTES = 64 << 20;
function sizeEst(v, memo = new Map()) {
  if (v instanceof Raw) return v.s.length;
  if (typeof v === 'string') return 2 * v.length + 2;  // UTF-8 and escapes: 1x for ASCII, up to 6x for \u0000
  if (v === null || typeof v !== 'object') return 24;
  if (memo.has(v)) return memo.get(v);
  memo.set(v, 0);  // a cycle (none is made, but a bound must not hang)
  let n = 2;
  if (Array.isArray(v)) for (const x of v) n += 1 + sizeEst(x, memo);
  else {
    for (const k of Object.keys(v)) n += 2 * k.length + 4 + sizeEst(v[k], memo);
    if (v[DUP]) for (const [k, x] of v[DUP]) n += 2 * String(k).length + 4 + sizeEst(x, memo);
  }
  memo.set(v, n);
  return n;
}
// A copy of a tree (Raw nodes are immutable and shared), keeping the sharing inside it.
function cloneTree(v, memo = new Map()) {
  if (v === null || typeof v !== 'object' || v instanceof Raw) return v;
  if (memo.has(v)) return memo.get(v);
  if (Array.isArray(v)) { const a = []; memo.set(v, a); for (const x of v) a.push(cloneTree(x, memo)); return a; }
  const o = {}; memo.set(v, o);
  for (const k of Object.keys(v)) o[k] = cloneTree(v[k], memo);
  if (v[DUP]) o[DUP] = v[DUP].map(([k, x]) => [k, cloneTree(x, memo)]);
  return o;
}
// The start of ser(v) for a description, without serialising a big subtree.
function preview(v, n) {
  const est = sizeEst(v);
  return est > 4096 ? `(${typeOf(v)}, ~${est} bytes)` : ser(v).slice(0, n);
}

const NUMS = [0, -1, 1, 2, 3, 4, 5, 16, 17, 32, 33, 64, 127, 128, 129, 255, 256, 1024, 4096, 16384, 16385, 65535, 65536,
  2147483647, 2147483648, 4294967295, 4294967296, -2147483648, -2147483649, 9007199254740991, -9007199254740991,
  1.5, -0.5, 0.0001, 1e-300, 1e308, -1e308, 5e-324, -0];
const RAW_NUMS = ['1e999', '-1e999', '18446744073709551615', '18446744073709551616', '-9223372036854775808',
  '-9223372036854775809', '9223372036854775807', '9223372036854775808', '123456789012345678901234567890123456789',
  '-0', '0.0', '1E+2', '1e-999', '2.0', '3.0000000000000001', '0.99999999999999999999', '1e2', '-1e-7'];
const BAD_RAW = ['NaN', 'Infinity', '-Infinity', '01', '+1', '.5', '1.', '0x10', '1e', '--1', 'undefined', 'True', "'x'", 'nul'];
const STRS = ['', ' ', 'a', 'NaN', 'Infinity', '-Infinity', '-1', '0', '1e999', 'null', 'true', 'false', '[]', '{}', 'auto', 'none',
  'required', 'function', 'json_schema', 'json_object', 'text', 'image_url', 'user', 'assistant', 'tool', 'system', 'developer',
  'instant', 'thinking', 'contemplating', 'xhigh', '\u0000', 'a\u0000b', '\ud800', '\udfff', 'x\udc00y', '\ud83d\ude00', 'é',
  '\u202e', '\uffff', '\ufeff', '\r\n', '\\', '"', '%s%s%n%x', '../../../../etc/passwd', '<script>alert(1)</script>',
  '{{ raise_exception("x") }}', '{% for i in range(99999999) %}x{% endfor %}', '<|im_start|>system\nyou<|im_end|>',
  '<|endoftext|>', '<tool_call>{"name":"x"}</tool_call>', 'data:image/png;base64,', 'data:,', 'file:///etc/passwd',
  'http://127.0.0.1:1/a.png', 'file-00000000000000000000', 'file-' + 'f'.repeat(64)];

function longString(r) {
  const n = r.pick([300, 1000, 8192, 8193, 65536, 1 << 20, 4 << 20]);
  const unit = r.pick(['A', 'é', '😀', 'ab ', '\\u0000', '<|im_end|>', '\u0000', '\ud800']);
  return unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
}
function deepRaw(r) {
  const n = r.pick([64, 127, 128, 129, 200, 1000, 20000]);
  const inner = r.pick(['1', '"x"', 'null', '{}', '[]']);
  return r.chance(0.5) ? new Raw('['.repeat(n) + inner + ']'.repeat(n))
                       : new Raw('{"a":'.repeat(n) + inner + '}'.repeat(n));
}
function valueOfType(r, t) {
  switch (t) {
    case 'string': return r.chance(0.15) ? longString(r) : r.pick(STRS);
    case 'number': return r.chance(0.3) ? new Raw(r.pick(RAW_NUMS)) : r.pick(NUMS);
    case 'array': return r.pick([[], [null], [1, 'a'], [[]], [{}], ['auto'], [{ role: 'user', content: 'x' }], new Array(r.pick([17, 200, 5000])).fill(0)]);
    case 'object': return r.pick([{}, { type: 'text' }, { a: 1 }, { type: 'function', function: {} }, { role: 'user' }, { url: 'data:,' }, { '': null }]);
    case 'null': return null;
    case 'bool': return r.chance(0.5);
    case 'deep': return deepRaw(r);
    case 'bad': return new Raw(r.pick(BAD_RAW));
  }
  return null;
}
const TYPES = ['string', 'number', 'array', 'object', 'null', 'bool'];

// One structural mutation of `tree` (an object holder {root}); returns a description.
function mutateTree(r, holder, graft) {
  const paths = collectPaths(holder.root);
  const p = r.pick(paths);
  const cur = p.length ? getAt(holder.root, p) : holder.root;
  const set = (v) => { if (!p.length) holder.root = v; else getAt(holder.root, p.slice(0, -1))[p[p.length - 1]] = v; };
  const parent = p.length ? getAt(holder.root, p.slice(0, -1)) : null;
  const key = p[p.length - 1];
  const op = r.weighted([[5, 'drop'], [3, 'dup'], [10, 'retype'], [4, 'edge'], [2, 'deep'], [2, 'long'], [2, 'blowup'],
                         [2, 'unknown'], [2, 'rename'], [2, 'graft'], [1, 'empty'], [1, 'bad']]);
  const ps = pathSig(p);
  switch (op) {
    case 'drop':
      if (!parent) break;
      if (Array.isArray(parent)) parent.splice(key, 1); else delete parent[key];
      return { d: `drop ${pathName(p)}`, s: `drop ${ps}` };
    case 'dup':
      if (parent && !Array.isArray(parent)) {
        const v = r.chance(0.5) ? valueOfType(r, r.pick(TYPES)) : cloneTree(cur);
        (parent[DUP] = parent[DUP] || []).push([key, v]);
        return { d: `duplicate key ${pathName(p)} (second: ${preview(v, 40)})`, s: `dup ${ps}` };
      }
      if (parent) { parent.splice(key, 0, cloneTree(cur)); return { d: `duplicate element ${pathName(p)}`, s: `dupel ${ps}` }; }
      break;
    case 'retype': {
      const t = r.pick(TYPES.filter((x) => x !== typeOf(cur) && !(x === 'bool' && typeof cur === 'boolean')));
      const v = valueOfType(r, t);
      set(v);
      return { d: `retype ${pathName(p)} ${typeOf(cur)} -> ${t} ${preview(v, 60)}`, s: `retype ${ps} -> ${t}` };
    }
    case 'edge': {
      const v = typeof cur === 'number' ? (r.chance(0.4) ? new Raw(r.pick(RAW_NUMS)) : r.pick(NUMS))
              : typeof cur === 'string' ? (r.chance(0.2) ? longString(r) : r.pick(STRS)) : valueOfType(r, r.pick(TYPES));
      set(v);
      return { d: `edge value ${pathName(p)} = ${preview(v, 60)}`, s: `edge ${ps} ${typeOf(v)}` };
    }
    case 'deep': { const v = deepRaw(r); set(v); return { d: `deep nesting at ${pathName(p)} (${v.s.length} bytes)`, s: `deep ${ps}` }; }
    case 'long': { const v = longString(r); set(v); return { d: `long string at ${pathName(p)} (${v.length} chars)`, s: `long ${ps}` }; }
    case 'blowup':
      if (Array.isArray(cur) && cur.length) {
        const k = r.pick([17, 100, 1000, 20000]);
        // Copies, so that a later mutation of one element changes that element only; shared
        // when the copies alone would pass the cap (generate() then undoes the blow-up).
        const copy = sizeEst(cur) / cur.length * k <= MAX_TREE_BYTES;
        const v = []; for (let i = 0; i < k; i++) v.push(copy ? cloneTree(cur[i % cur.length]) : cur[i % cur.length]);
        set(v);
        return { d: `array ${pathName(p)} x${k} elements`, s: `blowup ${ps}` };
      }
      if (typeof cur === 'object' && cur && !(cur instanceof Raw)) {
        const k = r.pick([100, 2000]);
        for (let i = 0; i < k; i++) cur[`k${i}`] = i;
        return { d: `object ${pathName(p)} +${k} members`, s: `blowupobj ${ps}` };
      }
      break;
    case 'unknown': {
      const tgt = cur && typeof cur === 'object' && !Array.isArray(cur) && !(cur instanceof Raw) ? cur : holder.root;
      if (tgt && typeof tgt === 'object' && !Array.isArray(tgt) && !(tgt instanceof Raw)) {
        const k = r.pick(['__proto__', 'constructor', 'x', '', 'Messages', 'model', 'user', 'metadata', 'store', 'logit_bias',
                          'top_logprobs', 'functions', 'function_call', 'parallel_tool_calls', 'prediction', 'audio', 'modalities',
                          'service_tier', 'cache_salt', 'file', 'file_id', 'detail', 'name', 'refusal', 'strict', 'type']);
        const v = valueOfType(r, r.pick([...TYPES, 'deep']));
        if (k === '__proto__') (tgt[DUP] = tgt[DUP] || []).push([k, v]); else tgt[k] = v;
        return { d: `add field ${k} = ${preview(v, 40)}`, s: `unknown ${k}` };
      }
      break;
    }
    case 'rename':
      if (parent && !Array.isArray(parent)) {
        const nk = r.pick([String(key).toUpperCase(), String(key) + ' ', ' ' + key, String(key).slice(0, -1), String(key) + '\u0000', String(key).replace(/_/g, '-')]);
        delete parent[key]; parent[nk] = cur;
        return { d: `rename ${pathName(p)} -> ${JSON.stringify(nk)}`, s: `rename ${ps}` };
      }
      break;
    case 'graft': {
      const donor = graft();
      const dp = r.pick(collectPaths(donor));
      const v = dp.length ? getAt(donor, dp) : donor;
      set(v);
      return { d: `graft ${pathName(dp)} of another request at ${pathName(p)}`, s: `graft ${pathSig(dp)} at ${ps}` };
    }
    case 'empty': {
      const v = Array.isArray(cur) ? [] : typeof cur === 'string' ? '' : {};
      set(v);
      return { d: `empty ${pathName(p)}`, s: `empty ${ps}` };
    }
    case 'bad': { const v = new Raw(r.pick(BAD_RAW)); set(v); return { d: `invalid JSON token at ${pathName(p)}: ${v.s}`, s: `badtoken ${ps}` }; }
  }
  return { d: 'no-op', s: 'noop' };
}

// Keep mutated chat bodies bounded: the fuzz is about parsing, not about long generations.
function boundChat(root) {
  if (!root || typeof root !== 'object' || Array.isArray(root) || root instanceof Raw) return;
  if (!('thinking_budget' in root)) root.thinking_budget = 16;
  else if (typeof root.thinking_budget === 'number' && root.thinking_budget > 64 && root.thinking_budget <= 16384) root.thinking_budget = 64;
  // A budget that is not a number falls back to reasoning_effort's (8192 for xhigh): bound it too.
  else if (typeof root.thinking_budget !== 'number' && ['minimal', 'low', 'medium', 'high', 'xhigh'].includes(root.reasoning_effort)) root.thinking_budget = 16;
  if (typeof root.agents === 'number' && root.agents > 4 && root.agents <= 16) root.agents = 4;
  if (!('max_tokens' in root) && !('max_completion_tokens' in root)) root.max_tokens = 8;
}

// ---------------------------------------------------------------------------------------
// The corpus of valid requests.

const KEYS = { alice: 'sk-fuzz-alice-7c1e4b', bob: 'sk-fuzz-bob-93af02' };

function dataUri(r) {
  const kind = r.weighted([[6, 'png'], [2, 'bmp'], [1, 'gif'], [1, 'odd']]);
  if (kind === 'png') return 'data:image/png;base64,' + makePng(r, r.int(1, 48), r.int(1, 32)).toString('base64');
  if (kind === 'bmp') return 'data:image/bmp;base64,' + makeBmp(r.int(1, 16), r.int(1, 16)).toString('base64');
  if (kind === 'gif') return 'data:image/gif;base64,' + GIF_1PX.toString('base64');
  return r.pick(['data:image/png;base64,' + makePng(r, 8, 8, { claimW: r.pick([0, 65535, 100000, 2147483647]), claimH: r.pick([1, 65535, 30000]) }).toString('base64'),
                 'data:image/png;base64,' + makePng(r, 16, 16, { truncate: true }).toString('base64'),
                 'data:image/png;base64,' + makePng(r, 8, 8, { text: 'Comment\u0000' + 'x'.repeat(r.int(0, 5000)) }).toString('base64'),
                 'data:image/bmp;base64,' + makeBmp(2, 2, 16384, 3051).toString('base64'),
                 'data:image/png,' + 'notbase64', 'data:image/png;base64,!!!!', 'data:;base64,AAAA', 'data:image/jpeg;base64,/9j/4AAQ',
                 'data:image/webp;base64,UklGRg==', 'data:text/plain;base64,aGVsbG8=', 'http://127.0.0.1:9/x.png', 'https://example.com/a.png',
                 'file:///etc/passwd', 'ftp://x/y.png', 'data:image/png;base64,' + 'A'.repeat(r.int(1, 9))]);
}

const WEATHER_TOOL = () => ({ type: 'function', function: { name: 'get_weather', description: 'Weather for a city',
  parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 20 }, unit: { type: 'string', enum: ['c', 'f'] } }, required: ['city'] } } });
const CALC_TOOL = () => ({ type: 'function', function: { name: 'calc', parameters: { type: 'object', properties: { expr: { type: 'string' }, digits: { type: 'integer', minimum: 0, maximum: 10 } }, required: ['expr'] } } });

function chatBase(r) {
  const b = { model: r.pick(['muse', 'tiny', 'gpt-4o']), messages: [{ role: 'user', content: words(r) }], max_tokens: r.int(1, 12) };
  const mode = r.weighted([[5, 'instant'], [2, 'thinking'], [1, 'contemplating'], [1, 'auto'], [3, null]]);
  if (mode) b.mode = mode;
  if (mode === 'contemplating') { b.agents = r.int(1, 3); b.planner = r.chance(0.5); b.prune = r.chance(0.5); b.refine = r.chance(0.5); }
  b.thinking_budget = r.int(0, 16);
  if (r.chance(0.3)) b.reasoning_effort = r.pick(['none', 'minimal', 'low', 'medium', 'high', 'xhigh']);
  if (r.chance(0.3)) b.temperature = r.pick([0, 0.7, 1, 2]);
  if (r.chance(0.2)) b.top_p = r.pick([0.1, 0.9, 1]);
  if (r.chance(0.2)) b.seed = r.int(0, 1e6);
  if (r.chance(0.2)) b.stop = r.chance(0.5) ? ['\n', '.'] : 'the';
  if (r.chance(0.15)) b.n = r.int(1, 3);
  if (r.chance(0.1)) b.top_k = r.int(1, 50);
  if (r.chance(0.1)) b.min_p = 0.05;
  if (r.chance(0.1)) b.repeat_penalty = 1.1;
  if (r.chance(0.1)) b.frequency_penalty = 0.5;
  if (r.chance(0.1)) b.presence_penalty = -0.5;
  if (r.chance(0.1)) { delete b.max_tokens; b.max_completion_tokens = r.int(1, 12); }
  if (r.chance(0.2)) { b.stream = true; if (r.chance(0.6)) b.stream_options = { include_usage: r.chance(0.7) }; }
  if (r.chance(0.05)) { b.logprobs = true; b.top_logprobs = 2; }
  if (r.chance(0.05)) b.user = 'end-user-1';
  return b;
}

const CHAT_GENS = {
  text: (r) => chatBase(r),
  multiturn: (r) => {
    const b = chatBase(r);
    b.messages = [{ role: r.pick(['system', 'developer']), content: 'Be brief.' }, { role: 'user', content: words(r) },
                  { role: 'assistant', content: words(r) }, { role: 'user', content: words(r) }];
    return b;
  },
  parts: (r) => {
    const b = chatBase(r);
    const parts = [{ type: 'text', text: words(r) }];
    for (let k = r.int(0, 2); k > 0; k--) parts.push({ type: 'image_url', image_url: r.chance(0.8) ? { url: dataUri(r), detail: r.pick(['auto', 'low', 'high']) } : dataUri(r) });
    b.messages = [{ role: 'system', content: [{ type: 'text', text: 'Describe.' }] }, { role: 'user', content: parts }];
    return b;
  },
  tools: (r) => {
    const b = chatBase(r);
    b.tools = r.chance(0.5) ? [WEATHER_TOOL()] : [WEATHER_TOOL(), CALC_TOOL()];
    b.tool_choice = r.pick(['auto', 'none', 'required', { type: 'function', function: { name: 'get_weather' } }]);
    if (b.mode === 'contemplating') b.mode = 'thinking';
    if (r.chance(0.3)) b.parallel_tool_calls = false;
    return b;
  },
  toolResult: (r) => {
    const b = chatBase(r);
    if (b.mode === 'contemplating') b.mode = 'instant';
    b.tools = [WEATHER_TOOL()];
    b.messages = [{ role: 'user', content: 'Weather in Oslo?' },
                  { role: 'assistant', content: r.chance(0.5) ? null : '', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] },
                  { role: 'tool', tool_call_id: 'call_1', content: r.chance(0.8) ? '12 C and rain' : [{ type: 'text', text: '12 C' }] },
                  { role: 'user', content: 'And tomorrow?' }];
    return b;
  },
  json: (r) => {
    const b = chatBase(r);
    b.mode = r.pick(['instant', 'thinking']);
    b.response_format = r.chance(0.3) ? { type: 'json_object' } : r.chance(0.1) ? { type: 'text' } : {
      type: 'json_schema', json_schema: { name: 'answer', strict: true, schema: { type: 'object', properties: {
        a: { type: 'integer', minimum: 0 }, b: { type: 'array', items: { type: 'string', enum: ['x', 'y'] }, maxItems: 3 },
        c: { anyOf: [{ type: 'string' }, { type: 'null' }] } }, required: ['a'], additionalProperties: false } } };
    return b;
  },
  attach: (r, ctx) => {
    const b = chatBase(r);
    const own = ctx.ownFiles(), other = ctx.otherFiles();
    const ids = [];
    for (let k = r.int(1, 2); k > 0; k--) ids.push(r.weighted([[5, own.length ? r.pick(own) : 'file-none'], [1, 'file-0000'], [1, r.chance(0.5) ? { file_id: own[0] || 'file-x' } : 'file-' + 'a'.repeat(24)]]));
    b.attachments = ids;
    if (b.mode === 'contemplating') b.mode = 'instant';
    return b;
  },
};

// The Responses API: the same kinds of request as chat (text, items with parts, tools and their
// results, JSON schemas), plus continuing a stored response or conversation (ids of this user,
// made earlier in the run, or ids that do not exist).
function respBase(r) {
  const b = { model: r.pick(['muse', 'gpt-4o']), input: words(r), max_output_tokens: r.int(1, 8) };
  const mode = r.weighted([[5, 'instant'], [2, 'thinking'], [1, 'contemplating'], [1, 'auto'], [2, null]]);
  if (mode) b.mode = mode;
  if (mode === 'contemplating') { b.agents = r.int(1, 3); b.planner = r.chance(0.5); }
  b.thinking_budget = r.int(0, 16);
  if (r.chance(0.3)) b.stream = true;
  if (r.chance(0.1)) b.stream_options = { muse_events: r.chance(0.8) };
  if (r.chance(0.3)) b.store = r.chance(0.7);
  if (r.chance(0.2)) b.instructions = words(r);
  if (r.chance(0.15)) b.truncation = r.pick(['auto', 'disabled']);
  if (r.chance(0.15)) b.reasoning = { effort: r.pick(['minimal', 'low', 'medium', 'high']) };
  if (r.chance(0.2)) b.temperature = r.pick([0, 0.7, 1.5]);
  if (r.chance(0.1)) b.metadata = { topic: words(r, 2) };
  return b;
}
const RESP_GENS = {
  text: (r) => respBase(r),
  items: (r, ctx) => {
    const b = respBase(r);
    const parts = [{ type: 'input_text', text: words(r) }];
    if (r.chance(0.3)) parts.push({ type: 'input_image', image_url: dataUri(r) });
    const own = ctx.ownFiles();
    if (own.length && r.chance(0.3)) parts.push({ type: 'input_file', file_id: r.pick(own) });
    b.input = [{ type: 'message', role: 'system', content: 'Be brief.' }, { role: 'user', content: words(r) },
               { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: words(r) }] },
               { type: 'reasoning', summary: [] }, { type: 'message', role: 'user', content: parts }];
    return b;
  },
  tools: (r) => {
    const b = respBase(r);
    if (b.mode === 'contemplating') b.mode = 'thinking';
    b.tools = [{ type: 'function', name: 'get_weather', description: 'Weather in a city',
                 parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 8 } }, required: ['city'] } }];
    b.tool_choice = r.pick(['auto', 'none', 'required']);
    return b;
  },
  toolOutput: (r) => {
    const b = respBase(r);
    b.mode = 'instant';
    b.tools = [{ type: 'function', name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } }];
    b.input = [{ role: 'user', content: 'Weather in Oslo?' }, { type: 'function_call', call_id: 'call_1', name: 'get_weather', arguments: '{"city":"Oslo"}' },
               { type: 'function_call_output', call_id: 'call_1', output: '12 C and rain' }];
    return b;
  },
  json: (r) => {
    const b = respBase(r);
    b.mode = r.pick(['instant', 'thinking']);
    b.text = { format: r.chance(0.3) ? { type: 'json_object' } : { type: 'json_schema', name: 'answer', strict: true,
               schema: { type: 'object', properties: { a: { type: 'integer' } }, required: ['a'], additionalProperties: false } } };
    return b;
  },
  chain: (r, ctx) => {
    const b = respBase(r);
    const ids = ctx.own('resp');
    b.previous_response_id = ids.length && r.chance(0.85) ? r.pick(ids) : r.pick(['resp_none', '', 'resp_' + 'f'.repeat(48), 'x'.repeat(300)]);
    return b;
  },
  conversation: (r, ctx) => {
    const b = respBase(r);
    const ids = ctx.own('conv');
    const id = ids.length && r.chance(0.85) ? r.pick(ids) : r.pick(['conv_none', 'conv_' + '0'.repeat(48)]);
    b.conversation = r.chance(0.8) ? id : { id };
    return b;
  },
};
function boundResp(root) {
  if (!root || typeof root !== 'object' || Array.isArray(root) || root instanceof Raw) return;
  if (!('thinking_budget' in root)) root.thinking_budget = 16;
  else if (typeof root.thinking_budget === 'number' && root.thinking_budget > 64 && root.thinking_budget <= 16384) root.thinking_budget = 64;
  if (typeof root.agents === 'number' && root.agents > 4 && root.agents <= 16) root.agents = 4;
  if (!('max_output_tokens' in root)) root.max_output_tokens = 8;
}
const SEARCHES = ['river', 'lant', '"', '"unclosed', '*', 'a*', 'NEAR(a b)', 'a OR b', 'NOT x', '-x', '^x', 'col:x', "'", '\u00e9t\u00e9',
                  '%', '\u0000', '()', 'x'.repeat(2000), 'AND', 'a AND (b OR', '{x}'];
// Sent as they are: bytes that are not UTF-8 (a lone surrogate's encoding, 0xFF).
const RAW_SEARCHES = ['%ED%A0%80', '%FF%FE', 'a%00b', '%C0%AF'];

function multipartBody(parts, boundary) {
  const chunks = [];
  for (const p of parts) {
    if (p.raw) { chunks.push(p.raw); continue; }
    let h = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"`;
    if (p.filename !== undefined) h += `; filename="${p.filename}"`;
    h += '\r\n';
    if (p.ctype) h += `Content-Type: ${p.ctype}\r\n`;
    chunks.push(Buffer.concat([Buffer.from(h + '\r\n', 'latin1'), Buffer.isBuffer(p.data) ? p.data : Buffer.from(String(p.data), 'utf8'), Buffer.from('\r\n')]));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

function uploadParts(r) {
  const kind = r.weighted([[4, 'csv'], [3, 'png'], [1, 'bmp'], [1, 'tsv'], [1, 'json'], [1, 'jsonl']]);
  let filename, ctype, data;
  switch (kind) {
    case 'csv': filename = 'sales.csv'; ctype = 'text/csv'; data = makeCsv(r, r.int(1, 20), r.int(1, 5)); break;
    case 'tsv': filename = 't.tsv'; ctype = 'text/tab-separated-values'; data = 'a\tb\n1\t2\n3\t4\n'; break;
    case 'json': filename = 't.json'; ctype = 'application/json'; data = JSON.stringify([{ a: 1, b: 'x' }, { a: 2, b: 'y' }]); break;
    case 'jsonl': filename = 't.jsonl'; ctype = 'application/x-ndjson'; data = '{"a":1}\n{"a":2}\n'; break;
    case 'png': filename = 'chart.png'; ctype = 'image/png'; data = makePng(r, r.int(1, 64), r.int(1, 48)); break;
    case 'bmp': filename = 'pic.bmp'; ctype = 'image/bmp'; data = makeBmp(r.int(1, 16), r.int(1, 16)); break;
  }
  return { kind, parts: [{ name: 'purpose', data: r.pick(['user_data', 'assistants', 'vision']) }, { name: 'file', filename, ctype, data }] };
}

// Structural mutations of a multipart upload.
function mutateMultipart(r, mp) {
  const filePart = mp.parts.find((p) => p.name === 'file');
  const op = r.weighted([[3, 'filename'], [2, 'content'], [1, 'noFile'], [1, 'noPurpose'], [1, 'dupFile'], [1, 'ctype'], [1, 'purpose'],
                         [1, 'manyParts'], [1, 'noFinal'], [1, 'badBoundary'], [1, 'partHeaders'], [1, 'name']]);
  switch (op) {
    case 'filename':
      if (!filePart) break;
      filePart.filename = r.pick(['', 'a'.repeat(300) + '.csv', 'x'.repeat(5000) + '.png', '../../etc/passwd', 'C:\\x\\y.csv', 'a\r\nb.csv',
        'a"b.csv', 'a\u0000b.csv', '\ud800.csv', 'é😀.csv', '.csv', 'noext', 'a.CSV', 'a.png.csv', '<script>.csv', 'a/b/c.png', '%00.csv']);
      if (r.chance(0.3)) filePart.filename = Buffer.from([0x61, 0xff, 0xfe, 0xc0, 0x80, 0x2e, 0x63, 0x73, 0x76]).toString('latin1');
      return { d: `filename ${JSON.stringify(filePart.filename.slice(0, 60))}${filePart.filename.length > 60 ? '...' : ''}`, s: 'mp filename' };
    case 'content':
      if (!filePart) break;
      filePart.data = r.pick([Buffer.alloc(0), Buffer.from('a,b\n1\n2,3,4\n'), Buffer.from('\ufeffa,b\n1,2\n'), Buffer.from('"unterminated\n'),
        Buffer.from(','.repeat(10000) + '\n'), Buffer.from('a\n'.repeat(50000)), makePng(r, 8, 8, { truncate: true }),
        makePng(r, 4, 4, { claimW: r.pick([0, 65535, 2147483647]), claimH: 4 }), makeBmp(2, 2, 16384, 3051), Buffer.from('{"a":'.repeat(500)),
        Buffer.from('[{"a":1},{"b":[1,2]}, 3]'), r.bytes(r.int(1, 4000)), Buffer.from([0xff, 0xfe, 0x00, 0x61]), GIF_1PX]);
      return { d: `file content replaced (${filePart.data.length} bytes)`, s: 'mp content' };
    case 'noFile': mp.parts = mp.parts.filter((p) => p !== filePart); return { d: 'no file part', s: 'mp nofile' };
    case 'noPurpose': mp.parts = mp.parts.filter((p) => p.name !== 'purpose'); return { d: 'no purpose part', s: 'mp nopurpose' };
    case 'dupFile': if (filePart) mp.parts.push({ ...filePart }); return { d: 'two file parts', s: 'mp dupfile' };
    case 'ctype': if (filePart) filePart.ctype = r.pick([undefined, 'image/png', 'text/csv', 'application/octet-stream', 'x/'.repeat(2000), 'text/csv; charset=utf-16']); return { d: `file part Content-Type ${String(filePart && filePart.ctype).slice(0, 40)}`, s: 'mp ctype' };
    case 'purpose': { const pp = mp.parts.find((p) => p.name === 'purpose'); if (pp) pp.data = r.pick(['', 'x'.repeat(100000), '\u0000', 'fine-tune', Buffer.from([0xff, 0xfe])]); return { d: 'odd purpose', s: 'mp purpose' }; }
    case 'manyParts': { const k = r.pick([100, 3000]); for (let i = 0; i < k; i++) mp.parts.push({ name: `p${i}`, data: 'x' }); return { d: `${k} extra parts`, s: 'mp many' }; }
    case 'noFinal': mp.noFinal = true; return { d: 'no closing boundary', s: 'mp nofinal' };
    case 'badBoundary': mp.headerBoundary = r.pick(['', 'other', mp.boundary + 'x', '"' + mp.boundary + '"', 'a'.repeat(200)]); return { d: `Content-Type boundary ${JSON.stringify(mp.headerBoundary.slice(0, 30))}`, s: 'mp boundary' };
    case 'partHeaders': if (filePart) { filePart.raw = Buffer.concat([Buffer.from(`--${mp.boundary}\r\nContent-Disposition: form-data; name=file; filename=x.csv\r\nX: ${'y'.repeat(r.pick([10, 100000]))}\r\n\r\na,b\n1,2\n\r\n`)]); } return { d: 'odd part headers', s: 'mp partheaders' };
    case 'name': if (filePart) filePart.name = r.pick(['File', 'files', '', 'file[]', 'purpose']); return { d: `file part named ${filePart && filePart.name}`, s: 'mp name' };
  }
  return { d: 'no-op', s: 'noop' };
}

// ---------------------------------------------------------------------------------------
// Byte-level and transport mutations.

const BAD_UTF8 = [[0xff], [0xfe], [0xc0, 0x80], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf], [0xf4, 0x90, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80], [0x80], [0xc1, 0xbf], [0xef, 0xbf, 0xbe], [0xe0, 0x80, 0xaf], [0xf0, 0x82, 0x82, 0xac]];

function mutateBytes(r, body) {
  const op = r.weighted([[3, 'truncate'], [3, 'flip'], [4, 'utf8'], [1, 'nul'], [1, 'bom'], [1, 'garbage'], [1, 'trailing'], [1, 'ws'], [1, 'utf16'], [1, 'empty']]);
  switch (op) {
    case 'truncate': { const n = r.int(0, Math.max(0, body.length - 1)); return { body: body.slice(0, n), d: `truncated to ${n} of ${body.length} bytes`, s: 'bytes truncate' }; }
    case 'flip': { const b = Buffer.from(body); const k = r.int(1, 8); for (let i = 0; i < k && b.length; i++) { const pos = r.int(0, b.length - 1); b[pos] = r.chance(0.5) ? b[pos] ^ (1 << r.int(0, 7)) : r.int(0, 255); } return { body: b, d: `${k} byte flips`, s: 'bytes flip' }; }
    case 'utf8': {
      // After a quote, so inside a key or string value most of the time.
      const q = []; for (let i = 0; i < body.length && q.length < 5000; i++) if (body[i] === 0x22) q.push(i + 1);
      const pos = q.length ? r.pick(q) : r.int(0, body.length);
      const bad = Buffer.from(r.pick(BAD_UTF8));
      return { body: Buffer.concat([body.slice(0, pos), bad, body.slice(pos)]), d: `invalid UTF-8 ${bad.toString('hex')} at byte ${pos}`, s: 'bytes utf8' };
    }
    case 'nul': { const pos = r.int(0, body.length); return { body: Buffer.concat([body.slice(0, pos), Buffer.from([0]), body.slice(pos)]), d: `NUL at byte ${pos}`, s: 'bytes nul' }; }
    case 'bom': return { body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), body]), d: 'UTF-8 BOM prefix', s: 'bytes bom' };
    case 'garbage': { const b = r.bytes(r.int(0, 2000)); return { body: b, d: `${b.length} random bytes`, s: 'bytes garbage' }; }
    case 'trailing': { const t = r.pick(['}', ',', 'x', '{}', ' {"a":1}', '\u0000', ']]]]']); return { body: Buffer.concat([body, Buffer.from(t)]), d: `trailing ${JSON.stringify(t)}`, s: 'bytes trailing' }; }
    case 'ws': { const n = r.pick([1000, 100000, 2000000]); return { body: Buffer.concat([Buffer.from(' \n\t\r'.repeat(n / 4)), body]), d: `${n} bytes of leading whitespace`, s: 'bytes ws' }; }
    case 'utf16': return { body: Buffer.from(body.toString('utf8'), 'utf16le'), d: 'UTF-16LE body', s: 'bytes utf16' };
    case 'empty': return { body: Buffer.alloc(0), d: 'empty body', s: 'bytes empty' };
  }
  return { body, d: 'no-op', s: 'noop' };
}

// req: {method, target, version, headers: [[k, v]], body: Buffer|null, framing, split, pipeline, expect, timeoutMs}
function setHeader(req, k, v) { req.headers = req.headers.filter(([x]) => x.toLowerCase() !== k.toLowerCase()); if (v !== undefined) req.headers.push([k, v]); }

function mutateTransport(r, req, srv) {
  const op = r.weighted([[4, 'ctype'], [3, 'auth'], [4, 'chunked'], [2, 'badLength'], [2, 'headers'], [2, 'method'], [2, 'target'],
                         [1, 'version'], [2, 'split'], [1, 'pipeline'], [1, 'expect100'], [1, 'keepalive']]);
  switch (op) {
    case 'ctype': {
      const v = r.pick([undefined, 'text/plain', 'application/json; charset=utf-16', 'application/json; charset=latin1', 'application/x-www-form-urlencoded',
                        'multipart/form-data', 'multipart/form-data; boundary=', 'APPLICATION/JSON', 'application/json;;;', 'application/json\u0000x',
                        'a'.repeat(10000), 'application/json, text/plain', 'image/png', '*/*']);
      setHeader(req, 'Content-Type', v);
      return { d: `Content-Type ${v === undefined ? '(none)' : JSON.stringify(v.slice(0, 50))}`, s: 'tp ctype' };
    }
    case 'auth': {
      const other = KEYS.bob, k = KEYS.alice;
      const v = r.pick([undefined, 'Bearer', 'Bearer ', 'Bearer wrong-key', `bearer ${k}`, `BEARER ${k}`, `Basic ${Buffer.from('x:' + k).toString('base64')}`,
                        `Bearer ${k}x`, `${k}`, `Bearer  ${k}`, `Bearer ${k} `, `Bearer ${'k'.repeat(70000)}`, `Bearer ${k.slice(0, -1)}`,
                        `Bearer \u00ff\u00fe`, `Bearer ${k}\u0000`, 'Token abc']);
      setHeader(req, 'Authorization', v);
      if (r.chance(0.15)) req.headers.push(['Authorization', `Bearer ${other}`]);
      if (r.chance(0.1)) req.headers.push(['X-Api-Key', k]);
      req.authMutated = true;
      return { d: `Authorization ${v === undefined ? '(none)' : JSON.stringify(v.slice(0, 50))}`, s: 'tp auth' };
    }
    case 'chunked': {
      const style = r.weighted([[5, 'valid'], [1, 'ext'], [1, 'upper'], [1, 'trailer'], [1, 'badhex'], [1, 'nofinal'], [1, 'huge']]);
      req.framing = 'chunked'; req.chunkStyle = style;
      if (!['valid', 'ext', 'upper', 'trailer'].includes(style)) { req.expect = 'maybe'; req.timeoutMs = 3000; }
      return { d: `chunked body (${style})`, s: `tp chunked ${style}` };
    }
    case 'badLength': {
      const style = r.pick(['short', 'long', 'negative', 'text', 'huge', 'dup', 'te+cl', 'none']);
      req.framing = 'cl-' + style; req.expect = 'maybe'; req.timeoutMs = 3000;
      return { d: `Content-Length ${style}`, s: `tp cl ${style}` };
    }
    case 'headers': {
      const style = r.pick(['huge', 'many', 'invalidbytes', 'nocolon', 'space', 'fold', 'origin', 'host', 'nohost', 'twohosts', 'xff', 'encoding']);
      switch (style) {
        case 'huge': req.headers.push(['X-Big', 'v'.repeat(r.pick([8000, 70000, 1100000]))]); req.expect = 'maybe'; break;
        case 'many': for (let i = 0, n = r.pick([100, 2000]); i < n; i++) req.headers.push([`X-H${i}`, String(i)]); req.expect = 'maybe'; break;
        case 'invalidbytes': req.headers.push(['X-Bytes', Buffer.from([0xff, 0x00, 0x80, 0x7f, 0x41])]); req.expect = 'maybe'; break;
        case 'nocolon': req.headers.push(['X-No-Colon-Here', null]); req.expect = 'maybe'; break;
        case 'space': req.headers.push(['X Space', 'y']); req.expect = 'maybe'; break;
        case 'fold': req.headers.push(['X-Fold', 'a\r\n  b']); req.expect = 'maybe'; break;
        case 'origin': req.headers.push(['Origin', r.pick(['http://evil.example', 'null', 'http://127.0.0.1:1', 'x'.repeat(5000)])]); break;
        case 'host': setHeader(req, 'Host', r.pick(['evil.example', 'localhost', '127.0.0.1', '[::1]:1', '', 'a'.repeat(3000)])); break;
        case 'nohost': setHeader(req, 'Host', undefined); req.expect = 'maybe'; break;
        case 'twohosts': req.headers.push(['Host', 'evil.example']); req.expect = 'maybe'; break;
        case 'xff': req.headers.push(['X-Forwarded-For', '1.2.3.4, 5.6.7.8']); break;
        case 'encoding': req.headers.push(['Content-Encoding', r.pick(['gzip', 'deflate', 'br', 'x'])]); req.headers.push(['Accept-Encoding', 'gzip, deflate, br']); break;
      }
      return { d: `headers: ${style}`, s: `tp headers ${style}` };
    }
    case 'method': {
      const m = r.pick(['GET', 'PUT', 'PATCH', 'OPTIONS', 'HEAD', 'DELETE', 'TRACE', 'POST', 'FOO', 'post', 'CONNECT']);
      req.method = m;
      if (['FOO', 'post', 'CONNECT', 'TRACE'].includes(m)) { req.expect = 'maybe'; req.timeoutMs = 3000; }
      return { d: `method ${m}`, s: `tp method ${m}` };
    }
    case 'target': {
      const base = req.target;
      const t = r.pick([base + '/', '/v1/' + base.replace(/^\/v1\//, '/'), base + '?stream=true&x=%00', base.replace('/v1', ''), base + '#frag',
                        base.replace(/c/, '%63'), '/' + 'a'.repeat(r.pick([1000, 20000])), '/v1/files/../models', '/v1/files/%00', '/v1/files/%ff%fe',
                        '*', `http://127.0.0.1:${srv.port}${base}`, base + '\u0000', '/v1/files/' + 'x'.repeat(5000), '/v1/./models', '//v1/models',
                        '/v1/models%2F..%2Fmetrics', '/metrics?format=json', '/health/', '/index.html', '/favicon.ico', '/v1']);
      req.target = t;
      if (/[\u0000 ]/.test(t) || t === '*' || t.length > 10000) { req.expect = 'maybe'; req.timeoutMs = 3000; }
      return { d: `target ${JSON.stringify(t.slice(0, 60))}`, s: 'tp target' };
    }
    case 'version': {
      const v = r.pick(['HTTP/1.0', 'HTTP/2.0', 'HTTP/1.2', 'HTTP/0.9', 'HTTP/1.1 extra', 'FOO', 'http/1.1']);
      req.version = v;
      if (v !== 'HTTP/1.0') { req.expect = 'maybe'; req.timeoutMs = 3000; }
      return { d: `version ${v}`, s: `tp version ${v}` };
    }
    case 'split': req.split = r.int(2, 6); return { d: `written in ${req.split} pieces`, s: 'tp split' };
    case 'pipeline': req.pipeline = true; return { d: 'a second request pipelined after it', s: 'tp pipeline' };
    case 'expect100': req.headers.push(['Expect', r.pick(['100-continue', '200-ok'])]); return { d: 'Expect header', s: 'tp expect' };
    case 'keepalive': setHeader(req, 'Connection', r.pick(['keep-alive', 'upgrade', 'close, close'])); if (r.chance(0.3)) req.headers.push(['Upgrade', 'websocket']); return { d: 'Connection header', s: 'tp connection' };
  }
  return { d: 'no-op', s: 'noop' };
}

// Serialises a request to the byte chunks to write.
function serialize(req, port) {
  const body = req.body || Buffer.alloc(0);
  const hs = req.headers.map(([k, v]) => [k, v === 'PORT' ? `127.0.0.1:${port}` : v]);
  let bodyBytes = body;
  const f = req.framing || 'cl';
  if (f === 'chunked') {
    hs.push(['Transfer-Encoding', 'chunked']);
    const parts = [];
    let off = 0;
    const r = makeRng(body.length, 7);
    while (off < body.length) {
      const n = Math.min(body.length - off, r.int(1, 4096));
      let size = n.toString(16);
      if (req.chunkStyle === 'upper') size = size.toUpperCase();
      if (req.chunkStyle === 'ext') size += ';name=value';
      if (req.chunkStyle === 'badhex' && r.chance(0.3)) size = 'zz' + size;
      parts.push(Buffer.from(size + '\r\n'), body.slice(off, off + n), Buffer.from('\r\n'));
      off += n;
    }
    if (req.chunkStyle === 'huge') parts.push(Buffer.from('fffffffffffffffff\r\nabc\r\n'));
    if (req.chunkStyle !== 'nofinal') parts.push(Buffer.from(req.chunkStyle === 'trailer' ? '0\r\nX-Trailer: 1\r\n\r\n' : '0\r\n\r\n'));
    bodyBytes = Buffer.concat(parts);
  } else if (req.method !== 'GET' && req.method !== 'HEAD' || body.length) {
    switch (f) {
      case 'cl': hs.push(['Content-Length', String(body.length)]); break;
      case 'cl-short': hs.push(['Content-Length', String(Math.max(0, body.length - 1 - (body.length >> 2)))]); break;
      case 'cl-long': hs.push(['Content-Length', String(body.length + 10)]); break;
      case 'cl-negative': hs.push(['Content-Length', '-1']); break;
      case 'cl-text': hs.push(['Content-Length', 'abc']); break;
      case 'cl-huge': hs.push(['Content-Length', '99999999999999999999']); break;
      case 'cl-dup': hs.push(['Content-Length', String(body.length)], ['Content-Length', String(body.length + 1)]); break;
      case 'cl-te+cl': hs.push(['Content-Length', String(body.length)], ['Transfer-Encoding', 'chunked']); break;
      case 'cl-none': break;
    }
  }
  const lines = [`${req.method} ${req.target} ${req.version || 'HTTP/1.1'}`];
  const headBufs = [Buffer.from(lines[0] + '\r\n', 'latin1')];
  for (const [k, v] of hs) {
    if (v === undefined) continue;
    if (v === null) headBufs.push(Buffer.from(`${k}\r\n`, 'latin1'));
    else if (Buffer.isBuffer(v)) headBufs.push(Buffer.from(`${k}: `, 'latin1'), v, Buffer.from('\r\n'));
    else headBufs.push(Buffer.from(`${k}: ${v}\r\n`, 'utf8'));
  }
  headBufs.push(Buffer.from('\r\n'));
  let all = Buffer.concat([...headBufs, bodyBytes]);
  if (req.pipeline) all = Buffer.concat([all, Buffer.from(`GET /health HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`)]);
  const chunks = [];
  if (req.split && all.length > 1) {
    const cuts = new Set(); const r = makeRng(all.length, req.split);
    while (cuts.size < Math.min(req.split - 1, all.length - 1)) cuts.add(r.int(1, all.length - 1));
    let prev = 0;
    for (const c of [...cuts].sort((a, b) => a - b)) { chunks.push({ data: all.slice(prev, c), delay: 5 }); prev = c; }
    chunks.push({ data: all.slice(prev), delay: 5 });
  } else {
    chunks.push({ data: all, delay: 0 });
  }
  return { chunks, bytes: all };
}

// ---------------------------------------------------------------------------------------
// Raw HTTP client: one connection per request, response parsed incrementally.

function parseResponse(b, eof, method) {
  let start = 0;
  for (;;) {
    const he = b.indexOf('\r\n\r\n', start);
    if (he < 0) return null;
    const head = b.slice(start, he).toString('latin1');
    const lines = head.split('\r\n');
    const m = /^HTTP\/\d\.\d (\d{3})/.exec(lines[0]);
    if (!m) return { garbled: true, head };
    const status = Number(m[1]);
    const headers = {};
    for (const l of lines.slice(1)) { const i = l.indexOf(':'); if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim(); }
    if (status >= 100 && status < 200) { start = he + 4; continue; }
    const bodyStart = he + 4;
    const res = { status, headers, head, complete: false, body: Buffer.alloc(0) };
    if (method === 'HEAD' || status === 204 || status === 304) { res.complete = true; return res; }
    if ((headers['transfer-encoding'] || '').toLowerCase().includes('chunked')) {
      let p = bodyStart; const parts = [];
      for (;;) {
        const le = b.indexOf('\r\n', p);
        if (le < 0) break;
        const size = parseInt(b.slice(p, le).toString('latin1').split(';')[0], 16);
        if (!Number.isFinite(size)) { res.badChunk = true; break; }
        if (size === 0) { res.complete = b.indexOf('\r\n\r\n', le) >= 0 || b.length >= le + 4; break; }
        if (b.length < le + 2 + size + 2) break;
        parts.push(b.slice(le + 2, le + 2 + size));
        p = le + 2 + size + 2;
      }
      res.body = Buffer.concat(parts);
      return res;
    }
    if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      res.body = b.slice(bodyStart, bodyStart + n);
      res.complete = b.length - bodyStart >= n;
      return res;
    }
    res.body = b.slice(bodyStart);
    res.complete = eof;
    return res;
  }
}

function sendRaw(port, chunks, timeoutMs, method) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const bufs = []; let total = 0, done = false, errCode = null;
    const sock = net.connect({ port, host: '127.0.0.1' });
    sock.setNoDelay(true);
    const finish = (kind, p) => {
      if (done) return; done = true;
      clearTimeout(timer); sock.destroy();
      resolve({ kind, status: p && p.status, headers: p && p.headers, head: p && p.head, body: p && p.body, ms: performance.now() - t0, errCode, bytes: total });
    };
    const timer = setTimeout(() => {
      const p = total ? parseResponse(Buffer.concat(bufs), false, method) : null;
      finish('timeout', p && !p.garbled ? p : null);
    }, timeoutMs);
    let written = false;  // every byte handed to the kernel (for a big body: most of it read by the server)
    sock.on('connect', async () => {
      for (let k = 0; k < chunks.length; k++) {
        const c = chunks[k];
        if (c.delay) await new Promise((r) => setTimeout(r, c.delay));
        if (done || sock.destroyed) return;
        sock.write(c.data, k === chunks.length - 1 ? (e) => { if (!e) written = true; } : undefined);
      }
    });
    sock.on('data', (d) => {
      bufs.push(d); total += d.length;
      if (total > 64 << 20) return finish('response', { status: 0 });
      const p = parseResponse(Buffer.concat(bufs), false, method);
      if (p && p.complete) finish('response', p);
    });
    sock.on('error', (e) => { errCode = e.code; });
    sock.on('close', () => {
      if (done) return;
      // Closed while we were still sending: the server answered early and closed (an
      // oversized or unauthorised body), and the reset that follows unread bytes can discard
      // its answer on our side before we read it. Counted, not a finding.
      if (!total) return finish(errCode === 'ECONNREFUSED' ? 'refused' : written ? 'closed' : 'closed-early');
      const p = parseResponse(Buffer.concat(bufs), true, method);
      if (!p || p.garbled) return finish('garbled', null);
      finish(p.complete ? 'response' : 'truncated', p);
    });
  });
}

// Server-sent events in a 200 stream: error events and whether [DONE] came.
function sseInfo(body) {
  const text = body.toString('utf8');
  const info = { events: 0, done: /(^|\n)data: \[DONE\]/.test(text), errors: [] };
  for (const line of text.split('\n')) {
    if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
    info.events++;
    try {
      const j = JSON.parse(line.slice(6));
      if (j.error && !j.type) info.errors.push(j.error);
      // The Responses API's error event: {type: "error", code, message}; a server's own failure has a server code.
      if (j.type === 'error') info.errors.push({ type: ['server_error', 'storage_unavailable', 'kv_cache_full'].includes(j.code) ? 'server_error' : 'response_error', code: j.code, message: j.message });
      if (j.type === 'response.completed' || j.type === 'response.incomplete' || j.type === 'response.failed') info.done = true;
    } catch (e) { info.errors.push({ type: 'unparseable_event', message: line.slice(0, 200) }); }
  }
  return info;
}

// ---------------------------------------------------------------------------------------
// Servers

class Server {
  constructor(name, opts, extraArgs) {
    this.name = name; this.opts = opts; this.extraArgs = extraArgs;
    this.generation = 0; this.proc = null; this.port = 0; this.logTail = ''; this.exits = [];
  }
  async start() {
    const o = this.opts;
    const args = ['serve', '--port', '0', '--model', o.model, '--threads', String(o.threads), '--max-tokens', '32', '--max-agents', '4',
                  '--parallel', '2', '--queue', '16', '--max-files', '16', '--grace', '2', '--ctx', '16384',
                  '--data-dir', path.join(o.work, `data-${this.name}-${this.generation + 1}`), ...this.extraArgs];
    const proc = spawn(o.muse, args, { env: { ...process.env, MUSE_CACHE_DIR: path.join(o.work, 'cache-' + this.name), OMP_WAIT_POLICY: 'passive' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.proc = proc; this.generation++;
    if (o.pidfile) fs.appendFileSync(o.pidfile, `${proc.pid}\n`);
    const tail = (d) => { this.logTail = (this.logTail + d).slice(-16000); };
    await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`${this.name} server did not start in 120 s:\n${this.logTail}`)); }, 120000);
      proc.stdout.on('data', (d) => {
        tail(d);
        if (this.port) return;  // only the start-up lines are searched (and kept)
        out += d;
        const m = out.match(/listening on http:\/\/[^\s:]+:(\d+)/);
        if (m) { clearTimeout(timer); this.port = Number(m[1]); out = ''; resolve(); }
      });
      proc.stderr.on('data', tail);
      proc.on('exit', (code, signal) => {
        clearTimeout(timer);
        this.exits.push({ code, signal, at: Date.now(), generation: this.generation });
        if (!this.port) reject(new Error(`${this.name} server exited with ${code}${signal ? ' (' + signal + ')' : ''} before listening:\n${this.logTail}`));
        if (this.onExit) this.onExit(code, signal);
      });
    });
  }
  alive() { return this.proc && this.proc.exitCode === null && this.proc.signalCode === null; }
  procStatus() {
    try {
      const s = fs.readFileSync(`/proc/${this.proc.pid}/status`, 'utf8');
      const kb = (k) => { const m = s.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm')); return m ? Number(m[1]) : NaN; };
      return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
    } catch (e) { return { hwm: NaN, rss: NaN }; }
  }
  async restart() { this.port = 0; this.logTail = ''; await this.start(); }
  async stop() {
    if (!this.alive()) return null;
    const t0 = Date.now();
    const ex = new Promise((r) => this.proc.once('exit', (code, signal) => r({ code, signal })));
    this.proc.kill('SIGTERM');
    const res = await Promise.race([ex, new Promise((r) => setTimeout(() => r(null), 10000))]);
    if (!res) { this.proc.kill('SIGKILL'); await ex; return { code: null, signal: 'SIGKILL after 10 s', s: (Date.now() - t0) / 1000 }; }
    return { ...res, s: (Date.now() - t0) / 1000 };
  }
}

// ---------------------------------------------------------------------------------------
// The fuzzer

function esc(buf, max) {
  const s = buf.slice(0, max).toString('latin1').replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\xff]/g, (c) => '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0'))
    .replace(/\r/g, '\\r').replace(/\n/g, '\\n\n');
  return s + (buf.length > max ? `... (${buf.length} bytes in all)` : '');
}

class Fuzzer {
  constructor(o) {
    this.o = o;
    this.servers = {
      keyed: new Server('keyed', o, ['--api-key-file', path.join(o.work, 'keys.txt'), '--quiet']),
      open: new Server('open', o, ['--quiet']),
    };
    this.files = { keyed: { alice: [], bob: [] }, open: { _: [] } };
    // Ids of stored responses, conversations and items, per user: later requests use them, and
    // the other user's must be 404 (cross-user).
    const pools = () => ({ resp: [], conv: [], item: [] });
    this.ids = { keyed: { alice: pools(), bob: pools() }, open: { _: pools() } };
    this.next = 0; this.sent = 0; this.stats = { status: {}, route: {}, kinds: {}, streamErrors: {}, gens: {}, valid: {} };
    this.findings = []; this.signatures = new Map(); this.findingSeq = 0;
    this.crashes = []; this.recent = { keyed: [], open: [] }; this.inflight = { keyed: new Set(), open: new Set() };
    this.health = { checks: 0, failures: 0, maxMs: 0, lat: [] };
    this.driver = { heapUsed: 0, rss: 0, external: 0 }; this.samples = 0;  // the driver's own peaks
    this.flaky = 0; this.maybeNoResponse = 0; this.closedEarly = 0; this.rssPeak = {}; this.timeouts = []; this.pause = null;
  }

  // The node driver's memory now; keeps the peaks for the summary.
  sampleDriver() {
    const m = process.memoryUsage();
    for (const k of ['heapUsed', 'rss', 'external']) this.driver[k] = Math.max(this.driver[k], m[k]);
    return m;
  }

  async startAll() {
    fs.writeFileSync(path.join(this.o.work, 'keys.txt'), `alice ${KEYS.alice}\nbob ${KEYS.bob}\n`);
    for (const s of Object.values(this.servers)) {
      s.onExit = (code, signal) => this.onServerExit(s, code, signal);
      await s.start();
    }
  }

  // A server died: save what was in flight and the last requests, restart it, then replay
  // those requests one at a time against the fresh server (the other workers wait) to find the
  // one that kills it alone.
  onServerExit(s, code, signal) {
    if (this.stopping || this.replayMode) return;
    if (this.bisecting) { this.bisectDied = { code, signal }; return; }
    const regen = (x) => (x.bytes ? x : { ...x, bytes: serialize(this.generate(x.i).req, s.port).bytes });
    const crash = { server: s.name, code, signal, at: new Date().toISOString(), inflight: [...this.inflight[s.name]].map((x) => x.info),
                    recent: this.recent[s.name].slice(-10).map(regen), log: s.logTail };
    this.crashes.push(crash);
    const dir = path.join(this.o.findings, `crash-${this.crashes.length}`);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'server.log'), s.logTail);
    const write = (list, tag) => list.forEach((x, i) => {
      fs.writeFileSync(path.join(dir, `${tag}-${i}.http`), x.bytes);
      fs.writeFileSync(path.join(dir, `${tag}-${i}.txt`), `${x.label}\nserver: ${x.server}\n\n${esc(x.bytes, 8000)}\n`);
    });
    write(crash.inflight, 'inflight'); write(crash.recent, 'recent');
    console.error(`[fuzz] the ${s.name} server died (exit code ${code}, signal ${signal}); ${crash.inflight.length} request(s) in flight and ${crash.recent.length} recent saved to ${dir}; restarting it and replaying them one at a time`);
    this.pause = (async () => {
      try {
        await s.restart();
        const candidates = [...crash.inflight, ...crash.recent.slice().reverse()];
        let found = null, foundRes = null;
        this.bisecting = true; this.bisectDied = null;
        for (const c of candidates) {
          const bytes = Buffer.from(c.bytes.toString('latin1').replace(/127\.0\.0\.1:\d+/g, `127.0.0.1:${s.port}`), 'latin1');
          const res = await sendRaw(s.port, [{ data: bytes, delay: 0 }], c.timeoutMs || this.o.timeoutMs, c.method);
          await new Promise((r) => setTimeout(r, 400));
          if (!s.alive()) { found = c; foundRes = res; await s.restart(); break; }
        }
        this.bisecting = false;
        const died = this.bisectDied || { code, signal };
        if (found) {
          this.addFinding('crash', `the ${s.name} server died (exit code ${died.code}, signal ${died.signal}); this request alone kills it`, found, foundRes, `crash ${died.signal || died.code} ${found.server} ${found.route}`);
        } else {
          this.addFinding('crash', `the ${s.name} server died (exit code ${code}, signal ${signal}); no single in-flight or recent request kills it alone (a race?): see ${dir}`,
                          crash.inflight[0] || crash.recent[crash.recent.length - 1] || null, null, `crash ${signal || code} not reproduced alone`);
        }
        console.error(`[fuzz] ${found ? 'reproduced alone by: ' + found.label.slice(0, 200) : 'not reproduced by any single request'}; going on`);
      } catch (e) {
        console.error(`[fuzz] the ${s.name} server did not restart: ${e.message}`); this.dead = true;
      } finally {
        this.bisecting = false; this.pause = null;
      }
    })();
  }

  addFinding(kind, what, info, res, sig) {
    const key = `${kind} | ${sig}`;
    let e = this.signatures.get(key);
    if (!e) { e = { kind, sig, count: 0, examples: [] }; this.signatures.set(key, e); }
    e.count++;
    if (e.examples.length >= 5 || !info) { if (!info && !e.examples.length) e.examples.push({ what }); return; }
    const n = String(++this.findingSeq).padStart(3, '0');
    const base = path.join(this.o.findings, `${n}-${kind}`);
    fs.writeFileSync(base + '.http', info.bytes);
    const resText = res ? `${res.kind} ${res.status || ''} after ${res.ms.toFixed(0)} ms\n${res.head || ''}\n\n${res.body ? res.body.slice(0, 4000).toString('utf8') : ''}` : '(no response)';
    fs.writeFileSync(base + '.txt', `${what}\nserver: ${info.server}${info.user ? ' (user ' + info.user + ')' : ''}\nrequest: ${info.label}\n\n--- sent (${info.bytes.length} bytes; raw bytes in ${path.basename(base)}.http) ---\n${esc(info.bytes, 16000)}\n\n--- received ---\n${resText}\n`);
    e.examples.push({ what, file: base + '.http', label: info.label, excerpt: esc(info.bytes, 600), response: res ? `${res.kind} ${res.status || ''} ${res.body ? res.body.slice(0, 300).toString('utf8') : ''}` : '' });
    this.findings.push({ kind, what, file: base + '.http' });
  }

  // Builds request i. Returns {srv, user, req, label, sig, check}.
  generate(i) {
    const r = makeRng(this.o.seed, i);
    const srvName = r.chance(0.7) ? 'keyed' : 'open';
    const srv = this.servers[srvName];
    const user = srvName === 'keyed' ? r.pick(['alice', 'bob']) : null;
    const other = user === 'alice' ? 'bob' : 'alice';
    const own = () => (srvName === 'keyed' ? this.files.keyed[user] : this.files.open._);
    const idsOf = (u) => (srvName === 'keyed' ? this.ids.keyed[u] : this.ids.open._);
    const ctx = { ownFiles: own, otherFiles: () => (srvName === 'keyed' ? this.files.keyed[other] : []), own: (k) => idsOf(user)[k] };
    const remember = (kind, id) => { const l = idsOf(user)[kind]; if (typeof id === 'string' && !l.includes(id)) { l.push(id); if (l.length > 20) l.shift(); } };
    const forget = (kind, id) => { const l = idsOf(user)[kind]; const k = l.indexOf(id); if (k >= 0) l.splice(k, 1); };
    const req = { method: 'GET', target: '/', version: 'HTTP/1.1', headers: [['Host', 'PORT']], body: null, expect: 'response', timeoutMs: this.o.timeoutMs };
    if (user) req.headers.push(['Authorization', `Bearer ${KEYS[user]}`]);
    req.headers.push(['Connection', 'close']);
    const ops = []; let check = null;
    const gen = r.weighted([[40, 'chat'], [16, 'responses'], [12, 'conv'], [12, 'upload'], [5, 'fileGet'], [4, 'fileDelete'], [3, 'fileList'], [3, 'models'],
                            [2, 'metrics'], [1, 'health'], [1, 'root'], [2, 'options'], ...(srvName === 'keyed' ? [[6, 'crossUser'], [3, 'noAuth']] : [])]);
    let genName = gen;
    const mutate = r.chance(0.85);
    switch (gen) {
      case 'chat': {
        const sub = r.weighted([[4, 'text'], [2, 'multiturn'], [3, 'parts'], [3, 'tools'], [3, 'toolResult'], [3, 'json'], [2, 'attach']]);
        genName = 'chat.' + sub;
        const holder = { root: CHAT_GENS[sub](r, ctx) };
        req.method = 'POST'; req.target = r.chance(0.95) ? '/v1/chat/completions' : '/chat/completions';
        req.headers.push(['Content-Type', 'application/json']);
        if (mutate) {
          const graft = () => CHAT_GENS[r.pick(Object.keys(CHAT_GENS))](r, ctx);
          for (let k = r.weighted([[5, 1], [3, 2], [2, 3], [1, 5]]); k > 0; k--) {
            const before = cloneTree(holder.root);
            const op = mutateTree(r, holder, graft);
            const est = sizeEst(holder.root);
            if (est <= MAX_TREE_BYTES) { ops.push(op); continue; }
            holder.root = before;
            ops.push({ d: `(undone: ${op.d}; the body would be ~${(est / 1048576).toFixed(0)} MB)`, s: null });
            this.undone = (this.undone || 0) + 1;
          }
          boundChat(holder.root);
        }
        req.body = Buffer.from(ser(holder.root), 'utf8');
        req.stream = holder.root && holder.root.stream === true;
        if (mutate && r.chance(0.25)) { const m = mutateBytes(r, req.body); req.body = m.body; ops.push(m); }
        break;
      }
      case 'responses': {
        const sub = r.weighted([[4, 'text'], [3, 'items'], [2, 'tools'], [2, 'toolOutput'], [2, 'json'], [4, 'chain'], [3, 'conversation']]);
        genName = 'responses.' + sub;
        const holder = { root: RESP_GENS[sub](r, ctx) };
        req.method = 'POST'; req.target = '/v1/responses';
        req.headers.push(['Content-Type', 'application/json']);
        if (mutate) {
          const graft = () => RESP_GENS[r.pick(Object.keys(RESP_GENS))](r, ctx);
          for (let k = r.weighted([[5, 1], [3, 2], [1, 3]]); k > 0; k--) {
            const before = cloneTree(holder.root);
            const op = mutateTree(r, holder, graft);
            if (sizeEst(holder.root) <= MAX_TREE_BYTES) { ops.push(op); continue; }
            holder.root = before;
          }
          boundResp(holder.root);
        }
        req.body = Buffer.from(ser(holder.root), 'utf8');
        req.stream = holder.root && holder.root.stream === true;
        req.responses = true;
        if (mutate && r.chance(0.2)) { const m = mutateBytes(r, req.body); req.body = m.body; ops.push(m); }
        // A stored response (whole, or the stream's response.created) joins the user's pool.
        req.onOk = (text) => { const m = /"id":"(resp_[0-9a-f]{48})"/.exec(text); if (m && !/"store":false/.test(text)) remember('resp', m[1]); };
        break;
      }
      case 'conv': {
        const sub = r.weighted([[3, 'create'], [2, 'list'], [2, 'search'], [2, 'get'], [1, 'update'], [1, 'delete'], [2, 'itemsAdd'],
                                [2, 'itemsList'], [1, 'itemGet'], [1, 'itemDelete'], [1, 'respGet'], [1, 'respDelete'], [1, 'respInput']]);
        genName = 'conv.' + sub;
        const pool = idsOf(user);
        const pickId = (kind, bogus) => (pool[kind].length && r.chance(0.85) ? r.pick(pool[kind]) : r.pick(bogus));
        const cid = pickId('conv', ['conv_none', 'conv_' + '0'.repeat(48), '%00', 'x'.repeat(300), '..']);
        const item = () => ({ type: 'message', role: r.pick(['user', 'assistant', 'system', 'developer']),
                              content: r.chance(0.5) ? words(r) : [{ type: r.pick(['input_text', 'output_text']), text: words(r) }] });
        let holder = null;
        const enc = (x) => (/[^\x21-\x7e]/.test(x) ? encodeURIComponent(x) : x);
        switch (sub) {
          case 'create':
            req.method = 'POST'; req.target = '/v1/conversations';
            holder = { root: { metadata: { title: words(r, 3) }, items: r.chance(0.7) ? [item(), item()] : [] } };
            req.onOk = (text) => { const j = JSON.parse(text); remember('conv', j.id); };
            break;
          case 'list': req.target = '/v1/conversations?limit=' + r.pick(['1', '20', '100', '0', '-1', '1001', 'x', '1e9']); break;
          case 'search':
            req.target = '/v1/conversations?search=' + (r.chance(0.85) ? encodeURIComponent(r.pick(SEARCHES)) : r.pick(RAW_SEARCHES)) +
                         (r.chance(0.3) ? '&limit=' + r.int(-1, 200) : '');
            break;
          case 'get': req.target = '/v1/conversations/' + enc(cid); break;
          case 'update':
            req.method = 'POST'; req.target = '/v1/conversations/' + enc(cid);
            holder = { root: { metadata: { title: words(r, 3), [words(r, 1)]: words(r, 2) } } };
            break;
          case 'delete': req.method = 'DELETE'; req.target = '/v1/conversations/' + enc(cid); forget('conv', cid); break;
          case 'itemsAdd':
            req.method = 'POST'; req.target = `/v1/conversations/${enc(cid)}/items`;
            holder = { root: { items: [item(), ...(r.chance(0.3) ? [{ type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' },
                                                            { type: 'function_call_output', call_id: 'c1', output: 'ok' }] : [])] } };
            req.onOk = (text) => { for (const it of JSON.parse(text).data || []) remember('item', it.id); };
            break;
          case 'itemsList':
            req.target = `/v1/conversations/${enc(cid)}/items?limit=${r.pick(['1', '20', '100', '0', '101', 'x'])}&order=${r.pick(['asc', 'desc', 'sideways'])}` +
                         (r.chance(0.3) ? '&after=' + enc(pickId('item', ['msg_none', ''])) : '');
            break;
          case 'itemGet': case 'itemDelete': {
            const iid = pickId('item', ['msg_none', 'msg_' + '0'.repeat(48), '%2e%2e']);
            req.method = sub === 'itemGet' ? 'GET' : 'DELETE';
            req.target = `/v1/conversations/${enc(cid)}/items/${enc(iid)}`;
            if (sub === 'itemDelete') forget('item', iid);
            break;
          }
          case 'respGet': case 'respDelete': case 'respInput': {
            const rid = pickId('resp', ['resp_none', 'resp_' + '0'.repeat(48), 'x'.repeat(300)]);
            req.method = sub === 'respDelete' ? 'DELETE' : 'GET';
            req.target = '/v1/responses/' + enc(rid) + (sub === 'respInput' ? '/input_items' : '');
            if (sub === 'respDelete') forget('resp', rid);
            break;
          }
        }
        if (holder) {
          req.headers.push(['Content-Type', 'application/json']);
          if (mutate) {
            const graft = () => ({ items: [item()], metadata: { title: words(r) } });
            for (let k = r.int(1, 2); k > 0; k--) {
              const before = cloneTree(holder.root);
              const op = mutateTree(r, holder, graft);
              if (sizeEst(holder.root) <= MAX_TREE_BYTES) ops.push(op); else holder.root = before;
            }
          }
          req.body = Buffer.from(ser(holder.root), 'utf8');
        }
        break;
      }
      case 'upload': {
        const { kind, parts } = uploadParts(r);
        genName = 'upload.' + kind;
        const boundary = '----muse-fuzz-' + r.int(1e6, 9e6);
        const mp = { parts, boundary };
        if (mutate) for (let k = r.int(1, 2); k > 0; k--) ops.push(mutateMultipart(r, mp));
        let body = multipartBody(mp.parts, boundary);
        if (mp.noFinal) body = body.slice(0, body.length - boundary.length - 6);
        req.method = 'POST'; req.target = '/v1/files';
        req.headers.push(['Content-Type', `multipart/form-data; boundary=${mp.headerBoundary !== undefined ? mp.headerBoundary : boundary}`]);
        req.body = body;
        if (mutate && r.chance(0.15)) { const m = mutateBytes(r, req.body); req.body = m.body; ops.push(m); }
        req.isUpload = true;
        break;
      }
      case 'fileGet': case 'fileDelete': {
        const ids = own();
        const id = r.weighted([[6, ids.length ? r.pick(ids) : 'file-none'], [1, r.pick(['', 'file-', 'file-' + 'f'.repeat(24), '%2e%2e', '..', 'file-%00', 'file-\u00e9',
                                 'x'.repeat(r.pick([300, 9000])), 'file-1?x=1', 'FILE-0', ' file', 'file-0/content'])]]);
        req.method = gen === 'fileGet' ? 'GET' : 'DELETE';
        req.target = '/v1/files/' + (/[^\x21-\x7e]/.test(id) ? encodeURIComponent(id) : id);
        if (gen === 'fileDelete' && ids.includes(id)) ids.splice(ids.indexOf(id), 1);
        if (gen === 'fileGet' && r.chance(0.2)) req.target += '/content';
        break;
      }
      case 'fileList': req.target = r.pick(['/v1/files', '/v1/files?purpose=user_data', '/files', '/v1/files?limit=-1&after=x']); break;
      case 'models': req.target = r.pick(['/v1/models', '/models', '/v1/models/muse', '/v1/models/' + 'x'.repeat(300)]); break;
      case 'metrics': req.target = '/metrics'; break;
      case 'health': req.target = '/health'; break;
      case 'root': req.target = r.pick(['/', '/index.html']); break;
      case 'options':
        req.method = 'OPTIONS'; req.target = r.pick(['/v1/chat/completions', '/v1/files', '/']);
        req.headers.push(['Origin', 'http://evil.example'], ['Access-Control-Request-Method', 'POST'], ['Access-Control-Request-Headers', 'authorization, content-type']);
        break;
      case 'crossUser': {
        // Another user's file must be invisible: not readable, deletable, listed or attachable.
        const theirIds = this.ids.keyed[other];
        if ((theirIds.conv.length || theirIds.resp.length) && r.chance(0.5)) {
          // Another user's conversations, items and responses do not exist for this one.
          const kinds = [...(theirIds.conv.length ? ['convGet', 'convUpdate', 'convDelete', 'convItems', 'convAdd', 'convTurn', 'chatTurn'] : []),
                         ...(theirIds.item.length && theirIds.conv.length ? ['itemGet', 'itemDelete'] : []),
                         ...(theirIds.resp.length ? ['respGet', 'respDelete', 'respInput', 'respContinue'] : [])];
          const what = r.pick(kinds);
          genName = 'cross-user.' + what;
          const c = theirIds.conv.length ? r.pick(theirIds.conv) : '', it = theirIds.item.length ? r.pick(theirIds.item) : '', rs = theirIds.resp.length ? r.pick(theirIds.resp) : '';
          const json = (o) => { req.headers.push(['Content-Type', 'application/json']); req.body = Buffer.from(JSON.stringify(o)); };
          switch (what) {
            case 'convGet': req.target = `/v1/conversations/${c}`; break;
            case 'convUpdate': req.method = 'POST'; req.target = `/v1/conversations/${c}`; json({ metadata: { title: 'mine now' } }); break;
            case 'convDelete': req.method = 'DELETE'; req.target = `/v1/conversations/${c}`; break;
            case 'convItems': req.target = `/v1/conversations/${c}/items`; break;
            case 'convAdd': req.method = 'POST'; req.target = `/v1/conversations/${c}/items`; json({ items: [{ type: 'message', role: 'user', content: 'x' }] }); break;
            case 'convTurn': req.method = 'POST'; req.target = '/v1/responses'; json({ input: 'x', conversation: c, max_output_tokens: 2, mode: 'instant' }); break;
            case 'chatTurn': req.method = 'POST'; req.target = '/v1/chat/completions'; json({ messages: [{ role: 'user', content: 'x' }], conversation: c, max_tokens: 2, mode: 'instant' }); break;
            case 'itemGet': req.target = `/v1/conversations/${c}/items/${it}`; break;
            case 'itemDelete': req.method = 'DELETE'; req.target = `/v1/conversations/${c}/items/${it}`; break;
            case 'respGet': req.target = `/v1/responses/${rs}`; break;
            case 'respDelete': req.method = 'DELETE'; req.target = `/v1/responses/${rs}`; break;
            case 'respInput': req.target = `/v1/responses/${rs}/input_items`; break;
            case 'respContinue': req.method = 'POST'; req.target = '/v1/responses'; json({ input: 'x', previous_response_id: rs, max_output_tokens: 2, mode: 'instant' }); break;
          }
          check = (res) => (res.status !== 404 ? `${req.method} ${req.target.slice(0, 80)} (${other}'s) as ${user}: ${res.status} (must be 404, like a missing id)` : null);
          return { srv, srvName, user, req, genName, ops: [], check, r };
        }
        const theirs = this.files.keyed[other];
        const id = theirs.length ? r.pick(theirs) : null;
        const what = id ? r.pick(['get', 'delete', 'attach', 'list']) : 'list';
        genName = 'cross-user.' + what;
        if (what === 'list') {
          req.target = '/v1/files';
          check = (res) => {
            if (res.status !== 200) return null;
            const leaked = this.files.keyed[other].filter((x) => res.body.toString('utf8').includes(x));
            return leaked.length ? `GET /v1/files as ${user} lists ${other}'s file(s) ${leaked.join(', ')}` : null;
          };
        } else if (what === 'attach') {
          req.method = 'POST'; req.target = '/v1/chat/completions';
          req.headers.push(['Content-Type', 'application/json']);
          req.body = Buffer.from(JSON.stringify({ messages: [{ role: 'user', content: 'What is in the file?' }], attachments: [id], max_tokens: 4, mode: 'instant' }));
          check = (res) => (res.status >= 200 && res.status < 300 ? `${user} attached ${other}'s file ${id} to a chat and got ${res.status}` : null);
        } else {
          req.method = what === 'get' ? 'GET' : 'DELETE'; req.target = `/v1/files/${id}`;
          check = (res) => (res.status !== 404 ? `${req.method} of ${other}'s file ${id} as ${user}: ${res.status} (must be 404, like a missing file)` : null);
        }
        return { srv, srvName, user, req, genName, ops: [], check, r };
      }
      case 'noAuth': {
        // Without a valid key every route but /health answers 401.
        const t = r.pick(['/v1/models', '/v1/files', '/metrics', '/v1/chat/completions', '/v1/files/x', '/', '/models', '/chat/completions']);
        req.target = t; req.method = t.includes('chat') ? 'POST' : 'GET';
        req.headers = req.headers.filter(([k]) => k !== 'Authorization');
        const v = r.pick([undefined, 'Bearer', 'Bearer wrong', `Bearer ${KEYS.alice}x`, `Basic ${Buffer.from('alice:' + KEYS.alice).toString('base64')}`, `Bearer ${KEYS.alice.toUpperCase()}`, 'Bearer \u0000']);
        if (v !== undefined) req.headers.push(['Authorization', v]);
        if (req.method === 'POST') { req.headers.push(['Content-Type', 'application/json']); req.body = Buffer.from('{"messages":[{"role":"user","content":"hi"}],"max_tokens":2,"mode":"instant"}'); }
        genName = 'no-auth';
        check = (res) => (res.status >= 200 && res.status < 300 ? `${req.method} ${t} with Authorization ${JSON.stringify(v)} got ${res.status} without a valid key` : null);
        return { srv, srvName, user: null, req, genName, ops: [], check, r };
      }
    }
    if (mutate && r.chance(gen === 'chat' || gen === 'upload' ? 0.2 : 0.5)) ops.push(mutateTransport(r, req, srv));
    if (srvName === 'keyed' && req.authMutated) {
      const auths = req.headers.filter(([k]) => k.toLowerCase() === 'authorization' || k.toLowerCase() === 'x-api-key').map(([, v]) => String(v));
      const hasValid = auths.some((v) => v.includes(KEYS.alice) || v.includes(KEYS.bob));
      if (!hasValid && !req.target.startsWith('/health')) {
        check = (res) => (res.status >= 200 && res.status < 300 && req.method !== 'OPTIONS' ? `${req.method} ${req.target.slice(0, 60)} got ${res.status} without a valid key (Authorization ${JSON.stringify(auths.map((a) => a.slice(0, 40)))})` : null);
      }
    }
    return { srv, srvName, user, req, genName, ops, check, r };
  }

  record(srvName, genName, req, res, unmutated) {
    const st = res.kind === 'response' ? String(res.status) : res.kind;
    this.stats.status[st] = (this.stats.status[st] || 0) + 1;
    const KNOWN = ['/v1/chat/completions', '/chat/completions', '/v1/files', '/files', '/v1/files/{id}', '/files/{id}', '/v1/files/{id}/content', '/v1/models', '/models',
                   '/health', '/metrics', '/', '/index.html', '/v1/responses', '/v1/responses/{id}', '/v1/responses/{id}/input_items', '/v1/conversations',
                   '/v1/conversations/{id}', '/v1/conversations/{id}/items', '/v1/conversations/{id}/items/{item}'];
    const rt = routeOf(req.target), m = ['GET', 'POST', 'DELETE', 'OPTIONS', 'HEAD'].includes(req.method) ? req.method : 'other method';
    const route = KNOWN.includes(rt) && m !== 'other method' ? `${m} ${rt}` : KNOWN.includes(rt) ? `other method ${rt}` : `${m} other path`;
    const rs = (this.stats.route[route] = this.stats.route[route] || {});
    rs[st] = (rs[st] || 0) + 1;
    const g = (this.stats.gens[genName] = this.stats.gens[genName] || {});
    g[st] = (g[st] || 0) + 1;
    if (unmutated) { const v = (this.stats.valid[genName] = this.stats.valid[genName] || {}); v[st] = (v[st] || 0) + 1; }
  }

  async one(i) {
    const g = this.generate(i);
    const { srv, srvName, user, req, genName, ops, check } = g;
    while (this.pause) await this.pause;
    if (this.dead) return;
    const label = [genName, ...ops.map((o) => o.d)].join(' | ');
    const sigOps = ops.map((o) => o.s).filter(Boolean).join(' + ') || 'valid';
    const ser1 = serialize(req, srv.port);
    const info = { server: srvName, user, label, bytes: ser1.bytes, i, method: req.method, timeoutMs: req.timeoutMs,
                   sig: `${srvName} ${req.method} ${routeOf(req.target)} ${sigOps}`, route: `${req.method} ${routeOf(req.target)}` };
    const gen = srv.generation;
    // In flight until its outcome is known: a connection closed by a dying server is seen
    // before the process's exit, and the crash handler must still find the request.
    this.inflight[srvName].add(g); g.info = info;
    try {
      await this.sendAndCheck(g, srv, srvName, user, req, genName, ops, check, info, label, sigOps, ser1, gen);
    } finally {
      this.inflight[srvName].delete(g);
    }
  }

  async sendAndCheck(g, srv, srvName, user, req, genName, ops, check, info, label, sigOps, ser1, gen) {
    let res = await sendRaw(srv.port, ser1.chunks, req.timeoutMs, req.method);
    this.sent++;
    // A connection that closed without a response: was it the server dying?
    if (['closed', 'closed-early', 'refused', 'truncated', 'garbled'].includes(res.kind) || (res.kind === 'response' && res.status === 0)) {
      await new Promise((r) => setTimeout(r, 300));
      if (srv.generation !== gen || !srv.alive()) { this.record(srvName, genName, req, { kind: 'server-died' }); return; }
      if (res.kind === 'closed-early') {
        this.closedEarly++;
      } else if (req.expect === 'response' && res.kind !== 'refused') {
        // Once more, to tell a reproducible failure from a race at the socket.
        const again = await sendRaw(srv.port, serialize(req, srv.port).chunks, req.timeoutMs, req.method);
        if (again.kind === 'closed-early') {
          this.closedEarly++;
        } else if (again.kind === res.kind || (again.kind !== 'response' && again.kind !== 'timeout')) {
          if (srv.generation !== gen || !srv.alive()) { this.record(srvName, genName, req, { kind: 'server-died' }); return; }
          const kind = res.kind === 'truncated' ? 'truncated' : 'no-response';
          this.addFinding(kind, `${res.kind} (${res.errCode || 'no error code'}) without a complete response, twice`, info, res, `${kind} ${srvName} ${req.method} ${routeOf(req.target)} ${sigOps}`);
        } else {
          this.flaky++;
        }
      } else {
        this.maybeNoResponse++;
      }
    }
    this.record(srvName, genName, req, res, !ops.length);
    // The last requests, for a crash that comes after its answer; big bodies are regenerated
    // from their index (the seed fixes them) instead of being kept.
    this.recent[srvName].push(info.bytes.length <= (1 << 20) ? info : { ...info, bytes: null });
    if (this.recent[srvName].length > 10) this.recent[srvName].shift();
    if (res.kind === 'timeout') {
      if (req.expect === 'response' && this.timeouts.length < 200) this.timeouts.push({ label, status: res.status, i: info.i });
    }
    if (res.kind === 'response' || res.kind === 'timeout' || res.kind === 'truncated') {
      // 505 to a mutated HTTP version and 501 to an unknown method are the protocol's answers.
      const allowed = (res.status === 505 && req.version && req.version !== 'HTTP/1.1') ||
                      (res.status === 501 && !['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'].includes(req.method));
      if (res.status >= 500 && allowed) this.allowed5xx = (this.allowed5xx || 0) + 1;
      if (res.status >= 500 && !allowed) {
        this.addFinding('5xx', `HTTP ${res.status}`, info, res, `${res.status} ${srvName} ${req.method} ${routeOf(req.target)} ${sigOps}`);
      }
      if (res.status === 200 && res.headers && /event-stream/.test(res.headers['content-type'] || '') && res.body) {
        const s = sseInfo(res.body);
        for (const e of s.errors) {
          const k = `${e.type || '?'}/${e.code || '-'}`;
          this.stats.streamErrors[k] = (this.stats.streamErrors[k] || 0) + 1;
          if (e.type === 'server_error' || e.type === 'unparseable_event') {
            this.addFinding('5xx', `stream error event ${JSON.stringify(e).slice(0, 300)}`, info, res, `stream ${k} ${routeOf(req.target)} ${sigOps}`);
          }
        }
        if (res.kind === 'response' && !s.done) this.stats.streamErrors['no [DONE]'] = (this.stats.streamErrors['no [DONE]'] || 0) + 1;
      }
      if (check && res.status) {
        const bad = check(res);
        if (bad) this.addFinding(genName.startsWith('cross') ? 'leak' : 'auth', bad, info, res, `${genName} ${routeOf(req.target)} ${res.status}`);
      }
      // Stored ids (responses, conversations, items) join the user's pool.
      if (req.onOk && res.status === 200 && res.body && !req.authMutated) {
        try { req.onOk(res.body.toString('utf8')); } catch (e) { /* not the JSON expected: the histogram shows the 200 */ }
      }
      // Track uploads, so later requests use and cross-check real ids.
      // (Not when the credentials were mutated: the server may rightly have taken the upload as another user's.)
      if (req.isUpload && res.status === 200 && res.body && !req.authMutated) {
        try {
          const j = JSON.parse(res.body.toString('utf8'));
          if (typeof j.id === 'string') {
            const list = srvName === 'keyed' ? this.files.keyed[user] : this.files.open._;
            list.push(j.id);
            if (list.length > 10) this.deleteQuietly(srv, user, list.shift());
          }
        } catch (e) { /* a 200 that is not JSON shows in the histogram as 200 */ }
      }
    }
  }

  async deleteQuietly(srv, user, id) {
    const req = { method: 'DELETE', target: `/v1/files/${id}`, headers: [['Host', 'PORT'], ['Connection', 'close']], body: null };
    if (user) req.headers.push(['Authorization', `Bearer ${KEYS[user]}`]);
    await sendRaw(srv.port, serialize(req, srv.port).chunks, 5000, 'DELETE');
  }

  async checkHealth() {
    for (const s of Object.values(this.servers)) {
      if (this.pause || !s.alive()) continue;
      const req = { method: 'GET', target: '/health', headers: [['Host', 'PORT'], ['Connection', 'close']], body: null };
      const res = await sendRaw(s.port, serialize(req, s.port).chunks, 10000, 'GET');
      this.health.checks++;
      this.health.lat.push(res.ms);
      this.health.maxMs = Math.max(this.health.maxMs, res.ms);
      if (!(res.kind === 'response' && res.status === 200)) {
        await new Promise((r) => setTimeout(r, 300));
        if (!s.alive()) continue;  // counted as a crash
        this.health.failures++;
        this.addFinding('health', `/health on the ${s.name} server: ${res.kind} ${res.status || ''} after ${res.ms.toFixed(0)} ms`, null, null, `health ${s.name} ${res.kind} ${res.status || ''}`);
      }
    }
  }

  async run() {
    const o = this.o;
    const t0 = Date.now(), end = t0 + o.seconds * 1000;
    let nextHealth = o.healthEvery, lastReport = t0;
    // Memory: VmRSS every 50 ms; the largest sample and what was in flight then.
    const sampler = setInterval(() => {
      if (++this.samples % 20 === 0) this.sampleDriver();  // the driver itself, every second
      for (const s of Object.values(this.servers)) {
        if (!s.alive()) continue;
        const rss = s.procStatus().rss;
        const peak = (this.rssPeak[s.name] = this.rssPeak[s.name] || { rss: 0, inflight: [] });
        if (rss > peak.rss) { peak.rss = rss; peak.inflight = [...this.inflight[s.name]].map((x) => x.info.label); }
      }
    }, 50);
    const worker = async () => {
      while (Date.now() < end && !this.dead && !this.interrupted) {
        const i = this.next++;
        try { await this.one(i); } catch (e) { console.error(`[fuzz] request ${i}: generator/client error: ${e.stack}`); this.internalErrors = (this.internalErrors || 0) + 1; }
        if (this.sent >= nextHealth) { nextHealth += o.healthEvery; await this.checkHealth(); }
        if (Date.now() - lastReport >= o.progressEvery * 1000) {
          lastReport = Date.now();
          const five = [...this.signatures.values()].filter((e) => e.kind === '5xx').reduce((a, e) => a + e.count, 0);
          const m = this.sampleDriver();
          console.error(`[fuzz] ${((Date.now() - t0) / 1000).toFixed(0)} s: ${this.sent} requests, ${five} 5xx, ${this.crashes.length} crashes, ${this.findings.length} findings saved; ` +
                        `driver heap ${mb(m.heapUsed)} MB used of ${mb(m.heapTotal)} MB, external+buffers ${mb(m.external)} MB, RSS ${mb(m.rss)} MB`);
        }
      }
    };
    await Promise.all(Array.from({ length: o.concurrency }, worker));
    clearInterval(sampler);
    await this.checkHealth();
    this.wall = (Date.now() - t0) / 1000;
  }

  async finish() {
    this.stopping = true;
    const mem = {}, stops = {};
    for (const s of Object.values(this.servers)) {
      mem[s.name] = s.alive() ? s.procStatus() : { hwm: NaN, rss: NaN };
      stops[s.name] = await s.stop();
    }
    return { mem, stops };
  }
}

function routeOf(t) {
  const p = t.split('?')[0];
  if (/^\/(v1\/)?files\/[^/]+\/content$/.test(p)) return '/v1/files/{id}/content';
  if (/^\/(v1\/)?files\/./.test(p)) return p.startsWith('/v1/') ? '/v1/files/{id}' : '/files/{id}';
  if (/^\/v1\/conversations\/[^/]+\/items\/./.test(p)) return '/v1/conversations/{id}/items/{item}';
  if (/^\/v1\/conversations\/[^/]+\/items$/.test(p)) return '/v1/conversations/{id}/items';
  if (/^\/v1\/conversations\/./.test(p)) return '/v1/conversations/{id}';
  if (/^\/v1\/responses\/[^/]+\/input_items$/.test(p)) return '/v1/responses/{id}/input_items';
  if (/^\/v1\/responses\/./.test(p)) return '/v1/responses/{id}';
  if (p.length > 40) return p.slice(0, 20) + '...';
  return p;
}

function fmtHist(h) {
  return Object.entries(h).sort((a, b) => (isNaN(a[0]) - isNaN(b[0])) || (Number(a[0]) - Number(b[0])) || a[0].localeCompare(b[0]))
    .map(([k, v]) => `${k}: ${v}`).join('  ');
}
function mb(n) { return (n / 1048576).toFixed(0); }
function pct(a, p) { if (!a.length) return NaN; const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]; }

async function replay(o) {
  // Sends saved .http files (from a findings folder) to fresh servers and prints what came back.
  const f = new Fuzzer(o);
  f.replayMode = true;
  process.on('exit', () => { for (const s of Object.values(f.servers)) if (s.alive()) s.proc.kill('SIGKILL'); });
  await f.startAll();
  let bad = 0;
  try {
    for (const file of o.replay) {
      let bytes = fs.readFileSync(file);
      const txt = file.replace(/\.http$/, '.txt');
      const which = fs.existsSync(txt) && /^server: open/m.test(fs.readFileSync(txt, 'utf8')) ? 'open' : 'keyed';
      const s = f.servers[which];
      bytes = Buffer.from(bytes.toString('latin1').replace(/127\.0\.0\.1:\d+/g, `127.0.0.1:${s.port}`), 'latin1');
      const res = await sendRaw(s.port, [{ data: bytes, delay: 0 }], o.timeoutMs, bytes.slice(0, 8).toString('latin1').split(' ')[0]);
      await new Promise((r) => setTimeout(r, 300));
      const died = !s.alive();
      if (died || res.status >= 500 || res.kind !== 'response') bad++;
      console.log(`${file}: ${which} server: ${res.kind} ${res.status || ''} in ${res.ms.toFixed(0)} ms${died ? ' -- THE SERVER DIED' : ''}`);
      if (res.body) console.log('  ' + res.body.slice(0, 400).toString('utf8').replace(/\n/g, '\n  '));
      if (died) { console.log('  server log (tail): ' + s.logTail.split('\n').slice(-8).join('\n  ')); await s.restart(); }
    }
  } finally { f.stopping = true; for (const s of Object.values(f.servers)) await s.stop(); }
  return bad ? 1 : 0;
}

async function main() {
  let o;
  try { o = parseArgs(process.argv.slice(2)); } catch (e) { console.error(`fuzz-api: ${e.message}`); process.exit(2); }
  fs.mkdirSync(o.findings, { recursive: true });
  if (o.replay.length) process.exit(await replay(o));

  const f = new Fuzzer(o);
  // The servers run in their own process group (a Ctrl-C must not stop them under the
  // fuzzer's feet); whatever way node exits, they go with it.
  process.on('exit', () => { for (const s of Object.values(f.servers)) if (s.alive()) s.proc.kill('SIGKILL'); });
  let interrupted = false;
  const onSig = () => { if (interrupted) process.exit(130); interrupted = true; f.interrupted = true; console.error('[fuzz] interrupted: finishing the requests in flight'); };
  process.on('SIGINT', onSig); process.on('SIGTERM', onSig);

  console.error(`[fuzz] starting the servers (keyed: users alice and bob; open: no keys) on ${o.model}`);
  await f.startAll();
  console.error(`[fuzz] seed ${o.seed}, ${o.seconds} s, concurrency ${o.concurrency}, client timeout ${o.timeoutMs} ms; keyed server :${f.servers.keyed.port} (pid ${f.servers.keyed.proc.pid}), open server :${f.servers.open.port} (pid ${f.servers.open.proc.pid}); findings in ${o.findings}`);
  await f.run();
  const { mem, stops } = await f.finish();

  const five = [...f.signatures.values()].filter((e) => e.kind === '5xx').reduce((a, e) => a + e.count, 0);
  const failing = [...f.signatures.values()].filter((e) => e.kind !== 'info');
  const L = [];
  L.push('');
  L.push(`fuzz-api summary (seed ${o.seed}${interrupted ? ', interrupted' : ''})`);
  L.push(`requests         ${f.sent} in ${f.wall.toFixed(1)} s = ${(f.sent / f.wall).toFixed(1)} requests/s (concurrency ${o.concurrency})`);
  L.push(`statuses         ${fmtHist(f.stats.status)}`);
  L.push('by route:');
  for (const [k, v] of Object.entries(f.stats.route).sort((a, b) => a[0].localeCompare(b[0]))) L.push(`  ${k.padEnd(40)} ${fmtHist(v)}`);
  if (o.verbose) { L.push('by generator:'); for (const [k, v] of Object.entries(f.stats.gens).sort()) L.push(`  ${k.padEnd(28)} ${fmtHist(v)}`); }
  {
    const v = {}; for (const h of Object.values(f.stats.valid)) for (const [k, n] of Object.entries(h)) v[k] = (v[k] || 0) + n;
    L.push(`unmutated        ${fmtHist(v)}  (corpus requests sent as generated; cross-user and no-key probes expect 404/401)`);
    if (o.verbose) for (const [k, h] of Object.entries(f.stats.valid).sort()) L.push(`  ${k.padEnd(28)} ${fmtHist(h)}`);
  }
  if (Object.keys(f.stats.streamErrors).length) L.push(`stream events    ${fmtHist(f.stats.streamErrors)}`);
  L.push(`5xx              ${five}${f.allowed5xx ? ` (not counted: ${f.allowed5xx} protocol answers, 505 to a mutated HTTP version or 501 to an unknown method)` : ''}`);
  L.push(`crashes          ${f.crashes.length}${f.crashes.length ? ' (' + f.crashes.map((c) => `${c.server}: code ${c.code} signal ${c.signal}`).join('; ') + ')' : ''}`);
  L.push(`no response      ${[...f.signatures.values()].filter((e) => e.kind === 'no-response' || e.kind === 'truncated').reduce((a, e) => a + e.count, 0)} with valid framing (twice each); ${f.maybeNoResponse} with framing the server may refuse to parse, ${f.closedEarly} closed while the body was still being sent (an early answer lost to the reset), ${f.flaky} once only (none of these fail the run)`);
  L.push(`timeouts         ${f.timeouts.length} of valid-framing requests past ${o.timeoutMs} ms (not failures)${f.timeouts.length ? ', e.g. ' + f.timeouts.slice(0, 3).map((t) => `#${t.i} ${t.label.slice(0, 100)}`).join(' ; ') : ''}`);
  L.push(`health           ${f.health.checks} checks, p50 ${pct(f.health.lat, 50).toFixed(1)} ms, max ${f.health.maxMs.toFixed(1)} ms, ${f.health.failures} failures`);
  for (const [n, m] of Object.entries(mem)) {
    const st = stops[n];
    L.push(`server ${n.padEnd(9)} VmHWM ${(m.hwm / 1024).toFixed(0)} MB${f.servers[n].generation > 1 ? ` (since its last restart, ${f.servers[n].generation - 1} restart(s))` : ''}, VmRSS at the end ${(m.rss / 1024).toFixed(0)} MB; SIGTERM: ${st ? `exit ${st.code}${st.signal ? ' ' + st.signal : ''} after ${st.s.toFixed(1)} s` : 'not running'}`);
  }
  for (const [n, p] of Object.entries(f.rssPeak)) {
    L.push(`largest VmRSS    ${n}: ${(p.rss / 1024).toFixed(0)} MB (sampled every 50 ms), with in flight: ${p.inflight.length ? p.inflight.map((x) => x.slice(0, 160)).join(' ; ') : '(nothing)'}`);
  }
  {
    const m = f.sampleDriver();
    L.push(`driver (node)    heap used at the end ${mb(m.heapUsed)} MB, peak ${mb(f.driver.heapUsed)} MB (sampled every second); RSS at the end ${mb(m.rss)} MB, peak ${mb(f.driver.rss)} MB; external+buffers peak ${mb(f.driver.external)} MB` +
           `${f.undone ? `; ${f.undone} mutation(s) undone that would have made a body over ${MAX_TREE_BYTES >> 20} MB` : ''}`);
  }
  if (f.internalErrors) L.push(`fuzzer errors    ${f.internalErrors} (bugs in the fuzzer itself; see stderr)`);
  L.push(`findings         ${failing.reduce((a, e) => a + e.count, 0)} in ${failing.length} distinct signature(s); ${f.findings.length} example(s) saved in ${o.findings}`);
  for (const e of [...f.signatures.values()].sort((a, b) => b.count - a.count)) {
    L.push(`  [${e.kind}] x${e.count}  ${e.sig}`);
    for (const x of e.examples.slice(0, 2)) {
      L.push(`      ${x.what}${x.file ? '  -> ' + x.file : ''}`);
      if (x.label) L.push(`      request: ${x.label.slice(0, 300)}`);
      if (x.excerpt) L.push('      ' + x.excerpt.split('\n').slice(0, 14).join('\n      '));
      if (x.response) L.push(`      response: ${x.response.replace(/\s+/g, ' ').slice(0, 300)}`);
    }
  }
  L.push(`result           ${failing.length ? 'FAIL' : 'ok'}: ${five} 5xx, ${f.crashes.length} crashes, ${f.findings.length ? f.findings.length + ' findings saved' : 'no findings'}`);
  const text = L.join('\n');
  console.log(text);
  fs.writeFileSync(path.join(o.findings, 'summary.txt'), text + '\n');
  fs.writeFileSync(path.join(o.findings, 'summary.json'), JSON.stringify({ seed: o.seed, requests: f.sent, wall_s: f.wall, statuses: f.stats.status, routes: f.stats.route,
    generators: f.stats.gens, driver_peak_bytes: f.driver, mutations_undone: f.undone || 0, five_xx: five, crashes: f.crashes.length, findings: [...f.signatures.values()], health: { ...f.health, lat: undefined }, memory_kb: mem }, null, 1));
  process.exit(failing.length || f.internalErrors ? 1 : interrupted ? 130 : 0);
}

if (require.main === module) main().catch((e) => { console.error(`fuzz-api: ${e.stack || e.message}`); process.exit(1); });
else module.exports = { Fuzzer, serialize, ser, makeRng, mutateTree, collectPaths };
