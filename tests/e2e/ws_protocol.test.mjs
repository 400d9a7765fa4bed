// Every row of PROTOCOL.md over WebSocket, through nginx.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Client, uniqueRoom, portBase, http, pgClient } from './lib.mjs';

const AUTH = portBase(1, 'ws');   // auth_basic, guests off
const STRICT = portBase(2, 'ws'); // rooms "public-* lobby", max text 100
const basic = (u) => ({ headers: { Authorization: 'Basic ' + Buffer.from(`${u}:secret`).toString('base64') } });

async function guest(name) {
  const c = await Client.connect(`name=${name}`);
  const hello = await c.op('hello');
  return Object.assign(c, { user: hello.user, hello });
}

async function joined(c, room, extra = {}) {
  c.send({ op: 'join', room, ref: `j-${room}`, ...extra });
  return c.next((e) => e.op === 'joined' && e.room === room, 10000, `joined ${room}`);
}

async function sendAcked(c, room, text, cid) {
  const ref = `s-${cid}`;
  c.send({ op: 'send', room, text, cid, ref });
  return c.next((e) => e.ref === ref, 10000, `ack ${cid}`);
}

const msgsOf = (c, room, n) => Promise.all(Array.from({ length: n }, () =>
  c.next((e) => e.op === 'msg' && e.room === room, 10000, `msg in ${room}`)));

describe('identity', () => {
  test('a guest is greeted with a ~name and the heartbeat', async () => {
    const c = await guest('bob_1');
    assert.deepEqual(c.hello, { op: 'hello', user: '~bob_1', heartbeat: 30 });
    c.close();
  });

  test('an nginx-authenticated user is greeted by name and sends as that user', async () => {
    const room = uniqueRoom();
    const c = await Client.connect('name=impostor', basic('alice'), AUTH);
    assert.equal((await c.op('hello')).user, 'alice');
    await joined(c, room);
    c.send({ op: 'send', room, text: 'who am I', cid: 'a1', name: 'bob' });
    const m = await c.op('msg');
    assert.equal(m.user, 'alice');
    c.close();
  });

  test('guests off and no user: 401 before the upgrade', async () => {
    await assert.rejects(Client.connect('name=bob', {}, AUTH), /HTTP 401/);
  });

  test('a guest without a valid name: 400', async () => {
    await assert.rejects(Client.connect(''), /HTTP 400/);
    await assert.rejects(Client.connect('name=' + 'x'.repeat(33)), /HTTP 400/);
    await assert.rejects(Client.connect('name=bad%20name'), /HTTP 400/);
  });
});

