// The daemons refuse a database whose schema they do not know, saying why.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { BIN, DATABASE_URL, VAR, pgClient } from './lib.mjs';

const scratch = `chat_schema_${process.pid}`;
let admin;


before(async () => {
  admin = await pgClient();
  await admin.connect();
  await admin.query(`CREATE DATABASE ${scratch}`);
});
after(async () => {
  await admin.query(`DROP DATABASE IF EXISTS ${scratch}`);
  await admin.end();
});

function start(bin, extra) {
  const conninfo = DATABASE_URL.replace(/dbname=\S+/, `dbname=${scratch}`);
  return spawnSync(`${BIN}/${bin}`, ['--db', conninfo, ...extra], { encoding: 'utf8', timeout: 20000 });
}
const daemons = [
  ['chat-ws', ['--listen', `unix:${VAR}/run/schema-${process.pid}.sock`, '--workers', '1']],
  ['chat-fcgi', ['--listen', `${VAR}/run/schema-${process.pid}.fsock`]],
];

test('an unmigrated database: both daemons refuse to start and say "make migrate"', () => {
  for (const [bin, extra] of daemons) {
    const r = start(bin, extra);
    assert.notEqual(r.status, 0, `${bin} must not start`);
    assert.match(r.stderr, /not migrated.*make migrate/, bin);
  }
});

test('a newer schema than the build knows: both refuse, naming the versions', async () => {
  const db = await pgClient(scratch);
  await db.connect();
  await db.query('CREATE TABLE schema_migrations (version int PRIMARY KEY, name text NOT NULL)');
  await db.query("INSERT INTO schema_migrations VALUES (1, 'init'), (2, 'presence'), (99, 'future')");
  await db.end();
  for (const [bin, extra] of daemons) {
    const r = start(bin, extra);
    assert.notEqual(r.status, 0, `${bin} must not start`);
    assert.match(r.stderr, /version 99 is newer than this build/, bin);
  }
});
