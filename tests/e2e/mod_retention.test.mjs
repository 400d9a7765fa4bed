// Retention seen from the clients, through nginx: after chat_prune removed
// the start of a room, a client that resumes from below the horizon is
// told so ("horizon") on both doors and in history, gets what is above
// it, and never takes the jump for a loss.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, Client, pgClient, uniqueRoom } from './lib.mjs';
import { pollOnce, request } from './lp_lib.mjs';

async function ask(c, req) {
  const ref = Math.random().toString(36).slice(2);
  c.send({ ...req, ref });
  return c.next((e) => e.ref === ref, 10000, req.op);
}

test('a since, cursor or page below the horizon is answered with "horizon", not a gap', async () => {
  const room = uniqueRoom('ret');
  const c = await Client.connect('name=rita');
  const db = await pgClient();
  await db.connect();
  try {
    await c.op('hello');
    for (let i = 1; i <= 5; i++) assert.equal((await ask(c, { op: 'send', room, text: `old ${i}` })).seq, i);
    await db.query("INSERT INTO retention VALUES ($1, interval '1 millisecond')", [room]);
    await db.query("SELECT pg_sleep(0.01)"); // the messages are older than the keep
    await db.query('CALL chat_prune()');
    await db.query('DELETE FROM retention WHERE pattern = $1', [room]);
    const h = (await db.query('SELECT horizon FROM rooms WHERE name = $1', [room])).rows[0].horizon;
    assert.equal(Number(h), 5);
    for (let i = 6; i <= 7; i++) assert.equal((await ask(c, { op: 'send', room, text: `new ${i}` })).seq, i);

    // WebSocket: joined says where history starts; the backlog is what is above it
    const j = await Client.connect('name=rita');
    await j.op('hello');
    j.send({ op: 'join', room, since: 2 });
    const joined = await j.op('joined');
    assert.equal(joined.horizon, 5);
    assert.equal((await j.op('msg')).seq, 6);
    assert.equal((await j.op('msg')).seq, 7);
    j.send({ op: 'join', room, since: 6 });
    assert.equal((await j.op('joined')).horizon, undefined, 'no marker when nothing was skipped');
    j.close();

    // long-poll: the cursor jumps to the horizon, marked
    const p = await pollOnce(`rooms=${room}:2&name=rita`);
    assert.equal(p.status, 200);
    assert.deepEqual(p.json.horizon, { [room]: 5 });
    assert.deepEqual(p.json.events.map((e) => e.seq), [6, 7]);
    assert.equal(p.json.cursor, `${room}:7`);
    const p2 = await pollOnce(`rooms=${room}:6&name=rita&timeout=0`);
    assert.equal(p2.json.horizon, undefined);

    // history: the page that reaches the horizon says so, on both doors
    const latest = await ask(c, { op: 'history', room });
    assert.deepEqual(latest.messages.map((m) => m.seq), [6, 7]);
    assert.equal(latest.horizon, 5);
    const older = await request(BASE, `history?room=${room}&before=6`);
    assert.deepEqual(older.json.messages, []);
    assert.equal(older.json.horizon, 5);
    const one = await ask(c, { op: 'history', room, limit: 1 });
    assert.deepEqual(one.messages.map((m) => m.seq), [7]);
    assert.equal(one.horizon, undefined, 'more is left below this page');
  } finally {
    c.close();
    await db.end();
  }
});