describe('rooms', () => {
  test('join: joined at seq N with members, backlog (since, N], then live', async () => {
    const room = uniqueRoom();
    const a = await guest('alice');
    for (let i = 1; i <= 5; i++) await sendAcked(a, room, `m${i}`, `c${i}`);
    const b = await guest('bob');
    const j = await joined(b, room, { since: 2 });
    assert.equal(j.seq, 5);
    assert.equal(j.ref, `j-${room}`);
    assert.ok(j.members.includes('~bob'));
    assert.equal(j.count, j.members.length);
    const backlog = await msgsOf(b, room, 3);
    assert.deepEqual(backlog.map((m) => [m.seq, m.text, m.user]), [[3, 'm3', '~alice'], [4, 'm4', '~alice'], [5, 'm5', '~alice']]);
    await sendAcked(a, room, 'live', 'c6');
    const live = await b.op('msg');
    assert.deepEqual([live.seq, live.text, live.cid], [6, 'live', 'c6']);
    assert.match(live.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    a.close(); b.close();
  });

  test('join without since replays the last 50; since 0 replays at most 500', async () => {
    const room = uniqueRoom();
    const db = await pgClient();
    await db.connect();
    const n = 620;
    await db.query('SELECT chat_post($1::text[], $2::text[], $3::text[], $4::text[])', [
      Array(n).fill(room), Array(n).fill('~filler'), Array.from({ length: n }, (_, i) => `m${i + 1}`), Array(n).fill(null)]);
    await db.end();
    const a = await guest('alice');
    const j = await joined(a, room);
    assert.equal(j.seq, n);
    const last50 = await msgsOf(a, room, 50);
    assert.deepEqual(last50.map((m) => m.seq), Array.from({ length: 50 }, (_, i) => n - 49 + i));
    const b = await guest('bob');
    await joined(b, room, { since: 0 });
    const last500 = await msgsOf(b, room, 500);
    assert.deepEqual(last500.map((m) => m.seq), Array.from({ length: 500 }, (_, i) => n - 499 + i));
    // and nothing more arrives before a message sent now
    await sendAcked(b, room, 'now', 'now1');
    assert.equal((await b.op('msg')).seq, n + 1);
    a.close(); b.close();
  });

  test('messages committed during a join arrive exactly once, in order', async () => {
    const room = uniqueRoom();
    const writers = await Promise.all([guest('w1'), guest('w2'), guest('w3')]);
    let stop = false;
    let sent = 0;
    const pump = writers.map(async (w, k) => {
      for (let i = 0; !stop && i < 25; i++) {
        await sendAcked(w, room, `w${k}-${i}`, `w${k}-${i}`);
        sent++;
      }
    });
    const readers = [];
    for (let r = 0; r < 6; r++) {
      const c = await guest(`r${r}`);
      await joined(c, room, { since: 0 });
      readers.push(c);
    }
    await Promise.all(pump);
    stop = true;
    const last = await sendAcked(writers[0], room, 'end', 'end');
    for (const c of readers) {
      const seqs = [];
      for (;;) {
        const m = await c.next((e) => e.op === 'msg', 10000, 'msg');
        seqs.push(m.seq);
        if (m.seq === last.seq) break;
      }
      assert.deepEqual(seqs, Array.from({ length: last.seq }, (_, i) => i + 1), 'gap-free, no duplicate');
      c.close();
    }
    assert.equal(last.seq, sent + 1);
    writers.forEach((w) => w.close());
  });

  test('leave: left, then nothing more of that room', async () => {
    const room = uniqueRoom(), other = uniqueRoom();
    const a = await guest('alice'), b = await guest('bob');
    await joined(b, room);
    await joined(b, other);
    b.send({ op: 'leave', room, ref: 'l1' });
    assert.deepEqual(await b.op('left'), { op: 'left', room, ref: 'l1' });
    await sendAcked(a, room, 'after leave', 'x1');
    await sendAcked(a, other, 'barrier', 'x2');
    const m = await b.op('msg');
    assert.equal(m.room, other, 'the left room sent nothing');
    assert.equal(b.events.filter((e) => e.op === 'msg').length, 0);
    a.close(); b.close();
  });

  test('send is acked after commit, idempotent by cid, and works without join', async () => {
    const room = uniqueRoom();
    const a = await guest('alice');
    const ack = await sendAcked(a, room, 'hi', 'k3j4');
    assert.equal(ack.op, 'ack');
    assert.equal(ack.room, room);
    assert.equal(ack.cid, 'k3j4');
    assert.equal(ack.seq, 1);
    const again = await sendAcked(a, room, 'hi (retry)', 'k3j4');
    assert.deepEqual({ ...again, ref: 0 }, { ...ack, ref: 0 });
    a.send({ op: 'history', room, ref: 'h' });
    const h = await a.op('history');
    assert.deepEqual(h.messages.map((m) => [m.seq, m.text]), [[1, 'hi']]);
    a.close();
  });

  test('history pages backwards, ascending, with limit and before', async () => {
    const room = uniqueRoom();
    const a = await guest('alice');
    for (let i = 1; i <= 12; i++) await sendAcked(a, room, `m${i}`, `c${i}`);
    a.send({ op: 'history', room, limit: 5, ref: 1 });
    let h = await a.op('history');
    assert.deepEqual(h.messages.map((m) => m.seq), [8, 9, 10, 11, 12]);
    assert.equal(h.ref, 1);
    a.send({ op: 'history', room, before: 8, limit: 5, ref: 2 });
    h = await a.op('history');
    assert.deepEqual(h.messages.map((m) => m.seq), [3, 4, 5, 6, 7]);
    a.send({ op: 'history', room, before: 3, ref: 3 });
    h = await a.op('history');
    assert.deepEqual(h.messages.map((m) => m.seq), [1, 2]);
    a.send({ op: 'history', room: uniqueRoom(), ref: 4 });
    assert.deepEqual((await a.op('history')).messages, []);
    a.send({ op: 'history', room, limit: 201, ref: 5 });
    assert.equal((await a.op('error')).code, 'bad_request');
    a.close();
  });

  test('typing reaches the other members, not the typist', async () => {
    const room = uniqueRoom();
    const a = await guest('alice'), b = await guest('bob');
    await joined(a, room);
    await joined(b, room);
    a.send({ op: 'typing', room });
    assert.deepEqual(await b.op('typing'), { op: 'typing', room, user: '~alice' });
    // a barrier: alice's own next reply proves no typing event was queued for her
    a.send({ op: 'ping', ref: 'barrier' });
    await a.op('pong');
    assert.equal(a.events.filter((e) => e.op === 'typing').length, 0);
    a.close(); b.close();
  });

  test('members and ping', async () => {
    const room = uniqueRoom();
    const a = await guest('alice'), b = await guest('bob');
    await joined(a, room);
    await joined(b, room);
    // presence is written at most once a second: wait for bob's to land
    await a.next((e) => e.op === 'presence' && e.online?.includes('~bob'), 5000, 'bob online');
    a.send({ op: 'members', room, ref: 'm' });
    const m = await a.op('members');
    assert.deepEqual(m, { op: 'members', room, members: ['~alice', '~bob'], count: 2, ref: 'm' });
    a.send({ op: 'ping', ref: 42 });
    assert.deepEqual(await a.op('pong'), { op: 'pong', ref: 42 });
    a.close(); b.close();
  });
});

describe('presence', () => {
  test('first connection in: online; last one out: offline; across connections of a user', async () => {
    const room = uniqueRoom();
    const a = await guest('alice');
    await joined(a, room);
    const b1 = await guest('bob'), b2 = await guest('bob');
    await joined(b1, room);
    await joined(b2, room);
    const on = await a.next((e) => e.op === 'presence' && e.online?.includes('~bob'), 5000, 'bob online');
    assert.equal(on.count, 2);
    b1.close();
    // bob still has a connection: the next presence event must not say offline;
    // closing the second makes him offline
    b2.close();
    const off = await a.next((e) => e.op === 'presence' && e.offline?.includes('~bob'), 5000, 'bob offline');
    assert.equal(off.count, 1);
    assert.equal(a.events.filter((e) => e.op === 'presence' && e.offline?.includes('~bob')).length, 0);
    a.close();
  });

  test('a crowd is coalesced: at most one event a second, count only past 50', async () => {
    const room = uniqueRoom();
    const a = await guest('watcher');
    await joined(a, room);
    const crowd = await Promise.all(Array.from({ length: 60 }, (_, i) => guest(`crowd${i}`)));
    await Promise.all(crowd.map((c) => joined(c, room)));
    const times = [];
    let last;
    do {
      last = await a.next((e) => e.op === 'presence', 10000, 'presence');
      times.push(Date.now());
    } while (last.count < 61);
    assert.equal(last.count, 61);
    for (let i = 1; i < times.length; i++) assert.ok(times[i] - times[i - 1] >= 800, 'coalesced to about one a second');
    a.send({ op: 'members', room, ref: 'm' });
    const m = await a.op('members');
    assert.equal(m.count, 61);
    assert.equal(m.members.length, 61);
    assert.deepEqual(m.members, [...m.members].sort());
    crowd.forEach((c) => c.close());
    a.close();
  });
});

describe('errors carry the ref', () => {
  test('unknown op, bad json, bad request', async () => {
    const a = await guest('alice');
    a.send({ op: 'dance', ref: 'r1' });
    assert.deepEqual(await a.op('error').then((e) => [e.code, e.ref]), ['unknown_op', 'r1']);
    a.send('{not json');
    assert.equal((await a.op('error')).code, 'bad_json');
    a.send({ op: 'join', ref: 7 });
    assert.deepEqual(await a.op('error').then((e) => [e.code, e.ref]), ['bad_request', 7]);
    a.send({ op: 'join', room: 'Not A Room', ref: 8 });
    assert.deepEqual(await a.op('error').then((e) => [e.code, e.ref]), ['bad_request', 8]);
    a.send({ op: 'send', room: 'lobby', text: 'ctrl \u0001', ref: 9 });
    assert.deepEqual(await a.op('error').then((e) => [e.code, e.ref]), ['bad_request', 9]);
    a.close();
  });

  test('forbidden rooms, too_large texts, read-only locations', async () => {
    const a = await Client.connect('name=alice', {}, STRICT);
    await a.op('hello');
    a.send({ op: 'join', room: 'secret', ref: 'f' });
    assert.deepEqual(await a.op('error').then((e) => [e.code, e.ref]), ['forbidden', 'f']);
    a.send({ op: 'send', room: 'secret', text: 'x', ref: 'g' });
    assert.equal((await a.op('error')).code, 'forbidden');
    const room = 'public-' + uniqueRoom();
    await joined(a, room);
    a.send({ op: 'send', room, text: 'x'.repeat(101), cid: 'big', ref: 't' });
    assert.deepEqual(await a.op('error').then((e) => [e.code, e.ref]), ['too_large', 't']);
    const ok = await sendAcked(a, room, 'x'.repeat(100), 'fits');
    assert.equal(ok.op, 'ack');
    a.close();
  });

  test('a read-only location may read but not send or type', async () => {
    const base = portBase(2, 'ws') + 'ro/';
    const r = await Client.connect('name=reader', {}, base);
    await r.op('hello');
    const room = 'lobby';
    await joined(r, room);
    r.send({ op: 'send', room, text: 'no', ref: 's' });
    assert.deepEqual(await r.op('error').then((e) => [e.code, e.ref]), ['forbidden', 's']);
    r.send({ op: 'typing', room, ref: 't' });
    assert.equal((await r.op('error')).code, 'forbidden');
    r.send({ op: 'history', room, ref: 'h' });
    assert.equal((await r.op('history')).ref, 'h');
    r.close();
  });

  test('flooding sends: rate_limited, nothing stored for those, others unaffected', async () => {
    const room = uniqueRoom();
    const a = await guest('flood'), b = await guest('calm');
    for (let i = 0; i < 60; i++) a.send({ op: 'send', room, text: `f${i}`, cid: `f${i}`, ref: i });
    let acks = 0, limited = 0;
    for (let i = 0; i < 60; i++) {
      const e = await a.next((x) => x.op === 'ack' || x.op === 'error', 10000, 'reply');
      if (e.op === 'ack') acks++; else { assert.equal(e.code, 'rate_limited'); limited++; }
    }
    assert.ok(limited > 0 && acks >= 30, `acks ${acks}, limited ${limited}`);
    const ok = await sendAcked(b, room, 'calm', 'calm1');
    assert.equal(ok.seq, acks + 1, 'only the acked sends were stored');
    a.close(); b.close();
  });

  test('too many rooms on one connection: forbidden', async () => {
    const a = await guest('roamer');
    for (let i = 0; i < 100; i++) a.send({ op: 'join', room: `roam-${process.pid}-${i}`, ref: i });
    for (let i = 0; i < 100; i++) await a.next((e) => e.op === 'joined', 20000, 'joined');
    a.send({ op: 'join', room: `roam-${process.pid}-100`, ref: 'over' });
    const e = await a.op('error');
    assert.deepEqual([e.code, e.ref], ['forbidden', 'over']);
    a.close();
  });
});

test('health names the WebSocket backend', async () => {
  const r = await http('health/details');
  assert.equal(r.json.backends.ws.backend, 'ws');
});
