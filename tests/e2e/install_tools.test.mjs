// What an admin installing on a server relies on: chat-migrate, the
// sockets' modes, the database each daemon takes, make migrate's refusal
// to invent a database. Each against the stack's PostgreSQL, on scratch
// databases of its own.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, copyFileSync, readdirSync, writeFileSync, statSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { BIN, DATABASE_URL, ROOT, VAR, pgClient, withTimeout } from './lib.mjs';

const MIGRATE = `${ROOT}/scripts/chat-migrate`;
// the migrations of this tree: names ("001_init") and versions, in order
const NAMES = readdirSync(`${ROOT}/sql`).filter((f) => /^\d{3}_\w+\.sql$/.test(f)).sort().map((f) => f.slice(0, -4));
const VERSIONS = NAMES.map((n) => Number(n.slice(0, 3)));
const LAST = VERSIONS[VERSIONS.length - 1];
const pad = (v) => String(v).padStart(3, '0');
const scratch = (n) => `chat_install_${process.pid}_${n}`;
const conninfo = (db) => DATABASE_URL.replace(/dbname=\S+/, `dbname=${db}`);
const migrate = (args, env = {}) =>
  spawnSync(MIGRATE, args, { encoding: 'utf8', timeout: 60000, env: { ...process.env, ...env } });
const created = [];
let admin;

before(async () => {
  admin = await pgClient();
  await admin.connect();
});
after(async () => {
  for (const db of created) await admin.query(`DROP DATABASE IF EXISTS ${db}`);
  await admin.end();
});
async function freshDb(n) {
  const db = scratch(n);
  await admin.query(`CREATE DATABASE ${db}`);
  created.push(db);
  return db;
}
async function versions(db) {
  const c = await pgClient(db);
  await c.connect();
  try {
    return (await c.query('SELECT version FROM schema_migrations ORDER BY version')).rows.map((r) => r.version);
  } finally {
    await c.end();
  }
}

test('chat-migrate refuses to run without an explicit database, and touches none', () => {
  for (const args of [[], ['--db'], ['--db', ''], ['--dry-run']]) {
    const r = migrate(args, { DATABASE_URL: conninfo('postgres'), PGDATABASE: 'postgres' });
    assert.equal(r.status, 2, `${JSON.stringify(args)}: ${r.stderr}`);
    assert.match(r.stderr, /give --db CONNINFO explicitly.*nothing was done|usage/s);
  }
});

test('chat-migrate applies every migration once, in order, says so, then is up to date', async () => {
  const db = await freshDb('a');
  const dry = migrate(['--db', conninfo(db), '--dry-run']);
  assert.equal(dry.status, 0, dry.stderr);
  assert.match(dry.stdout, new RegExp(NAMES.map((n) => `pending ${n}\n`).join('.*'), 's'));
  assert.deepEqual(await versions(db), [], 'a dry run applies nothing');
  const r = migrate(['--db', conninfo(db)]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`${NAMES.map((n) => `applied ${n}\n`).join('.*')}.*now at version ${LAST}`, 's'));
  assert.deepEqual(await versions(db), VERSIONS);
  const again = migrate(['--db', conninfo(db)]);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, new RegExp(`up to date at version ${LAST}`));
  assert.doesNotMatch(again.stdout, /applied/);
  // and a daemon accepts the result
  const log = await runUntil('chat-ws', ['--db', conninfo(db), '--listen', `unix:${VAR}/run/inst-${process.pid}.sock`,
    '--workers', '1'], {}, /listening on/);
  assert.match(log, new RegExp(`database ${db} as chat`));
});

test('two chat-migrate at once: each migration applied exactly once', async () => {
  const db = await freshDb('b');
  const one = () => new Promise((resolve) => {
    const p = spawn(MIGRATE, ['--db', conninfo(db)]);
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('exit', (code) => resolve({ code, out }));
  });
  const [a, b] = await withTimeout(Promise.all([one(), one()]), 60000, 'two chat-migrate');
  assert.equal(a.code, 0, a.out);
  assert.equal(b.code, 0, b.out);
  const applied = `${a.out}${b.out}`.match(/applied \d{3}_\w+/g).sort();
  assert.deepEqual(applied, NAMES.map((n) => `applied ${n}`));
  assert.deepEqual(await versions(db), VERSIONS);
});

