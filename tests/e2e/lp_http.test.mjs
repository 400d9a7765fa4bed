// Long-poll and HTTP endpoints (FastCGI) through nginx: every endpoint and
// every documented error, with the status codes and error objects of
// PROTOCOL.md, Cache-Control: no-store and a correct Content-Length.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { BASE, ROOT, http, portBase, uniqueRoom } from './lib.mjs';
import { Poller, pollOnce, request, send } from './lp_lib.mjs';

const AUTH = portBase(1);   // authenticated users only (alice/bob:secret)
const SMALL = portBase(2);  // rooms "public-* lobby", max text 100, poll timeout 2
// the schema the daemons are built for: the newest migration in sql/
const SCHEMA = Math.max(...readdirSync(`${ROOT}/sql`).filter((f) => /^\d{3}_.*\.sql$/.test(f)).map((f) => Number(f.slice(0, 3))));
const alice = { authorization: 'Basic ' + Buffer.from('alice:secret').toString('base64') };

function assertError(r, status, code) {
  assert.equal(r.status, status, r.text);
  assert.equal(r.json?.op, 'error', r.text);
  assert.equal(r.json.code, code, r.text);
  assert.equal(typeof r.json.message, 'string');
  assert.equal(r.headers.get('cache-control'), 'no-store');
}

function assertHttp(r) {
  assert.equal(r.headers.get('cache-control'), 'no-store');
  if (r.status !== 204) {
    assert.match(r.headers.get('content-type'), /^application\/json/);
    const cl = r.headers.get('content-length');
    if (cl !== null) assert.equal(Number(cl), Buffer.byteLength(r.text));
  }
}

test('health names the fcgi backend, the WebSocket daemon and the database', async () => {
  const r = await http('health/details');
  assertHttp(r);
  assert.ok(r.status === 200 || r.status === 503, r.text);
  assert.equal(r.json.backends.fcgi.status, 'ok');
  assert.equal(typeof r.json.backends.fcgi.pid, 'number');
  assert.equal(typeof r.json.backends.fcgi.parked, 'number');
  assert.equal(typeof r.json.backends.ws.status, 'string');
  assert.deepEqual(r.json.database, { status: 'up', schema: SCHEMA });
  assert.equal(r.status === 200, r.json.backends.ws.status === 'ok');
});

test('send acks after commit, and a repeated cid returns the first ack', async () => {
  const room = uniqueRoom('lp');
  const a = await send(room, 'hello', { name: 'bob', cid: 'k1' });
  assertHttp(a);
  assert.equal(a.status, 200, a.text);
  assert.equal(a.json.op, 'ack');
  assert.equal(a.json.room, room);
  assert.equal(a.json.cid, 'k1');
  assert.equal(a.json.seq, 1);
  assert.match(a.json.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  const again = await send(room, 'hello', { name: 'bob', cid: 'k1' });
  assert.deepEqual(again.json, a.json);
  const h = await http(`history?room=${room}`);
  assert.equal(h.json.messages.length, 1, 'the repeat stored nothing');
  const b = await send(room, 'no cid', { name: 'bob' });
  assert.equal(b.json.seq, 2);
  assert.equal('cid' in b.json, false);
});

test('send errors: 415, 400 bad_json and bad_request, 405, 413 too_large, 403 read-only', async () => {
  const room = uniqueRoom('lp');
  const body = JSON.stringify({ room, text: 'x', name: 'bob' });
  assertError(await http('send', { method: 'POST', body, headers: { 'content-type': 'text/plain' } }),
    415, 'bad_request');
  const form = await fetch(BASE + 'send', { method: 'POST', body: new URLSearchParams({ room }) });
  assert.equal(form.status, 415);
  const json = await http('send', { method: 'POST', body, headers: { 'content-type': 'application/json; charset=utf-8' } });
  assert.equal(json.status, 200, json.text);
  assertError(await http('send', { method: 'POST', body: '{"room":' }), 400, 'bad_json');
  assertError(await http('send', { method: 'POST', body: '[1]' }), 400, 'bad_json');
  assertError(await http('send', { method: 'POST', body: { room, name: 'bob' } }), 400, 'bad_request');
  assertError(await http('send', { method: 'POST', body: { room: 'Bad Room', text: 'x', name: 'bob' } }), 400, 'bad_request');
  assertError(await http('send', { method: 'POST', body: { room, text: '', name: 'bob' } }), 400, 'bad_request');
  assertError(await http('send', { method: 'POST', body: { room, text: 'a\u0001b', name: 'bob' } }), 400, 'bad_request');
  assertError(await http('send', { method: 'POST', body: { room, text: 'x', name: 'bob', cid: '' } }), 400, 'bad_request');
  assertError(await http('send', { method: 'POST', body: { op: 'join', room, text: 'x', name: 'bob' } }), 400, 'bad_request');
  assertError(await http('send', { method: 'POST', body: { op: 'dance', room } }), 400, 'unknown_op');
  assertError(await http('send', { method: 'POST', body: { room, text: 'x' } }), 400, 'bad_request');
  assertError(await http('send', { method: 'POST', body: { room, text: 'x', name: 'not ok' } }), 400, 'bad_request');
  assertError(await http(`send?room=${room}`), 405, 'bad_request');
  const big = await http('send', { method: 'POST', body: { room, text: 'x'.repeat(100 * 1024), name: 'bob' } });
  assert.equal(big.status, 413);
  assertError(await http('send', { method: 'POST', body: { room, text: 'x'.repeat(4097), name: 'bob' } }), 413, 'too_large');
  assertError(await request(SMALL, 'send', { method: 'POST', body: { room: 'lobby', text: 'y'.repeat(101), name: 'bob' } }), 413, 'too_large');
  assertError(await request(SMALL, 'ro/send', { method: 'POST', body: { room: 'lobby', text: 'y', name: 'bob' } }), 403, 'forbidden');
  assertError(await request(SMALL, 'send', { method: 'POST', body: { room: 'private', text: 'y', name: 'bob' } }), 403, 'forbidden');
  const h = await http(`history?room=${room}`);
  assert.equal(h.json.messages.length, 1, 'only the good send was stored');
});

test('an authenticated user is the sender whatever name it gives', async () => {
  const room = uniqueRoom('lp');
  const r = await request(AUTH, 'send', { method: 'POST', body: { room, text: 'hi', name: 'mallory', cid: 'a' }, headers: alice });
  assert.equal(r.status, 200, r.text);
  const p = await request(AUTH, `poll?rooms=${room}&name=mallory`, { headers: alice });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.json.events[0].user, 'alice');
  assert.deepEqual(p.json.members[room].members, ['alice']);
  const guest = await request(AUTH, `poll?rooms=${room}&name=bob`);
  assert.equal(guest.status, 401);
});

