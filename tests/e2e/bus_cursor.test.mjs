// The per-room cursor (core/chat_cursor.c) end to end, on both transports:
// a message whose NOTIFY line is only a hint reaches WebSocket and
// long-poll subscribers on its own, with no later message to push it out;
// a message whose notification never came (as while a daemon reconnects
// to PostgreSQL) is read from the table before the next one, never
// skipped. Each test listens on channel 'chat' itself to check it made
// the case it claims (a hint; no line for the lost message). A client
// whose cursor only the table has yet (it read there, or on a process that
// heard first) is not told the room went back in time by a process that
// has not heard of it yet: no reset, nothing again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, pgClient, uniqueRoom, waitUntil } from './lib.mjs';
import { Poller, parkedCount, pollOnce, send } from './lp_lib.mjs';
import { openStream } from './sse_lib.mjs';
import { startDaemon } from './daemon.mjs';

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

// Commits the room's next seq as chat_post does, without a NOTIFY: to every
// listener it is a message whose line has not come yet.
async function silentPost(db, room, text) {
  await db.query('BEGIN');
  const { rows } = await db.query(
    'UPDATE rooms SET last_seq = last_seq + 1 WHERE name = $1 RETURNING last_seq', [room]);
  const seq = Number(rows[0].last_seq);
  await db.query(
    "INSERT INTO messages (room, seq, sender, text, ts) VALUES ($1, $2, 'sam', $3, clock_timestamp())",
    [room, seq, text]);
  await db.query('COMMIT');
  return seq;
}

// The switcher of sse_mixed (a reader moving among transports with its
// cursor) made this race by chance: it took seq N from chat-fcgi and joined
// a chat-ws worker that had not heard N yet; the worker took its own cursor
// for the room's end, answered reset and replayed the room from the start.
// One chat-ws worker of the test's own makes it the same worker every time.
test('a WebSocket join whose since the table has but this process has not heard of yet: no reset, nothing again', async () => {
  const room = uniqueRoom('ahead');
  const { db, lines } = await listen(room);
  const d = await startDaemon([]);
  const clients = [];
  const direct = async (name) => {
    const c = await Client.connect('', {}, `${d.url}?name=${name}`);
    clients.push(c);
    await c.op('hello');
    return c;
  };
  try {
    assert.equal((await send(room, 'first', { name: 'sam' })).json.seq, 1);
    // a member here: the room is this process's, at seq 1
    const resident = await direct('resident');
    resident.send({ op: 'join', room, since: 0 });
    await resident.op('joined');
    await resident.next((e) => e.op === 'msg' && e.seq === 1, 5000, 'seq 1');
    // seq 2 is in the table; no line of it reaches this process
    assert.equal(await silentPost(db, room, 'not heard here'), 2);
    // a client that read it elsewhere (a poll reads the table)
    const r = await pollOnce(`rooms=${room}:1&name=mover&timeout=0`);
    assert.deepEqual(r.json.events.filter((e) => e.op === 'msg').map((e) => e.seq), [2]);
    // ... comes here with its cursor
    const mover = await direct('mover');
    mover.send({ op: 'join', room, since: 2 });
    const joined = await mover.op('joined');
    assert.equal((await send(room, 'next', { name: 'sam' })).json.seq, 3);
    await waitUntil(() => lines.some((l) => l.seq === 3), 5000, 'its line on the bus');
    const first = await mover.next((e) => e.op === 'msg' || e.op === 'reset', 5000, 'the next message');
    assert.deepEqual([first.op, first.seq, first.text], ['msg', 3, 'next'], JSON.stringify(mover.events));
    assert.equal(joined.seq, 2, 'joined at the client\'s cursor');
    // the resident (already here) gets the message it had not heard, then the next
    await waitUntil(() => resident.events.filter((e) => e.op === 'msg').length >= 2, 5000, 'the resident');
    assert.deepEqual(resident.events.filter((e) => e.op === 'msg').map((e) => [e.seq, e.text]),
      [[2, 'not heard here'], [3, 'next']]);
    // and nothing else came to the mover meanwhile (checked after the resident's seq 3)
    assert.deepEqual(mover.events.filter((e) => e.op === 'msg' || e.op === 'reset'), []);
    assert.doesNotMatch(d.log(), /a join past what the room has/);
  } finally {
    for (const c of clients) c.close();
    await d.stop();
    await db.end();
  }
});

// The same client on long-poll and SSE: chat-fcgi's listener knows the room
// at seq 1 (a member parked on it) when the cursor 2 comes.
for (const transport of ['long-poll', 'SSE']) {
  test(`a ${transport} cursor the listener has not heard of yet: no reset, nothing again`, async () => {
    const room = uniqueRoom('ahead');
    const { db, lines } = await listen(room);
    await send(room, 'first', { name: 'sam' });
    const resident = await member('long-poll', room, 1);
    let stream = null;
    try {
      assert.equal(await silentPost(db, room, 'not heard here'), 2);
      let got;
      if (transport === 'SSE') {
        stream = await openStream(`rooms=${room}:2&name=mover`);
        assert.equal(stream.status, 200);
        await stream.waitFor((s) => s.ops('ready').length === 1, 5000, 'ready');
        got = () => stream.events.map((e) => e.data).filter((e) => e.op === 'msg' || e.op === 'reset');
      } else {
        const ctl = new AbortController();
        const poll = pollOnce(`rooms=${room}:2&name=mover&timeout=30`, { signal: ctl.signal });
        stream = { close: () => ctl.abort() };
        const answer = { events: null };
        poll.then((r) => { answer.events = r.json.events; }, () => {});
        got = () => (answer.events ?? []).filter((e) => e.op === 'msg' || e.op === 'reset');
      }
      assert.equal((await send(room, 'next', { name: 'sam' })).json.seq, 3);
      await waitUntil(() => lines.some((l) => l.seq === 3), 5000, 'its line on the bus');
      await waitUntil(() => got().length >= 1, 5000, 'the next message');
      assert.deepEqual(got().map((e) => [e.op, e.seq, e.text]), [['msg', 3, 'next']]);
      await waitUntil(() => resident.msgs().length >= 2, 5000, 'the resident');
      assert.deepEqual(resident.msgs().map((x) => [x.seq, x.text]), [[2, 'not heard here'], [3, 'next']]);
    } finally {
      stream?.close();
      await resident.close();
      await db.end();
    }
  });
}
