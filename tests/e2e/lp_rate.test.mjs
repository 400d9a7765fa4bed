// Rate limits of the long-poll side (docs/longpoll.md "Rate limits"): a
// client that floods gets 429 rate_limited and nothing stored for the
// refused sends, while everybody else goes on; the buckets are keyed so
// that a guest cannot drain another's by taking the same name. Through
// nginx at the stack's defaults (10 sends/s, burst 30), and straight to
// workers of the test's own with smaller numbers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { http, uniqueRoom } from './lib.mjs';
import { pollOnce, sanitizerReports, send, startWorker } from './lp_lib.mjs';

function assertLimited(r) {
  assert.equal(r.status, 429, r.text);
  assert.equal(r.json?.op, 'error', r.text);
  assert.equal(r.json.code, 'rate_limited', r.text);
  assert.equal(typeof r.json.message, 'string');
  assert.equal(r.headers.get('cache-control'), 'no-store');
}

async function stopClean(w) {
  const e = await w.stop();
  assert.equal(e.code, 0, w.log());
  assert.deepEqual(sanitizerReports(w.log()), []);
}

const unique = (p) => `${p}${process.pid % 10000}${Math.floor(Math.random() * 1e6)}`;

test('flood through nginx: 429 rate_limited past the burst, another guest unaffected, only accepted sends stored', async () => {
  const room = uniqueRoom('rate');
  const flooder = unique('fl');
  const other = unique('ot');
  const before = (await http('health/details')).json.backends.fcgi.rate_limited;
  const t0 = Date.now();
  const flood = Promise.all(Array.from({ length: 100 }, (_, i) =>
    send(room, `f${i}`, { name: flooder, cid: `f${i}`, limitedMs: 0 })));
  // the other guest sends one after the other while the flood goes on
  const calm = [];
  for (let i = 0; i < 5; i++) calm.push(await send(room, `o${i}`, { name: other, cid: `o${i}`, limitedMs: 0 }));
  const answers = await flood;
  const secs = (Date.now() - t0) / 1000;
  for (const r of calm) assert.equal(r.status, 200, `the other guest was limited: ${r.text}`);
  const accepted = answers.filter((r) => r.status === 200);
  const limited = answers.filter((r) => r.status !== 200);
  for (const r of limited) assertLimited(r);
  assert.ok(accepted.length >= 30, `burst of 30 honoured (${accepted.length} accepted)`);
  assert.ok(accepted.length <= 30 + Math.ceil(secs * 10) + 1, `${accepted.length} accepted in ${secs} s`);
  assert.ok(limited.length > 0, 'some sends refused');
  // exactly the acked sends are stored, gap-free
  const h = await http(`history?room=${room}&limit=200`);
  assert.equal(h.status, 200);
  const stored = h.json.messages;
  assert.deepEqual(stored.map((m) => m.seq), Array.from({ length: stored.length }, (_, i) => i + 1));
  assert.deepEqual(stored.filter((m) => m.user === `~${flooder}`).map((m) => m.cid).sort(),
    accepted.map((r) => r.json.cid).sort());
  assert.deepEqual(stored.filter((m) => m.user === `~${other}`).map((m) => m.text), ['o0', 'o1', 'o2', 'o3', 'o4']);
  const after = (await http('health/details')).json.backends.fcgi.rate_limited;
  assert.ok(after - before >= limited.length, `health counts refusals (${before} -> ${after})`);
  // the bucket refills: the flooder may send again a little later
  const again = await send(room, 'later', { name: flooder, cid: 'later', limitedMs: 5000 });
  assert.equal(again.status, 200, again.text);
});

