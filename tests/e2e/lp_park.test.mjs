// Parked polls: released at once by news, freed when the browser leaves,
// presence of long-poll users, a thousand parked at once while others
// chat, and PostgreSQL going away under them with nothing lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { portBase, stack, uniqueRoom, waitUntil, withTimeout } from './lib.mjs';
import { Poller, parkedCount, pollOnce, send } from './lp_lib.mjs';

const SMALL = portBase(2); // poll timeout 2 s, rooms "public-* lobby"

async function waitParked(atLeast, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const n = await parkedCount();
    if (n >= atLeast) return n;
    if (Date.now() > deadline) throw new Error(`only ${n} parked polls, wanted ${atLeast}`);
  }
}

async function waitParkedAtMost(most, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const n = await parkedCount();
    if (n <= most) return n;
    if (Date.now() > deadline) throw new Error(`still ${n} parked polls, wanted <= ${most}`);
  }
}

test('a parked poll is answered as soon as a message is sent over POST', async () => {
  const room = uniqueRoom('lp');
  await send(room, 'before', { name: 'bob' });
  const base = await parkedCount();
  // polls again after an answer without the message (its own presence)
  const p = new Poller([room], { name: 'carol', since: 1, timeout: 20 }).start();
  try {
    await waitParked(base + 1);
    const t0 = Date.now();
    const ack = await send(room, 'wake up', { name: 'bob', cid: 'w1' });
    await p.waitFor((x) => x.msgs.get(room).length >= 1, 5000, 'the message');
    const latency = Date.now() - t0;
    const msgs = p.msgs.get(room);
    assert.deepEqual(msgs.map((m) => [m.seq, m.text, m.user, m.cid]), [[2, 'wake up', '~bob', 'w1']]);
    assert.equal(msgs[0].ts, ack.json.ts);
    assert.equal(p.cursors.get(room), 2);
    assert.ok(latency < 2000, `answered ${latency} ms after the send`);
  } finally {
    await p.stop();
  }
});

test('a poll on several rooms wakes for any of them and keeps the others\' cursors', async () => {
  const a = uniqueRoom('lp');
  const b = uniqueRoom('lp');
  // (her own presence does not end the wait: issue 12, point 12)
  await pollOnce(`rooms=${a}:0,${b}:0&name=carol&timeout=0`);
  const base = await parkedCount();
  const poll = pollOnce(`rooms=${a}:0,${b}:0&name=carol&timeout=20`);
  await waitParked(base + 1);
  await send(b, 'in b', { name: 'bob' });
  const r = await poll;
  assert.deepEqual(r.json.events.filter((e) => e.op === 'msg').map((m) => m.text), ['in b']);
  assert.equal(r.json.cursor, `${a}:0,${b}:1`);
});

test('a parked poll whose browser left is freed at once, not at its timeout', async () => {
  // a room each: one poller's presence would wake the others' polls
  const rooms = Array.from({ length: 20 }, () => uniqueRoom('lp'));
  const room = rooms[0];
  const base = await parkedCount();
  const aborts = [];
  const polls = [];
  for (let i = 0; i < 20; i++) {
    const c = new AbortController();
    aborts.push(c);
    polls.push(pollOnce(`rooms=${rooms[i]}:0&name=u${i}&timeout=25`, { signal: c.signal }).catch(() => null));
  }
  await waitParked(base + 20);
  const t0 = Date.now();
  for (const c of aborts) c.abort();
  await Promise.all(polls);
  await waitParkedAtMost(base, 3000);
  assert.ok(Date.now() - t0 < 3000);
  // and the worker still answers the room's next poll normally
  await send(room, 'still fine', { name: 'bob' });
  const r = await pollOnce(`rooms=${room}:0&name=carol`);
  assert.deepEqual(r.json.events.filter((e) => e.op === 'msg').map((m) => m.text), ['still fine']);
});

test('presence: a long-poll user is online while it polls, offline 2 timeouts after', async () => {
  const room = `public-${uniqueRoom('pr')}`;
  const watcher = new Poller([room], { name: 'watcher', base: SMALL }).start();
  const poller = new Poller([room], { name: 'amy', base: SMALL }).start();
  try {
    const online = (w) => w.events.some((e) => e.op === 'presence' && e.online?.includes('~amy'));
    const offline = (w) => w.events.some((e) => e.op === 'presence' && e.offline?.includes('~amy'));
    await watcher.waitFor(online, 10000, 'amy online');
    // amy keeps polling through several 2 s timeouts: she stays online
    const polls = poller.polls;
    await poller.waitFor((p) => p.polls >= polls + 3, 15000, 'three more polls of amy');
    assert.equal(offline(watcher), false, 'offline while still polling');
    await poller.stop();
    const t0 = Date.now();
    // seen offline: by the watcher's event, or (when that event came while
    // the watcher was between two polls: presence is not kept for a poller
    // that is not parked) by the member list a page gets when it opens
    let n = 0;
    const gone = async () => offline(watcher) || (++n % 25 === 0 &&
      !(await pollOnce(`rooms=${room}&name=looker`, { base: SMALL })).json?.members?.[room]?.members.includes('~amy'));
    await waitUntil(gone, 12000, 'amy offline');
    const after = Date.now() - t0;
    assert.ok(after >= 1500, `offline after ${after} ms: too early`);
  } finally {
    await poller.stop();
    await watcher.stop();
  }
});

