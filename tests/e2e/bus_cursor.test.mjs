// The per-room cursor (core/chat_cursor.c) end to end, on both transports:
// a message whose NOTIFY line is only a hint reaches WebSocket and
// long-poll subscribers on its own, with no later message to push it out;
// a message whose notification never came (as while a daemon reconnects
// to PostgreSQL) is read from the table before the next one, never
// skipped. Each test listens on channel 'chat' itself to check it made
// the case it claims (a hint; no line for the lost message).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, pgClient, uniqueRoom, waitUntil } from './lib.mjs';
import { Poller, parkedCount, send } from './lp_lib.mjs';

// The message lines (msg, hint) of channel 'chat' about one room.
async function listen(room) {
  const db = await pgClient();
  await db.connect();
  const lines = [];
  db.on('notification', (n) => {
    for (const l of n.payload.split('\n')) {
      const ev = JSON.parse(l);
      if (ev.room === room && (ev.op === 'msg' || ev.op === 'hint')) lines.push(ev);
    }
  });
  await db.query('LISTEN chat');
  return { db, lines };
}

// A member of room from since over one transport: a WebSocket client, or a
// long-poll client parked on it (answered within the test's deadlines only
// by news: its timeout is longer than they are, and its own presence does
// not wake it, so the message finds it waiting in the listener). seqs() lists the seqs of
// the room's messages received, texts() their texts, in order.
async function member(transport, room, since) {
  if (transport === 'WebSocket') {
    const ws = await Client.connect('name=wendy');
    await ws.op('hello');
    ws.send({ op: 'join', room, since });
    const joined = await ws.op('joined');
    assert.equal(joined.seq, since);
    const msgs = () => ws.events.filter((e) => e.op === 'msg' && e.room === room);
    return { msgs, close: async () => ws.close() };
  }
  const base = await parkedCount();
  const lp = new Poller([room], { name: 'lena', since, timeout: 60 }).start();
  // its own presence does not wake it (issue 12, point 12): it stays parked
  await waitUntil(async () => (await parkedCount()) >= base + 1, 10000, 'the poll parked');
  return { msgs: () => lp.msgs.get(room), close: () => lp.stop() };
}

for (const transport of ['WebSocket', 'long-poll']) {
  test(`a lone long message (a hint on the bus) reaches a ${transport} member with no later message`, async () => {
    const room = uniqueRoom('hint');
    const { db, lines } = await listen(room);
    await send(room, 'first', { name: 'sam' });
    const m = await member(transport, room, 1);
    try {
      // 4,000 bytes that JSON doubles: the line would pass the 8000-byte limit
      const text = '"\\'.repeat(2000);
      const ack = await send(room, text, { name: 'sam', cid: 'long-1' });
      assert.equal(ack.status, 200, ack.text);
      assert.equal(ack.json.seq, 2);
      await waitUntil(() => lines.some((l) => l.seq === 2), 5000, 'its line on the bus');
      assert.deepEqual(lines.filter((l) => l.seq === 2).map((l) => l.op), ['hint']);
      // nothing else is sent to the room: it must come on its own
      await waitUntil(() => m.msgs().length >= 1, 5000, 'the long message');
      assert.deepEqual(m.msgs().map((x) => [x.seq, x.text, x.cid]), [[2, text, 'long-1']]);
    } finally {
      await m.close();
      await db.end();
    }
  });

  test(`a message whose notification was lost is read from the table before the next one: no gap over ${transport}`, async () => {
    const room = uniqueRoom('lost');
    const { db, lines } = await listen(room);
    await send(room, 'first', { name: 'sam' });
    const m = await member(transport, room, 1);
    try {
      // seq 2 committed as chat_post does, but its NOTIFY never reaches anyone
      await db.query('BEGIN');
      const { rows } = await db.query(
        'UPDATE rooms SET last_seq = last_seq + 1 WHERE name = $1 RETURNING last_seq', [room]);
      assert.equal(Number(rows[0].last_seq), 2);
      await db.query(
        "INSERT INTO messages (room, seq, sender, text, ts) VALUES ($1, 2, 'sam', 'lost line', clock_timestamp())",
        [room]);
      await db.query('COMMIT');
      // the next message comes whole on the bus, one past what was heard
      const ack = await send(room, 'after the loss', { name: 'sam' });
      assert.equal(ack.json.seq, 3);
      await waitUntil(() => lines.some((l) => l.seq === 3), 5000, 'its line on the bus');
      assert.deepEqual(lines.map((l) => [l.op, l.seq]), [['msg', 1], ['msg', 3]]);
      await waitUntil(() => m.msgs().length >= 2, 5000, 'both messages');
      assert.deepEqual(m.msgs().map((x) => [x.seq, x.text]), [[2, 'lost line'], [3, 'after the loss']]);
    } finally {
      await m.close();
      await db.end();
    }
  });
}
