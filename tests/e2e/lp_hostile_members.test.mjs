// Hostile traffic, presence churn turned into database load (issue 12,
// point 3, the long-poll side): every first poll (a room without ":N")
// asks for the room's members. 200 of them with new guest names, as an
// attacker churning names sends, cost 200 chat_members queries; chat-fcgi
// now answers them from a per-room cache shared by its threads
// (fcgi/lp_members.c, one query per room per second), and a victim's
// first poll still lists the members, itself included. The cache keeps a
// busy room when an attacker names rooms that would share its slot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pgClient, uniqueRoom } from './lib.mjs';
import { sanitizerReports, startWorker, waitUntil } from './lp_lib.mjs';

const ORIGINAL = `CREATE OR REPLACE FUNCTION chat_members(p_room text, OUT count bigint, OUT members json)
LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(DISTINCT member) FROM presence WHERE room = p_room),
           coalesce((SELECT json_agg(m) FROM (SELECT DISTINCT member AS m FROM presence
                     WHERE room = p_room ORDER BY 1 LIMIT 1000) s), '[]'::json);
$$`;

test('200 first polls with new names cost a few members queries, not 200; a victim still sees the members', async () => {
  const db = await pgClient();
  await db.connect();
  const seq = `test_members_calls_${process.pid}`;
  // chat_members counting its calls (the same answer), for the test's length
  await db.query(`CREATE SEQUENCE ${seq}`);
  await db.query(`CREATE OR REPLACE FUNCTION chat_members(p_room text, OUT count bigint, OUT members json)
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM nextval('${seq}');
        SELECT (SELECT count(DISTINCT member) FROM presence WHERE presence.room = p_room),
               coalesce((SELECT json_agg(m) FROM (SELECT DISTINCT member AS m FROM presence
                         WHERE presence.room = p_room ORDER BY 1 LIMIT 1000) s), '[]'::json)
          INTO count, members;
    END $$`);
  const calls = async () => Number((await db.query(`SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS n FROM ${seq}`)).rows[0].n);
  // 200 new names from one address: past --max-guests-per-addr (100 a
  // minute, lp_hostile_guests), which is off here to load the cache
  const w = await startWorker(['--max-guests-per-addr', '0']);
  try {
    const room = uniqueRoom('mem');
    // someone is online in the room already
    const first = await w.request(`poll?rooms=${room}&name=resident&timeout=0`, { params: { REMOTE_ADDR: '198.51.100.20' } });
    assert.equal(first.status, 200);
    await waitUntil(async () => (await db.query('SELECT 1 FROM presence WHERE room = $1', [room])).rowCount > 0, 15000, 'resident online');
    // and the worker has heard it (its cached list of the room is dropped then)
    await waitUntil(async () => (await w.request(`poll?rooms=${room}&name=probe&timeout=0`, { params: { REMOTE_ADDR: '198.51.100.21' } }))
      .json.members[room].members.includes('~resident'), 15000, 'the worker sees the resident');
    const before = await calls();
    const t0 = Date.now();
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) =>
      w.request(`poll?rooms=${room}&name=churn${i}&timeout=0`, { params: { REMOTE_ADDR: '192.0.2.60' } })));
    const secs = (Date.now() - t0) / 1000;
    for (const a of answers) assert.equal(a.status, 200, a.text);
    const used = (await calls()) - before;
    console.log(`200 first polls in ${secs.toFixed(2)} s: ${used} chat_members queries`);
    assert.ok(used <= Math.ceil(secs) + 1, `${used} queries for 200 polls in ${secs} s`);
    // every answer lists the resident and the poller itself
    for (const [i, a] of answers.entries()) {
      assert.ok(a.json.members[room].members.includes('~resident'), JSON.stringify(a.json.members));
      assert.ok(a.json.members[room].members.includes(`~churn${i}`));
    }
    const victim = await w.request(`poll?rooms=${room}&name=victim&timeout=0`, { params: { REMOTE_ADDR: '203.0.113.5' } });
    assert.deepEqual(victim.json.members[room].members.filter((m) => m === '~resident' || m === '~victim'), ['~resident', '~victim']);
  } finally {
    await db.query(ORIGINAL);
    await db.query(`DROP SEQUENCE ${seq}`);
    await db.end();
    const e = await w.stop();
    assert.equal(e.code, 0, w.log());
    assert.deepEqual(sanitizerReports(w.log()), []);
  }
});

// 64-bit FNV-1a of s: the old, unseeded slot hash of lp_members.c
function fnv1a(s) {
  let h = 14695981039346656037n;
  for (const b of Buffer.from(s)) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 1099511628211n);
  return h;
}

test('rooms named to share a busy room\'s cache slot do not evict it: its members are read once a second, not once per poll', async () => {
  const db = await pgClient();
  await db.connect();
  const calls = `test_members_rooms_${process.pid}`;
  await db.query(`CREATE TABLE ${calls} (room text)`);
  await db.query(`CREATE OR REPLACE FUNCTION chat_members(p_room text, OUT count bigint, OUT members json)
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO ${calls} VALUES (p_room);
        SELECT (SELECT count(DISTINCT member) FROM presence WHERE presence.room = p_room),
               coalesce((SELECT json_agg(m) FROM (SELECT DISTINCT member AS m FROM presence
                         WHERE presence.room = p_room ORDER BY 1 LIMIT 1000) s), '[]'::json)
          INTO count, members;
    END $$`);
  const w = await startWorker(['--send-rate', '0', '--req-rate', '0']);
  try {
    const busy = uniqueRoom('busy');
    // 16 room names in the busy room's slot of a 4096-slot table by FNV-1a
    const target = fnv1a(busy) % 4096n;
    const colliders = [];
    for (let i = 0; colliders.length < 16; i++) {
      const name = `col-${process.pid}-${i}`;
      if (fnv1a(name) % 4096n === target) colliders.push(name);
    }
    const t0 = Date.now();
    const rounds = 40;
    for (let i = 0; i < rounds; i++) {
      const v = await w.request(`poll?rooms=${busy}&name=reader${i}&timeout=0`, { params: { REMOTE_ADDR: '198.51.100.30' } });
      assert.equal(v.status, 200, v.text);
      assert.ok(v.json.members[busy].members.includes(`~reader${i}`));
      const a = await w.request(`poll?rooms=${colliders[i % colliders.length]}&name=att${i}&timeout=0`, { params: { REMOTE_ADDR: '192.0.2.61' } });
      assert.equal(a.status, 200, a.text);
    }
    const secs = (Date.now() - t0) / 1000;
    const n = Number((await db.query(`SELECT count(*) AS n FROM ${calls} WHERE room = $1`, [busy])).rows[0].n);
    console.log(`${rounds} polls of a busy room between polls of 16 colliding rooms in ${secs.toFixed(2)} s: ${n} chat_members queries for the busy room`);
    assert.ok(n <= Math.ceil(secs) + 1, `${n} queries for ${rounds} polls in ${secs} s`);
  } finally {
    await db.query(ORIGINAL);
    await db.query(`DROP TABLE ${calls}`);
    await db.end();
    const e = await w.stop();
    assert.equal(e.code, 0, w.log());
    assert.deepEqual(sanitizerReports(w.log()), []);
  }
});