test('1,000 parked polls while others chat: chat stays gap-free, every poll wakes', async () => {
  const parkedRooms = Array.from({ length: 10 }, () => uniqueRoom('park'));
  const chatRoom = uniqueRoom('chat');
  const base = await parkedCount();
  // each client polls until its message comes, as the browser does (the
  // presence events of 1,000 users arriving also answer parked polls)
  let woke = 0;
  const clients = Array.from({ length: 1000 }, (_, i) => new Poller([parkedRooms[i % 10]], {
    name: `p${i}`, timeout: 25, since: 0,
  }));
  // All 1,000 are guests of 127.0.0.1, one address: its shared bucket
  // answers some of the re-polls 429, and they retry after a pause, as the
  // browser client does (web/chat-poll.js).
  const polls = clients.map(async (c) => {
    while (!c.msgs.get(c.cursors.keys().next().value).length) {
      try {
        await c.once();
      } catch (e) {
        if (e.r?.status !== 429) throw e;
        await new Promise((r) => setTimeout(r, 500 + Math.random() * 500)); // the client's pause
      }
    }
    woke++;
    return c;
  });
  // at least ours (a poll left parked by an earlier test may end meanwhile,
  // so base + 1000 could never be reached)
  await waitParked(Math.max(1000, base), 30000);
  const reader = new Poller([chatRoom], { name: 'reader' }).start();
  const senders = ['s1', 's2'].map(async (name) => {
    for (let i = 0; i < 50; i++) {
      const r = await send(chatRoom, `${name}-${i}`, { name, cid: `${name}-${i}` });
      assert.equal(r.status, 200, r.text);
    }
  });
  await Promise.all(senders);
  await reader.waitFor((p) => p.msgs.get(chatRoom).length >= 100, 20000, '100 chat messages');
  await reader.stop();
  assert.deepEqual(reader.errors, []);
  assert.deepEqual(reader.msgs.get(chatRoom).map((m) => m.seq), Array.from({ length: 100 }, (_, i) => i + 1));
  const t0 = Date.now();
  for (const room of parkedRooms) await send(room, `to ${room}`, { name: 'bob' });
  const done = await withTimeout(Promise.all(polls), 20000, '1000 parked polls answered');
  const wakeMs = Date.now() - t0;
  assert.equal(woke, 1000);
  for (let i = 0; i < 1000; i++) {
    assert.deepEqual(done[i].texts(parkedRooms[i % 10]), [`to ${parkedRooms[i % 10]}`], `poll ${i}`);
  }
  assert.ok(wakeMs < 10000, `1000 polls woke in ${wakeMs} ms`);
});

test('PostgreSQL stop/start while polls are parked: nothing is lost', { timeout: 120000 }, async () => {
  const room = uniqueRoom('pg');
  const readers = [new Poller([room], { name: 'r1', timeout: 5 }), new Poller([room], { name: 'r2', timeout: 5 })];
  await send(room, 'm0', { name: 'bob', cid: 'm0' });
  const base = await parkedCount();
  for (const r of readers) r.start();
  await Promise.all(readers.map((r) => r.waitFor((p) => p.msgs.get(room).length >= 1)));
  await waitParked(base + 2); // both readers parked when the database goes
  await stack('pg-stop');
  try {
    const down = await send(room, 'while down', { name: 'bob', cid: 'down-1' });
    assert.equal(down.status, 503, down.text);
    assert.equal(down.json.code, 'unavailable');
  } finally {
    await stack('pg-start');
  }
  // the client retries with the same cid until the database is back
  const acks = [];
  for (let i = 1; i <= 20; i++) {
    const r = await send(room, `m${i}`, { name: 'bob', cid: `m${i}`, retryMs: 30000 });
    assert.equal(r.status, 200, r.text);
    acks.push(r.json.seq);
  }
  const again = await send(room, 'while down', { name: 'bob', cid: 'down-1', retryMs: 30000 });
  assert.equal(again.status, 200);
  const total = 22;
  for (const r of readers) {
    await r.waitFor((p) => p.msgs.get(room).length >= total, 30000, `${r.name} catching up`);
  }
  for (const r of readers) await r.stop();
  for (const r of readers) {
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.msgs.get(room).map((m) => m.seq), Array.from({ length: total }, (_, i) => i + 1));
    const texts = r.texts(room);
    assert.equal(new Set(texts).size, total, 'every message exactly once');
  }
});
