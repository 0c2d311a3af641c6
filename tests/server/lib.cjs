// Helpers for the server tests: start `muse serve` on a free port, check things, report.
'use strict';
const { spawn, execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const zlib = require('zlib');

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

// One PNG chunk: length, type, data and CRC.
function pngChunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(body) >>> 0);
  return Buffer.concat([len, body, crc]);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls cond() (async) until it is true or `ms` pass; resolves with whether it became true.
async function waitFor(cond, ms) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) {
    if (await cond()) return true;
  }
  return false;
}

// A throwaway PostgreSQL (as tests/pg-temp.h does for the C++ tests): initdb in a temporary
// directory, pg_ctl start on a Unix socket there (no TCP), stop() at the end. initdb refuses
// root: then the cluster runs as the `postgres` system user (runuser). Resolves with
// {ok: false, reason} when PostgreSQL is not installed. pg_ctl -w waits (bounded by -t) for
// the server to answer: no fixed sleeps.
function startPostgres() {
  const which = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' });
  let bin = process.env.MUSE_PG_BIN || (which.status === 0 ? path.dirname(fs.realpathSync(which.stdout.trim())) : '');
  if (!bin && fs.existsSync('/usr/lib/postgresql')) {
    for (const v of fs.readdirSync('/usr/lib/postgresql')) {
      if (fs.existsSync(`/usr/lib/postgresql/${v}/bin/initdb`)) bin = `/usr/lib/postgresql/${v}/bin`;
    }
  }
  if (!bin) return { ok: false, reason: 'PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql; Debian: postgresql)' };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'muse-pg-'));
  let as = [];
  if (process.getuid() === 0) {
    const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    if (id.status !== 0) return { ok: false, reason: 'running as root and there is no postgres user to run PostgreSQL as' };
    const uid = Number(id.stdout.trim());
    fs.chownSync(dir, uid, Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim()));
    as = ['runuser', '-u', 'postgres', '--'];
  }
  const run = (prog, args) => {
    const cmd = [...as, `${bin}/${prog}`, ...args];
    return spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', timeout: 120000 });
  };
  const pg = {
    ok: true, dir, bin,
    url: (db, password) => `postgresql://muse${password ? ':' + password : ''}@/${db}?host=${encodeURIComponent(dir)}`,
    start: () => run('pg_ctl', ['-D', `${dir}/data`, '-l', `${dir}/log`, '-w', '-t', '60', '-o',
      `-k ${dir} -c listen_addresses='' -c fsync=off -c max_connections=200`, 'start']).status === 0,
    stop: () => run('pg_ctl', ['-D', `${dir}/data`, '-m', 'fast', '-w', '-t', '60', 'stop']).status === 0,
    // One statement through psql; its output (unaligned, tuples only).
    sql: (db, statement) => execFileSync('psql', ['-h', dir, '-U', 'muse', '-d', db, '-tAXq', '-v', 'ON_ERROR_STOP=1', '-c', statement],
      { encoding: 'utf8' }).trim(),
    destroy: () => {
      pg.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  const init = run('initdb', ['-D', `${dir}/data`, '--auth=trust', '-U', 'muse', '-E', 'UTF8', '--locale=C']);
  if (init.status !== 0) return { ok: false, reason: `initdb failed: ${init.stderr}` };
  if (!pg.start()) return { ok: false, reason: `pg_ctl start failed: ${fs.readFileSync(`${dir}/log`, 'utf8').slice(-2000)}` };
  // Stopped however the test ends.
  process.on('exit', () => { try { pg.destroy(); } catch (e) { /* already gone */ } });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(1));
  return pg;
}

module.exports = { check, summary, startServer, waitExit, metric, waitFor, startPostgres, pngChunk };
