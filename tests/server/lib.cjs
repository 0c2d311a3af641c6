// Helpers for the server tests: start `muse serve` on a free port, check things, report.
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

let failures = 0, passes = 0;

function check(name, cond, detail) {
  if (cond) { passes++; console.log(`ok   ${name}`); }
  else { failures++; console.log(`FAIL ${name}${detail !== undefined ? ': ' + (typeof detail === 'string' ? detail : JSON.stringify(detail)).slice(0, 600) : ''}`); }
}

function summary() {
  console.log(`${passes} passed, ${failures} failed`);
  return failures === 0 ? 0 : 1;
}

// Starts `muse serve --port 0 ARGS...`; resolves with {url, proc, log()} once it listens.
function startServer(muse, args, env) {
  return new Promise((resolve, reject) => {
    // Each server keeps its users and files in a data directory of its own, removed when it exits.
    let dataDir = null;
    if (!args.includes('--data-dir')) {
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'muse-serve-data-'));
      args = [...args, '--data-dir', dataDir];
    }
    const proc = spawn(muse, ['serve', '--port', '0', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    if (dataDir) proc.on('exit', () => fs.rmSync(dataDir, { recursive: true, force: true }));
    let out = '', err = '';
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error('muse serve did not start in 120 s:\n' + out + err)); }, 120000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[^\s]+)/);
      if (m) { clearTimeout(timer); resolve({ url: m[1], proc, log: () => out + err }); }
    });
    proc.stderr.on('data', (d) => { err += d; });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`muse serve exited with ${code}:\n${out}${err}`)); });
  });
}

function waitExit(proc, ms) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null) return resolve(proc.exitCode);
    const t = setTimeout(() => resolve(null), ms);
    proc.on('exit', (code) => { clearTimeout(t); resolve(code); });
  });
}

async function metric(url, key, name) {
  const r = await fetch(`${url}/metrics`, { headers: key ? { Authorization: `Bearer ${key}` } : {} });
  const text = await r.text();
  const m = text.match(new RegExp(`^${name} ([0-9.eE+-]+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls cond() (async) until it is true or `ms` pass; resolves with whether it became true.
async function waitFor(cond, ms) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) {
    if (await cond()) return true;
  }
  return false;
}

module.exports = { check, summary, startServer, waitExit, metric, waitFor };