test('poll, history and typing floods are refused too; a refused send stores nothing', async () => {
  // 1 request a second, burst 6; sends 1 a second, burst 2
  const w = await startWorker(['--req-rate', '1', '--req-burst', '6', '--send-rate', '1', '--send-burst', '2']);
  try {
    const room = uniqueRoom('rate');
    const who = { REMOTE_ADDR: '192.0.2.10' };
    const t0 = Date.now();
    const a = [
      await w.request(`poll?rooms=${room}&name=pat`, { params: who }),
      await w.request(`history?room=${room}&name=pat`, { params: who }),
      await w.request('typing', { body: { room, name: 'pat' }, params: who }),
      await w.request('send', { body: { room, text: 's1', cid: 's1', name: 'pat' }, params: who }),
      await w.request('send', { body: { room, text: 's2', cid: 's2', name: 'pat' }, params: who }),
      await w.request('send', { body: { room, text: 's3', cid: 's3', name: 'pat' }, params: who }),
    ];
    const secs = (Date.now() - t0) / 1000;
    assert.deepEqual(a.map((r) => r.status), [200, 200, 204, 200, 200, 429]);
    assert.equal(a[5].json.code, 'rate_limited');
    assert.match(a[5].json.message, /messages/);
    // the request bucket: one left (6 - 5 taken) plus what came back meanwhile
    const more = [];
    for (let i = 0; i < 3; i++) more.push(await w.request(`history?room=${room}&name=pat`, { params: who }));
    if (secs + (Date.now() - t0) / 1000 < 1) {
      assert.deepEqual(more.map((r) => r.status), [200, 429, 429]);
    }
    assert.equal(more[2].status, 429);
    assert.match(more[2].json.message, /requests/);
    for (const target of [`poll?rooms=${room}&name=pat`]) {
      const r = await w.request(target, { params: who });
      assert.equal(r.status, 429, r.text);
    }
    const t = await w.request('typing', { body: { room, name: 'pat' }, params: who });
    assert.equal(t.status, 429);
    // only s1 and s2 are in the room (read as someone else)
    const h = await w.request(`history?room=${room}`, { params: { REMOTE_ADDR: '192.0.2.99' } });
    assert.deepEqual(h.json.messages.map((m) => m.cid), ['s1', 's2']);
    // other clients were never touched
    const o = await w.request('send', { body: { room, text: 'x', name: 'quinn' }, params: who });
    assert.equal(o.status, 200, o.text);
    assert.ok((await w.health()).rate_limited >= 4);
  } finally {
    await stopClean(w);
  }
});

test('a guest name at another address has buckets of its own; a user has one wherever it is', async () => {
  const w = await startWorker(['--send-rate', '0.5', '--send-burst', '2']);
  try {
    const room = uniqueRoom('rate');
    const sendAs = (name, addr, cid, extra = {}) => w.request('send', {
      body: { room, text: cid, cid, name }, params: { REMOTE_ADDR: addr, ...extra },
    });
    // mallory at .66 drains "~bob" there ...
    const drained = [];
    for (let i = 0; i < 3; i++) drained.push((await sendAs('bob', '198.51.100.66', `m${i}`)).status);
    assert.deepEqual(drained, [200, 200, 429]);
    // ... the real bob, elsewhere, is unaffected
    assert.equal((await sendAs('bob', '198.51.100.7', 'b0')).status, 200);
    assert.equal((await sendAs('bob', '198.51.100.7', 'b1')).status, 200);
    // an authenticated user is one client whatever its address (nginx vouches for it)
    const alice = { CHAT_USER: 'alice' };
    assert.equal((await sendAs('x', '203.0.113.1', 'a0', alice)).status, 200);
    assert.equal((await sendAs('x', '203.0.113.2', 'a1', alice)).status, 200);
    assertLimited(await sendAs('x', '203.0.113.3', 'a2', alice));
    const h = await w.request(`history?room=${room}`);
    assert.deepEqual(h.json.messages.map((m) => `${m.user}:${m.cid}`),
      ['~bob:m0', '~bob:m1', '~bob:b0', '~bob:b1', 'alice:a0', 'alice:a1']);
  } finally {
    await stopClean(w);
  }
});

test('--guest-addr-factor: guests of one address share a bigger bucket, other addresses unaffected', async () => {
  const w = await startWorker(['--send-rate', '0.5', '--send-burst', '2', '--guest-addr-factor', '2']);
  try {
    const room = uniqueRoom('rate');
    const sendAs = (name, addr, cid) => w.request('send', {
      body: { room, text: cid, cid, name }, params: { REMOTE_ADDR: addr },
    });
    const got = [];
    // name rotation at one address: 2 x 2 sends, then refused whatever the name
    for (const name of ['r1', 'r1', 'r2', 'r2', 'r3', 'r4']) got.push((await sendAs(name, '192.0.2.50', `${name}-${got.length}`)).status);
    assert.deepEqual(got, [200, 200, 200, 200, 429, 429]);
    assert.equal((await sendAs('r3', '192.0.2.51', 'elsewhere')).status, 200);
    const h = await w.request(`history?room=${room}`);
    assert.equal(h.json.messages.length, 5);
  } finally {
    await stopClean(w);
  }
});