test('poll of a room without :N returns its last 50 at once, the cursor and members', async () => {
  const room = uniqueRoom('lp');
  for (let i = 1; i <= 55; i++) assert.equal((await send(room, `m${i}`, { name: 'bob', cid: `c${i}` })).status, 200);
  const r = await pollOnce(`rooms=${room}&name=carol`);
  assertHttp(r);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.events.map((e) => e.seq), Array.from({ length: 50 }, (_, i) => i + 6));
  assert.equal(r.json.events[0].text, 'm6');
  assert.equal(r.json.events[0].user, '~bob');
  assert.equal(r.json.cursor, `${room}:55`);
  assert.ok(r.json.members[room].members.includes('~carol'), r.text);
  assert.ok(r.json.members[room].count >= 1);
  const empty = uniqueRoom('lp');
  const e = await pollOnce(`rooms=${empty}&name=carol`);
  assert.deepEqual(e.json.events, []);
  assert.equal(e.json.cursor, `${empty}:0`);
});

test('poll with cursors answers at once with everything past them, in order', async () => {
  const a = uniqueRoom('lp');
  const b = uniqueRoom('lp');
  for (let i = 1; i <= 3; i++) await send(a, `a${i}`, { name: 'bob' });
  await send(b, 'b1', { name: 'bob' });
  const r = await pollOnce(`rooms=${a}:1,${b}:0&name=carol`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.events.map((e) => `${e.room === a ? 'a' : 'b'}${e.seq}`), ['a2', 'a3', 'b1']);
  assert.equal(r.json.cursor, `${a}:3,${b}:1`);
  assert.equal('members' in r.json, false);
  const t0 = Date.now();
  const z = await pollOnce(`rooms=${a}:3&name=carol&timeout=0`);
  assert.deepEqual(z.json.events, []);
  assert.equal(z.json.cursor, `${a}:3`);
  assert.ok(Date.now() - t0 < 1000);
});

test('a poll with nothing new waits for its timeout and answers events: []', async () => {
  const room = uniqueRoom('lp');
  // the first poll of a member announces it (a presence event may end that
  // wait early); once settled, a poll waits its whole timeout
  let r;
  for (let i = 0; i < 3; i++) {
    r = await pollOnce(`rooms=${room}:0&name=carol&timeout=1`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.events.filter((e) => e.op !== 'presence'), []);
    if (r.json.events.length === 0) break;
  }
  assert.deepEqual(r.json, { events: [], cursor: `${room}:0` });
  assert.ok(r.ms >= 900 && r.ms < 5000, `waited ${r.ms} ms`);
  const capped = await request(SMALL, `poll?rooms=lobby:999999999&name=carol&timeout=60`);
  assert.equal(capped.status, 200, 'CHAT_POLL_TIMEOUT (2 s there) caps the wait');
});

