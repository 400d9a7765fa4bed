// Hostile traffic, the database side (issue 12, point 9): anonymous polls
// naming new rooms with new guest names must not grow the database: no
// rooms row and no users row for any of them, although the pollers are
// online (presence needs no room row, sql/004_anonymous.sql). A room is
// made by its first message; a signed-in user is a users row. chat_prune
// removes what older versions made: guest rows not seen for p_guests,
// rooms without a message older than p_empty_rooms; nothing else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pgClient, portBase, uniqueRoom } from './lib.mjs';
import { pollOnce, send, waitUntil } from './lp_lib.mjs';

const tag = `an${process.pid % 1000}x${Date.now().toString(36)}`;
const AUTH = portBase(1);

async function counts(db, rooms, guests) {
  const r = await db.query('SELECT count(*)::int AS n FROM rooms WHERE name = ANY ($1)', [rooms]);
  const u = await db.query('SELECT count(*)::int AS n FROM users WHERE name = ANY ($1)', [guests]);
  const p = await db.query('SELECT count(DISTINCT room)::int AS n FROM presence WHERE room = ANY ($1)', [rooms]);
  return { rooms: r.rows[0].n, users: u.rows[0].n, presence: p.rows[0].n };
}

test('200 anonymous polls with new room and guest names: online, but no rooms or users rows', async () => {
  const db = await pgClient();
  await db.connect();
  try {
    const rooms = Array.from({ length: 200 }, (_, i) => `${tag}-r${i}`);
    const guests = rooms.map((_, i) => `~${tag}g${i}`);
    const before = await counts(db, rooms, guests);
    const answers = await Promise.all(rooms.map((room, i) =>
      pollOnce(`rooms=${room}&name=${guests[i].slice(1)}&timeout=0`)));
    for (const a of answers) assert.equal(a.status, 200, a.text);
    // the pollers are online (presence flushes once a second)...
    await waitUntil(async () => (await counts(db, rooms, guests)).presence === rooms.length, 20000,
      'every poller online');
    // ... and the users seen were flushed with them
    const after = await counts(db, rooms, guests);
    console.log(`200 polls, new rooms and guest names: rooms rows ${before.rooms} -> ${after.rooms}, users rows ${before.users} -> ${after.users}, rooms with presence ${after.presence}`);
    assert.equal(after.rooms, 0, 'no rooms row made by a poll');
    assert.equal(after.users, 0, 'no users row for a guest name');
    // a victim: a guest who posts makes the room, and it is served as ever
    const ack = await send(rooms[0], 'first', { name: `${tag}poster`, cid: 'c1' });
    assert.equal(ack.status, 200, ack.text);
    assert.equal(ack.json.seq, 1);
    assert.equal((await counts(db, rooms, guests)).rooms, 1);
  } finally {
    await db.end();
  }
});

test('a signed-in user polling is a users row', async () => {
  const db = await pgClient();
  await db.connect();
  try {
    const room = uniqueRoom('an');
    await db.query("UPDATE users SET last_seen = now() - interval '1 hour' WHERE name = 'bob'");
    const r = await fetch(`${AUTH}poll?rooms=${room}&timeout=0`, {
      headers: { 'x-chat-request': '1', authorization: 'Basic ' + Buffer.from('bob:secret').toString('base64') },
    });
    assert.equal(r.status, 200);
    await waitUntil(async () => (await db.query(
      "SELECT 1 FROM users WHERE name = 'bob' AND authenticated AND last_seen > now() - interval '1 minute'")).rowCount === 1,
    20000, 'bob seen');
  } finally {
    await db.end();
  }
});

test('chat_prune removes old guest rows and rooms that never had a message; nothing else', async () => {
  const db = await pgClient();
  await db.connect();
  try {
    const oldGuest = `~${tag}old`;
    const newGuest = `~${tag}new`;
    const user = `${tag}user`;
    const [emptyOld, emptyNew, kept] = [`${tag}-eo`, `${tag}-en`, `${tag}-kept`];
    await db.query(`INSERT INTO users (name, authenticated, last_seen) VALUES
      ($1, false, now() - interval '40 days'), ($2, false, now() - interval '2 hours'),
      ($3, true, now() - interval '400 days')`,
    [oldGuest, newGuest, user]);
    await db.query(`INSERT INTO rooms (name, created) VALUES ($1, now() - interval '2 days'), ($2, now() - interval '2 hours')`, [emptyOld, emptyNew]);
    // a room that had a message, long ago, and lost it to retention
    assert.equal((await send(kept, 'old', { name: `${tag}k`, cid: 'k1' })).status, 200);
    await db.query("UPDATE rooms SET created = now() - interval '2 days' WHERE name = $1", [kept]);
    await db.query('DELETE FROM messages WHERE room = $1', [kept]);
    await db.query('CALL chat_prune(0, 3, 0)'); // the defaults: guests 30 days, empty rooms 1 day
    const left = await db.query('SELECT name FROM rooms WHERE name = ANY ($1) ORDER BY 1', [[emptyOld, emptyNew, kept]]);
    assert.deepEqual(left.rows.map((x) => x.name), [emptyNew, kept].sort());
    const users = await db.query('SELECT name FROM users WHERE name = ANY ($1) ORDER BY 1', [[oldGuest, newGuest, user]]);
    assert.deepEqual(users.rows.map((x) => x.name), [newGuest, user].sort());
    // the admin's own ages; NULL keeps them
    await db.query("CALL chat_prune(0, 100, 0, NULL, interval '1 hour')");
    assert.equal((await db.query('SELECT 1 FROM rooms WHERE name = $1', [emptyNew])).rowCount, 0);
    assert.equal((await db.query('SELECT 1 FROM users WHERE name = $1', [newGuest])).rowCount, 1);
    await db.query("CALL chat_prune(0, 100, 0, interval '1 hour', NULL)");
    assert.equal((await db.query('SELECT 1 FROM users WHERE name = $1', [newGuest])).rowCount, 0);
    assert.equal((await db.query('SELECT 1 FROM users WHERE name = $1', [user])).rowCount, 1);
    // the kept room goes on from its seq
    const ack = await send(kept, 'again', { name: `${tag}k`, cid: 'k2' });
    assert.equal(ack.json.seq, 2);
    await db.query('DELETE FROM users WHERE name = $1', [user]);
  } finally {
    await db.end();
  }
});