test('IPv6: a guest that changes address within its /64 keeps its buckets; another /64 and an IPv4-mapped spelling are what they are', async () => {
  // one send per 20 s: nothing refills while the test runs
  const w = await startWorker(['--send-rate', '0.05', '--send-burst', '2', '--guest-addr-factor', '2']);
  try {
    const room = uniqueRoom('rate6');
    const sendAs = (name, addr, cid) => w.request('send', {
      body: { room, text: cid, cid, name }, params: { REMOTE_ADDR: addr },
    });
    // the same name from a new address of 2001:db8:0:7::/64 each time
    const got = [];
    for (let i = 1; i <= 3; i++) got.push((await sendAs('six', `2001:db8:0:7::${i.toString(16)}`, `s${i}`)).status);
    assert.deepEqual(got, [200, 200, 429], 'one guest name: one bucket across its /64');
    // new names and new addresses of the /64: the address bucket (2 x 2) holds
    const rot = [];
    for (let i = 0; i < 4; i++) rot.push((await sendAs(`rot${i}`, `2001:db8:0:7:${(i + 1).toString(16)}::abcd`, `r${i}`)).status);
    assert.deepEqual(rot, [200, 200, 429, 429], 'names and addresses rotated within one /64');
    // the neighbouring /64 is somebody else: served
    assert.equal((await sendAs('six', '2001:db8:0:8::1', 'next64')).status, 200);
    // an IPv4 client seen as ::ffff:a.b.c.d is that IPv4 client
    assert.equal((await sendAs('v4', '192.0.2.60', 'm0')).status, 200);
    assert.equal((await sendAs('v4', '::ffff:192.0.2.60', 'm1')).status, 200);
    assertLimited(await sendAs('v4', '::ffff:c000:23c', 'm2'));
    const h = await w.request(`history?room=${room}`, { params: { REMOTE_ADDR: '203.0.113.9' } });
    assert.deepEqual(h.json.messages.map((m) => m.cid), ['s1', 's2', 'r0', 'r1', 'next64', 'm0', 'm1']);
  } finally {
    await stopClean(w);
  }
});

test('the table is bounded: a full one forgets its least recently used clients, never refuses a newcomer', async () => {
  // 64 entries (8 sets of 8); one send per 10 s, burst 1; the newcomers are
  // guests of one address: no address bucket here (--guest-addr-factor 0),
  // nor a bound on its new names (--max-guests-per-addr 0, lp_hostile_guests)
  const w = await startWorker(['--rate-table', '64', '--send-rate', '0.1', '--send-burst', '1', '--guest-addr-factor', '0',
    '--max-guests-per-addr', '0']);
  try {
    const room = uniqueRoom('rate');
    const sendAs = (name, cid) => w.request('send', { body: { room, text: cid, cid, name } });
    assert.equal((await sendAs('first', 'a1')).status, 200);
    assert.equal((await sendAs('first', 'a2')).status, 429);
    for (let k = 0; k < 10; k++) {
      const batch = await Promise.all(Array.from({ length: 50 }, (_, i) => sendAs(`n${k}-${i}`, `n${k}-${i}`)));
      assert.deepEqual([...new Set(batch.map((r) => r.status))], [200], 'newcomers are served');
    }
    // 500 newcomers went through 8 sets: "first" was forgotten, full again
    const again = await sendAs('first', 'a3');
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.seq, 502, 'a1, the 500 newcomers and a3 stored; a2 not');
  } finally {
    await stopClean(w);
  }
});

test('rate options are checked at start', async () => {
  for (const bad of [['--send-rate', '-1'], ['--req-burst', '0'], ['--send-rate', 'fast'], ['--rate-table', '1']]) {
    await assert.rejects(startWorker(bad), /exited \{"code":2/);
  }
});

test('the limits are per client: 150 guests polling at once through nginx are all served', async () => {
  const room = uniqueRoom('rate');
  await send(room, 'one', { name: unique('p') });
  const tag = unique('g');
  const polls = await Promise.all(Array.from({ length: 150 }, (_, i) =>
    pollOnce(`rooms=${room}&name=${tag}-${i}&timeout=0`)));
  assert.deepEqual([...new Set(polls.map((r) => r.status))], [200]);
  for (const r of polls) assert.deepEqual(r.json.events.map((e) => e.text), ['one']);
});
