// GET events: Server-Sent Events through the FastCGI worker. One event per
// message with the cursor list as its id, resume from Last-Event-ID,
// heartbeats as comments, presence and typing as on long-poll, the same
// errors, and streams parked like polls (no thread each).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uniqueRoom } from './lib.mjs';
import { BASE, parkedCount, pollOnce, request, send, waitUntil } from './lp_lib.mjs';
import { openStream } from './sse_lib.mjs';

const q = (o) => new URLSearchParams(o).toString();

test('events arrive in order, one SSE event each, with the cursor as the id', async () => {
  const room = uniqueRoom('sse');
  const s = await openStream(q({ rooms: room, name: 'reader' }));
  try {
    assert.equal(s.status, 200);
    assert.equal(s.res.headers.get('x-accel-buffering'), null, 'nginx consumes X-Accel-Buffering');
    assert.match(s.res.headers.get('cache-control'), /no-store/);
    await s.waitFor(() => s.ops('ready').length === 1, 10000, 'ready');
    const ready = s.ops('ready')[0];
    assert.equal(ready.data.user, '~reader');
    assert.equal(ready.data.cursor, `${room}:0`);
    assert.equal(ready.id, `${room}:0`);
    assert.deepEqual(ready.data.members[room].members, ['~reader']);
    for (let i = 1; i <= 5; i++) {
      const r = await send(room, `m${i}`, { name: 'writer', cid: `c${i}` });
      assert.equal(r.status, 200, r.text);
    }
    await s.waitFor(() => s.texts(room).length === 5, 10000, 'five messages');
    assert.deepEqual(s.texts(room), ['m1', 'm2', 'm3', 'm4', 'm5']);
    const ids = s.events.filter((e) => e.data.op === 'msg').map((e) => e.id);
    assert.deepEqual(ids, [1, 2, 3, 4, 5].map((n) => `${room}:${n}`));
    assert.deepEqual(s.errors, []);
  } finally {
    s.close();
  }
});

test('several rooms: the id carries every cursor; Last-Event-ID resumes exactly there', async () => {
  const a = uniqueRoom('ssea');
  const b = uniqueRoom('sseb');
  await send(a, 'a1', { name: 'w' });
  await send(b, 'b1', { name: 'w' });
  const s1 = await openStream(q({ rooms: `${a}:0,${b}:0`, name: 'r' }));
  await s1.waitFor(() => s1.ops('ready').length === 1, 10000, 'ready');
  assert.equal(s1.lastEventId, `${a}:1,${b}:1`);
  await send(a, 'a2', { name: 'w' });
  await s1.waitFor(() => s1.texts(a).length === 2, 10000, 'a2');
  assert.equal(s1.lastEventId, `${a}:2,${b}:1`);
  const seen = s1.lastEventId;
  s1.close();
  // while away: one more in each room
  await send(a, 'a3', { name: 'w' });
  await send(b, 'b2', { name: 'w' });
  // the browser reconnects to the same URL (cursors 0) with Last-Event-ID
  const s2 = await openStream(q({ rooms: `${a}:0,${b}:0`, name: 'r' }), { lastEventId: seen });
  try {
    await s2.waitFor(() => s2.ops('ready').length === 1, 10000, 'ready after resume');
    assert.deepEqual(s2.texts(a), ['a3']);
    assert.deepEqual(s2.texts(b), ['b2']);
    assert.equal(s2.ops('ready')[0].data.cursor, `${a}:3,${b}:2`);
    assert.equal(s2.ops('ready')[0].data.members, undefined, 'members only for rooms without a cursor');
  } finally {
    s2.close();
  }
});

// A cursor past the room is what a client holds after the database went
// back in time (docs/protocol.md, "Reset"): it is told reset 0 and must then
// get the room as it is now, from its start, with ids that say so; a
// resuming browser (Last-Event-ID) the same.
for (const how of ['query', 'Last-Event-ID']) {
  test(`a cursor past the room (${how}): reset, then the room afresh and the next message, ids from the reset`, async () => {
    const room = uniqueRoom('sse-reset');
    for (const t of ['a', 'b', 'c']) assert.equal((await send(room, t, { name: 'writer' })).status, 200);
    const s = how === 'query'
      ? await openStream(q({ rooms: `${room}:10`, name: 'back' }))
      : await openStream(q({ rooms: `${room}:0`, name: 'back' }), { lastEventId: `${room}:10` });
    try {
      assert.equal(s.status, 200);
      await s.waitFor(() => s.ops('ready').length === 1, 10000, 'ready');
      assert.deepEqual(s.events.map((e) => [e.data.op, e.data.seq]).slice(0, 2), [['reset', 0], ['ready', undefined]]);
      assert.equal(s.ops('ready')[0].id, `${room}:0`);
      assert.equal((await send(room, 'd', { name: 'writer' })).json.seq, 4);
      await s.waitFor(() => s.texts(room).length >= 4, 10000, 'the room afresh');
      assert.deepEqual(s.texts(room), ['a', 'b', 'c', 'd']);
      assert.deepEqual(s.events.filter((e) => e.data.op === 'msg').map((e) => e.id), [1, 2, 3, 4].map((n) => `${room}:${n}`));
      assert.deepEqual(s.errors, []);
    } finally {
      s.close();
    }
  });
}

