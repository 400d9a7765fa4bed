// One answer to a failed batch on both transports (core/chat_sql.c
// chat_post_failed): when the database refuses a group-committed batch
// because of one send, the batch is posted again send by send; the others
// are stored and acked, the refused one gets bad_request. The test makes
// the batch: it holds the room's row lock so that a first send blocks the
// writer and the next two queue behind it into one batch, and a trigger
// refuses the text 'poison' (counting its attempts: two means it went in
// a batch, then alone).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, http, pgClient, uniqueRoom, waitUntil } from './lib.mjs';
import { send } from './lp_lib.mjs';

async function poisonTrigger(db, room) {
  const seq = `test_poison_${room.replace(/-/g, '_')}`;
  await db.query(`CREATE SEQUENCE ${seq}`);
  await db.query(`CREATE FUNCTION ${seq}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM nextval('${seq}');
      RAISE EXCEPTION 'poisoned' USING ERRCODE = 'check_violation';
    END $$`);
  await db.query(`CREATE TRIGGER ${seq} BEFORE INSERT ON messages FOR EACH ROW
    WHEN (NEW.room = '${room}' AND NEW.text = 'poison') EXECUTE FUNCTION ${seq}()`);
  return {
    attempts: async () => Number((await db.query(`SELECT last_value, is_called FROM ${seq}`)).rows
      .map((r) => (r.is_called ? r.last_value : 0))[0]),
    drop: async () => {
      await db.query(`DROP TRIGGER IF EXISTS ${seq} ON messages`);
      await db.query(`DROP FUNCTION IF EXISTS ${seq}()`);
      await db.query(`DROP SEQUENCE IF EXISTS ${seq}`);
    },
  };
}

// Holds room's row lock (chat_post waits for it) until release().
async function holdRoom(room) {
  const db = await pgClient();
  await db.connect();
  await db.query('BEGIN');
  await db.query('SELECT 1 FROM rooms WHERE name = $1 FOR UPDATE', [room]);
  return { release: async () => { await db.query('COMMIT'); await db.end(); } };
}

// The writer's chat_post waiting for a lock on the room.
async function writerBlocked(db) {
  const { rows } = await db.query(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%chat_post%'");
  return rows[0].n > 0;
}

async function stored(db, room) {
  const { rows } = await db.query('SELECT text FROM messages WHERE room = $1 ORDER BY seq', [room]);
  return rows.map((r) => r.text);
}

test('WebSocket: a batch the database refuses for one send stores the others; that one gets bad_request', async () => {
  const room = uniqueRoom('batch');
  const db = await pgClient();
  await db.connect();
  const ws = await Client.connect('name=bea');
  await ws.op('hello');
  const trig = await poisonTrigger(db, room);
  try {
    ws.send({ op: 'send', room, text: 'first', cid: 'c0', ref: 'c0' });
    assert.equal((await ws.next((e) => e.ref === 'c0')).op, 'ack');
    const lock = await holdRoom(room);
    ws.send({ op: 'send', room, text: 'blocker', cid: 'c1', ref: 'c1' });
    await waitUntil(() => writerBlocked(db), 10000, 'the writer waiting for the room');
    ws.send({ op: 'send', room, text: 'poison', cid: 'c2', ref: 'c2' });
    ws.send({ op: 'send', room, text: 'fine', cid: 'c3', ref: 'c3' });
    ws.send({ op: 'ping', ref: 'p' }); // answered once the sends before it are queued
    await ws.next((e) => e.op === 'pong' && e.ref === 'p', 10000, 'pong');
    await lock.release();
    const answers = {};
    for (const ref of ['c1', 'c2', 'c3']) answers[ref] = await ws.next((e) => e.ref === ref, 10000, ref);
    assert.equal(answers.c1.op, 'ack', JSON.stringify(answers.c1));
    assert.deepEqual([answers.c2.op, answers.c2.code], ['error', 'bad_request'], JSON.stringify(answers.c2));
    assert.equal(answers.c3.op, 'ack', JSON.stringify(answers.c3));
    assert.equal(await trig.attempts(), 2, 'poison went in a batch, then alone');
    assert.deepEqual(await stored(db, room), ['first', 'blocker', 'fine']);
  } finally {
    ws.close();
    await trig.drop();
    await db.end();
  }
});

test('long-poll: a batch the database refuses for one send stores the others; that one gets 400 bad_request', async () => {
  const room = uniqueRoom('batch');
  const db = await pgClient();
  await db.connect();
  const trig = await poisonTrigger(db, room);
  try {
    assert.equal((await send(room, 'first', { name: 'bea' })).status, 200);
    const lock = await holdRoom(room);
    const blocker = send(room, 'blocker', { name: 'bea', cid: 'c1' });
    await waitUntil(() => writerBlocked(db), 10000, 'the writer waiting for the room');
    const base = (await http('health/details')).json.backends.fcgi.queued;
    const poison = send(room, 'poison', { name: 'bea', cid: 'c2' });
    const fine = send(room, 'fine', { name: 'bea', cid: 'c3' });
    await waitUntil(async () => (await http('health/details')).json.backends.fcgi.queued >= base + 2, 10000,
      'both sends queued behind the blocked one');
    await lock.release();
    const [b, p, f] = await Promise.all([blocker, poison, fine]);
    assert.equal(b.status, 200, b.text);
    assert.equal(p.status, 400, p.text);
    assert.equal(p.json.code, 'bad_request');
    assert.equal(f.status, 200, f.text);
    assert.equal(await trig.attempts(), 2, 'poison went in a batch, then alone');
    assert.deepEqual(await stored(db, room), ['first', 'blocker', 'fine']);
  } finally {
    await trig.drop();
    await db.end();
  }
});