test('poll errors: 400 for bad lists, names and timeouts, 403 for rooms not allowed', async () => {
  const room = uniqueRoom('lp');
  assertError(await pollOnce('name=bob'), 400, 'bad_request');
  assertError(await pollOnce('rooms=&name=bob'), 400, 'bad_request');
  assertError(await pollOnce('rooms=Lobby&name=bob'), 400, 'bad_request');
  assertError(await pollOnce(`rooms=${room}:x&name=bob`), 400, 'bad_request');
  assertError(await pollOnce(`rooms=${room}:-1&name=bob`), 400, 'bad_request');
  assertError(await pollOnce(`rooms=${room},${room}:1&name=bob`), 400, 'bad_request');
  assertError(await pollOnce(`rooms=${room},,x&name=bob`), 400, 'bad_request');
  const many = Array.from({ length: 21 }, (_, i) => `${room}-${i}`).join(',');
  assertError(await pollOnce(`rooms=${many}&name=bob`), 400, 'bad_request');
  const twenty = Array.from({ length: 20 }, (_, i) => `${room}-${i}:0`).join(',');
  assert.equal((await pollOnce(`rooms=${twenty}&name=bob&timeout=0`)).status, 200);
  assertError(await pollOnce(`rooms=${room}`), 400, 'bad_request');
  assertError(await pollOnce(`rooms=${room}&name=a%20b`), 400, 'bad_request');
  assertError(await pollOnce(`rooms=${room}&name=%zz`), 400, 'bad_request');
  assertError(await pollOnce(`rooms=${room}:0&name=bob&timeout=soon`), 400, 'bad_request');
  assertError(await request(SMALL, `poll?rooms=lobby,private&name=bob`), 403, 'forbidden');
  assert.equal((await request(SMALL, `poll?rooms=lobby,public-x&name=bob`)).status, 200);
  assertError(await http(`poll?rooms=${room}&name=bob`, { method: 'POST', body: {} }), 405, 'bad_request');
  const enc = await pollOnce(`rooms=${encodeURIComponent(`${room}:0`)}&name=b%6Fb&timeout=0`);
  assert.equal(enc.status, 200, 'percent-encoded parameters are decoded');
});

test('history pages backwards and answers ascending', async () => {
  const room = uniqueRoom('lp');
  for (let i = 1; i <= 7; i++) await send(room, `h${i}`, { name: 'bob' });
  const all = await http(`history?room=${room}`);
  assertHttp(all);
  assert.equal(all.json.op, 'history');
  assert.equal(all.json.room, room);
  assert.deepEqual(all.json.messages.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7]);
  const page = await http(`history?room=${room}&before=6&limit=3`);
  assert.deepEqual(page.json.messages.map((m) => m.text), ['h3', 'h4', 'h5']);
  const none = await http(`history?room=${uniqueRoom('lp')}`);
  assert.deepEqual(none.json.messages, []);
  assertError(await http('history'), 400, 'bad_request');
  assertError(await http(`history?room=${room}&limit=0`), 400, 'bad_request');
  assertError(await http(`history?room=${room}&limit=201`), 400, 'bad_request');
  assertError(await http(`history?room=${room}&before=0`), 400, 'bad_request');
  assertError(await request(SMALL, 'history?room=private'), 403, 'forbidden');
  assert.equal((await request(AUTH, `history?room=${room}`)).status, 401, 'guests off: 401');
});

test('typing answers 204 and reaches the others parked in the room, not the typist', async () => {
  const room = uniqueRoom('lp');
  const base = (await http('health/details')).json.backends.fcgi.parked;
  const other = new Poller([room], { name: 'carol', since: 0, timeout: 10 }).start();
  const self = new Poller([room], { name: 'dave', since: 0, timeout: 10 }).start();
  try {
    for (let i = 0; i < 500; i++) {
      if ((await http('health/details')).json.backends.fcgi.parked >= base + 2) break;
    }
    const t = await http('typing', { method: 'POST', body: { room, name: 'dave' } });
    assert.equal(t.status, 204);
    assert.equal(t.text, '');
    assert.equal(t.headers.get('cache-control'), 'no-store');
    await other.waitFor((x) => x.events.some((e) => e.op === 'typing'), 5000, 'typing event');
    assert.deepEqual(other.events.filter((e) => e.op === 'typing'), [{ op: 'typing', room, user: '~dave' }]);
    assert.deepEqual(self.events.filter((e) => e.op === 'typing'), []);
  } finally {
    await other.stop();
    await self.stop();
  }
  assertError(await http('typing', { method: 'POST', body: { room, name: 'dave' }, headers: { 'content-type': 'text/plain' } }), 415, 'bad_request');
  assertError(await http('typing', { method: 'POST', body: { name: 'dave' } }), 400, 'bad_request');
  assertError(await request(SMALL, 'typing', { method: 'POST', body: { room: 'private', name: 'dave' } }), 403, 'forbidden');
});

test('odd query strings get 400, never a hang or a crash', async () => {
  for (const q of ['rooms=%', 'rooms=%4', 'rooms=a%00b&name=x', 'rooms=a&name=%FF', `rooms=${'a'.repeat(5000)}`]) {
    const r = await pollOnce(q);
    assertError(r, 400, 'bad_request');
  }
  const h = await http('health');
  assert.equal(h.json.backends.fcgi.status, 'ok');
});