test('a failing migration keeps nothing of itself, names itself, and stops', async () => {
  const db = await freshDb('c');
  const dir = mkdtempSync(`${tmpdir()}/chat-sql-`);
  try {
    for (const f of readdirSync(`${ROOT}/sql`)) copyFileSync(`${ROOT}/sql/${f}`, `${dir}/${f}`);
    writeFileSync(`${dir}/${pad(LAST + 1)}_broken.sql`, 'CREATE TABLE half_done (x int);\nSELECT no_such_function();\n');
    writeFileSync(`${dir}/${pad(LAST + 2)}_after.sql`, 'CREATE TABLE after_broken (x int);\n');
    const r = migrate(['--db', conninfo(db), '--sql', dir]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`${pad(LAST + 1)}_broken failed; nothing of it was kept \\(the database is at version ${LAST}\\)`));
    assert.deepEqual(await versions(db), VERSIONS);
    const c = await pgClient(db);
    await c.connect();
    const t = await c.query("SELECT to_regclass('half_done') AS a, to_regclass('after_broken') AS b");
    await c.end();
    assert.deepEqual(t.rows[0], { a: null, b: null }, 'neither the broken one nor the next ran');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a database newer than the migrations: chat-migrate refuses', async () => {
  const db = await freshDb('d');
  assert.equal(migrate(['--db', conninfo(db)]).status, 0);
  const c = await pgClient(db);
  await c.connect();
  await c.query("INSERT INTO schema_migrations (version, name) VALUES (99, 'future')");
  await c.end();
  const r = migrate(['--db', conninfo(db)]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`schema version 99, newer than these migrations \\(${LAST}`));
});

test('a wrong conninfo: chat-migrate says it cannot connect and did nothing', () => {
  const r = migrate(['--db', `host=${VAR}/no-such-dir dbname=chat`]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /cannot connect to the database given by --db.*nothing was done/s);
});

test('make migrate refuses to invent a cluster when there is none and no DATABASE_URL', () => {
  const dir = mkdtempSync(`${tmpdir()}/chat-var-`);
  try {
    const { DATABASE_URL: _a, PGHOST: _b, PGDATABASE: _c, PGPORT: _d, ...env } = process.env;
    const r = spawnSync(`${ROOT}/scripts/stack.sh`, ['migrate'], { encoding: 'utf8', env: { ...env, VAR: dir } });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /no private cluster in .* to migrate.*chat-migrate --db CONNINFO/s);
    assert.equal(existsSync(`${dir}/pg`), false, 'no cluster was created');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('both daemons refuse a socket mode others could write', () => {
  for (const [bin, listen] of [['chat-ws', `unix:${VAR}/run/m-${process.pid}.sock`], ['chat-fcgi', `${VAR}/run/m-${process.pid}.fsock`]]) {
    for (const mode of ['0666', '0662', '777']) {
      const r = spawnSync(`${BIN}/${bin}`, ['--db', DATABASE_URL, '--listen', listen, '--socket-mode', mode],
        { encoding: 'utf8', timeout: 20000 });
      assert.equal(r.status, 2, `${bin} --socket-mode ${mode}: ${r.stderr}`);
      assert.match(r.stderr, /socket-mode/);
    }
  }
});

// Starts a daemon until its log matches ready, runs during(), stops it;
// returns the log.
async function runUntil(bin, args, env, ready, during = async () => {}) {
  const p = spawn(`${BIN}/${bin}`, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const exited = new Promise((res) => p.once('exit', (code) => res(code)));
  try {
    await withTimeout(new Promise((resolve, reject) => {
      p.stderr.on('data', (d) => { log += d; if (ready.test(log)) resolve(); });
      exited.then((code) => reject(new Error(`${bin} exited ${code}: ${log}`)));
    }), 20000, `${bin} start`);
    await during();
    return log;
  } finally {
    p.kill('SIGTERM');
    await withTimeout(exited, 10000, `${bin} exit`);
  }
}

test('both daemons: sockets 0660 by default; the database from --db, else DATABASE_URL, and they say which', async () => {
  mkdirSync(`${VAR}/run`, { recursive: true });
  const wsSock = `${VAR}/run/mode-${process.pid}.sock`;
  const fcgiSock = `${VAR}/run/mode-${process.pid}.fsock`;
  const mode = (path) => statSync(path).mode & 0o777;
  // chat-ws without --db: DATABASE_URL
  let wsMode, fcgiMode;
  const wsLog = await runUntil('chat-ws', ['--listen', `unix:${wsSock}`, '--workers', '1'], { DATABASE_URL },
    /listening on/, async () => { wsMode = mode(wsSock); });
  assert.match(wsLog, /database chat as chat on .* \(from DATABASE_URL\)/);
  // chat-fcgi with --db, which wins over a wrong DATABASE_URL
  const fcgiLog = await runUntil('chat-fcgi', ['--db', DATABASE_URL, '--listen', fcgiSock],
    { DATABASE_URL: 'host=/nonexistent dbname=nothing' }, /listening on/, async () => { fcgiMode = mode(fcgiSock); });
  assert.match(fcgiLog, /database chat as chat on .* \(from --db\)/);
  assert.equal(wsMode, 0o660, 'chat-ws socket mode');
  assert.equal(fcgiMode, 0o660, 'chat-fcgi socket mode');
  // a wrong DATABASE_URL: chat-ws refuses, naming where the conninfo came from
  const bad = spawnSync(`${BIN}/chat-ws`, ['--listen', `unix:${wsSock}`, '--workers', '1'],
    { encoding: 'utf8', timeout: 20000, env: { ...process.env, DATABASE_URL: `host=${VAR}/no-such-dir dbname=chat` } });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /cannot connect to PostgreSQL.*\(database from DATABASE_URL\)/s);
});