test('a quiet stream gets heartbeat comments', async () => {
  const room = uniqueRoom('ssehb');
  const s = await openStream(q({ rooms: `${room}:0`, name: 'hb', heartbeat: '1' }));
  try {
    assert.equal(s.retry, null);
    await s.waitFor(() => s.comments.length >= 2, 10000, 'two heartbeats');
    assert.equal(s.comments[0], 'heartbeat');
    assert.equal(s.retry, 2000);
    // still live after the heartbeats
    await send(room, 'after beats', { name: 'w' });
    await s.waitFor(() => s.texts(room).length === 1, 10000, 'message after heartbeats');
  } finally {
    s.close();
  }
});

test('typing and presence reach streams; a reader does not get its own typing', async () => {
  const room = uniqueRoom('ssetp');
  const s = await openStream(q({ rooms: `${room}:0`, name: 'watcher' }));
  try {
    await s.waitFor(() => s.ops('ready').length === 1, 10000, 'ready');
    const other = await pollOnce(q({ rooms: `${room}:0`, name: 'poller', timeout: '0' }));
    assert.equal(other.status, 200);
    await s.waitFor(() => s.ops('presence').some((e) => (e.data.online || []).includes('~poller')),
      10000, 'presence of the poller');
    await request(BASE, 'typing', { method: 'POST', body: { room, name: 'watcher' } });
    await request(BASE, 'typing', { method: 'POST', body: { room, name: 'poller' } });
    await s.waitFor(() => s.ops('typing').length >= 1, 10000, 'typing');
    await send(room, 'fence', { name: 'poller' }); // after both typing events
    await s.waitFor(() => s.texts(room).length === 1, 10000, 'fence');
    assert.deepEqual(s.ops('typing').map((e) => e.data.user), ['~poller']);
  } finally {
    s.close();
  }
});

test('errors: Accept, Last-Event-ID, rooms, name, heartbeat', async () => {
  const room = uniqueRoom('sseerr');
  let r = await request(BASE, `events?${q({ rooms: room, name: 'x' })}`, { headers: { accept: 'application/json' } });
  assert.equal(r.status, 406);
  assert.equal(r.json.code, 'bad_request');
  const bad = async (query, headers = {}, status = 400) => {
    const s = await openStream(query, { headers });
    assert.equal(s.status, status, `${query} ${JSON.stringify(headers)}: ${s.text}`);
    assert.equal(s.json.op, 'error');
    return s.json;
  };
  assert.match((await bad(q({ rooms: room, name: 'x' }), { 'last-event-id': '<script>' })).message, /Last-Event-ID/);
  await bad(q({ rooms: room, name: 'x' }), { 'last-event-id': `${room}:-1` });
  await bad(q({ name: 'x' }));
  await bad(q({ rooms: 'Bad Room', name: 'x' }));
  await bad(q({ rooms: room }));
  await bad(q({ rooms: room, name: 'x', heartbeat: '0' }));
  r = await request(BASE, `events?${q({ rooms: room, name: 'x' })}`, {
    method: 'POST', body: {}, headers: { accept: 'text/event-stream' },
  });
  assert.equal(r.status, 405);
});

test('streams are parked like polls: 60 open streams hold no thread, all get each message', async () => {
  const room = uniqueRoom('ssepark');
  const before = await parkedCount();
  const streams = [];
  try {
    for (let i = 0; i < 60; i++) streams.push(await openStream(q({ rooms: `${room}:0`, name: `p${i}` })));
    await Promise.all(streams.map((s) => s.waitFor(() => s.ops('ready').length === 1, 10000, 'ready')));
    await waitUntil(async () => (await parkedCount()) >= before + 60, 10000, 'parked count');
    // the acceptors are free: history and sends are answered at once
    const h = await request(BASE, `history?${q({ room })}`);
    assert.equal(h.status, 200);
    assert.equal((await send(room, 'to all', { name: 'w' })).status, 200);
    await Promise.all(streams.map((s) => s.waitFor(() => s.texts(room).length === 1, 10000, 'fan-out')));
  } finally {
    for (const s of streams) s.close();
  }
  await waitUntil(async () => (await parkedCount()) <= before, 10000, 'streams freed after the browsers left');
});
