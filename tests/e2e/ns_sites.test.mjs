// Namespaces (issue 12, point 13): two sites served by the same daemons
// and database, each with its own $chat_namespace (tests/nginx.test.conf:
// guests at PORT + 10, signed-in users at PORT + 11), use the same room
// name and see nothing of each other: messages, history, search, presence,
// members, typing, on WebSocket, long-poll, SSE and the HTML pages; and
// within a site everything still flows, on every door. Without a
// namespace (the servers at PORT and PORT + 1) the rooms are shared, as
// before: the attack of the issue, kept as the default.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, WS_BASE, pgClient, portBase, uniqueRoom, waitUntil, wsSend } from './lib.mjs';
import { pollOnce, request } from './lp_lib.mjs';

const GUESTS = portBase(10);
const MEMBERS = portBase(11);
const basic = (u) => ({ Authorization: 'Basic ' + Buffer.from(`${u}:secret`).toString('base64') });

async function member(user) {
  const c = await Client.connect('', { headers: basic(user) }, portBase(11, 'ws'));
  await c.op('hello');
  return c;
}

async function guest(name, base = portBase(10, 'ws'), headers = {}) {
  const c = await Client.connect(`name=${name}`, { headers }, base);
  await c.op('hello');
  return c;
}

async function join(c, room) {
  c.send({ op: 'join', room, since: 0 });
  return c.next((e) => e.op === 'joined' && e.room === room, 10000, `joined ${room}`);
}

async function members(c, room) {
  c.send({ op: 'members', room });
  return c.next((e) => e.op === 'members' && e.room === room, 10000, 'members');
}

// An SSE stream up to its ready event: every byte the client got.
async function sseToReady(base, query, headers = {}) {
  const ctl = new AbortController();
  const res = await fetch(`${base}events?${query}`, { signal: ctl.signal, headers: { accept: 'text/event-stream', ...headers } });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  let text = '';
  try {
    while (!text.includes('"op":"ready"')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString('utf8');
    }
  } finally {
    ctl.abort();
  }
  return text;
}

const texts = (c) => c.events.filter((e) => e.op === 'msg').map((e) => e.text);
// Waits for a message event matching pred, leaving it in the client's queue.
const has = (c, pred, what) => waitUntil(() => c.events.find((e) => e.op === 'msg' && pred(e)), 10000, what);

test('two sites in namespaces of their own, same room name: nothing crosses, on any door', async () => {
  const room = uniqueRoom('ns');
  const db = await pgClient();
  await db.connect();
  const seen = []; // every text a client of either site was given
  // first a guest of the shared namespace, whose location's policy is the
  // guests' site's in all but the namespace (chat-ws keeps one copy of
  // each distinct policy, per worker: the namespace must tell them apart;
  // a few, so that every worker has one; tests/unit/test_policy.c
  // test_same checks every field without depending on that)
  const shared = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => guest(`s${i}`, WS_BASE)));
  const alice = await member('alice');
  const bob = await member('bob');
  const g = await guest('g');
  const g2 = await guest('g2');
  try {
    await join(alice, room);
    await join(bob, room);
    const a1 = await wsSend(alice, room, `secret-${room}`, 'a1');
    assert.equal(a1.seq, 1);
    assert.equal(a1.room, room);
    await has(bob, (e) => e.seq === 1, 'bob gets alice');

    // the guests' room of the same name is another room: empty, no alice
    const gj = await join(g, room);
    assert.equal(gj.seq, 0);
    assert.ok(!gj.members.includes('alice') && !gj.members.includes('bob'), JSON.stringify(gj));
    await join(g2, room);
    const g1 = await wsSend(g, room, 'hello from a guest', 'g1');
    assert.equal(g1.seq, 1, 'a sequence of its own');
    assert.equal((await has(g2, (e) => e.seq === 1, 'g2 gets g')).text, 'hello from a guest');

    // alice's next message is heard after the guest's (commit order): had the
    // guest's crossed, alice would have it queued before her own
    await wsSend(alice, room, `secret2-${room}`, 'a2');
    await has(alice, (e) => e.seq === 2, 'alice own second');
    assert.deepEqual(texts(alice), [`secret-${room}`, `secret2-${room}`]);

    // typing: bob sees alice's; the guests' marker comes after it on the bus
    alice.send({ op: 'typing', room });
    const t = await bob.next((e) => e.op === 'typing', 10000, 'bob sees alice typing');
    assert.deepEqual(t, { op: 'typing', room, user: 'alice' });
    await wsSend(g, room, 'marker', 'g2');
    await has(g2, (e) => e.text === 'marker', 'g2 marker');
    assert.deepEqual(texts(g2), ['hello from a guest', 'marker']);
    assert.ok(!g2.events.some((e) => e.op === 'typing' || e.op === 'presence' && JSON.stringify(e).includes('alice')),
      JSON.stringify(g2.events));

    // presence: each site's members only, also once the database has them
    await waitUntil(async () => (await db.query(
      "SELECT 1 FROM presence WHERE room = $1 AND member = '~g'", [`guests-site:${room}`])).rowCount > 0, 10000,
    'the guest stored online');
    await waitUntil(async () => (await db.query(
      "SELECT 1 FROM presence WHERE room = $1 AND member = 'alice'", [`members-site:${room}`])).rowCount > 0, 10000,
    'alice stored online');
    const gm = await members(g, room);
    assert.deepEqual(gm.members, ['~g', '~g2']);
    const am = await members(alice, room);
    assert.deepEqual(am.members, ['alice', 'bob']);

    // long-poll, SSE, history, search and the HTML page of the guests' site
    const poll = await pollOnce(`rooms=${room}:0&name=p&timeout=1`, { base: GUESTS });
    assert.equal(poll.status, 200, poll.text);
    assert.deepEqual(poll.json.events.filter((e) => e.op === 'msg').map((e) => e.text), ['hello from a guest', 'marker']);
    assert.match(poll.json.cursor, new RegExp(`^${room}:2$`));
    seen.push(poll.text);
    const sse = await sseToReady(GUESTS, `rooms=${room}:0&name=s`);
    assert.match(sse, /hello from a guest/);
    seen.push(sse);
    const hist = await request(GUESTS, `history?room=${room}`);
    assert.equal(hist.status, 200, hist.text);
    assert.deepEqual(hist.json.messages.map((m) => m.text), ['hello from a guest', 'marker']);
    seen.push(hist.text);
    const found = await request(GUESTS, `search?room=${room}&q=secret`);
    assert.equal(found.status, 200, found.text);
    assert.deepEqual(found.json.messages, []);
    const page = await (await fetch(`${GUESTS}basic/room?r=${room}`)).text();
    assert.match(page, /hello from a guest/);
    seen.push(page);
    // and the members' site reads its own
    const mh = await request(MEMBERS, `history?room=${room}`, { headers: basic('bob') });
    assert.deepEqual(mh.json.messages.map((m) => m.text), [`secret-${room}`, `secret2-${room}`]);
    seen.push(mh.text);

    for (const c of [alice, bob, g, g2]) seen.push(JSON.stringify(c.events));
    for (const s of seen) {
      assert.ok(!s.includes('guests-site') && !s.includes('members-site'), `a namespace shown to a client: ${s}`);
    }
    for (const s of [poll.text, sse, hist.text, page, JSON.stringify(g.events), JSON.stringify(g2.events)]) {
      assert.ok(!s.includes('secret') && !s.includes('alice'), `the members' site leaked to guests: ${s}`);
    }

    // one room per namespace in the table, none in the shared one
    const rows = (await db.query('SELECT name, last_seq FROM rooms WHERE name LIKE $1 ORDER BY name', [`%${room}`])).rows;
    assert.deepEqual(rows.map((r) => [r.name, Number(r.last_seq)]),
      [[`guests-site:${room}`, 2], [`members-site:${room}`, 2]]);
  } finally {
    for (const c of [...shared, alice, bob, g, g2]) c.close();
    await db.end();
  }
});

test('a namespaced site on long-poll and SSE: its own messages and typing arrive, with the room as the client named it', async () => {
  const room = uniqueRoom('nslp');
  const w = await guest('w');
  try {
    await join(w, room);
    // a parked poll is woken by a WebSocket guest's message (the bus line
    // carries the namespace; the event the poller gets does not)
    const parked = pollOnce(`rooms=${room}:0&name=lp&timeout=20`, { base: GUESTS });
    await waitUntil(async () => {
      const h = await request(GUESTS, `history?room=${room}`);
      return h.status === 200;
    }, 5000, 'site up');
    await wsSend(w, room, 'to the poller', 'w1');
    let got = await parked;
    // the first answer may be the poller's own presence: poll on from its cursor
    for (let n = 0; !got.json.events.some((e) => e.op === 'msg'); n++) {
      assert.ok(n < 3, `no message for the poller: ${got.text}`);
      got = await pollOnce(`rooms=${got.json.cursor}&name=lp&timeout=20`, { base: GUESTS });
    }
    const msg = got.json.events.find((e) => e.op === 'msg');
    assert.equal(msg.room, room);
    assert.equal(msg.text, 'to the poller');
    // a long-poll guest types: the WebSocket guest of the same site sees it
    const typed = await request(GUESTS, 'typing', { method: 'POST', body: { room, name: 'lp' } });
    assert.equal(typed.status, 204, typed.text);
    assert.deepEqual(await w.next((e) => e.op === 'typing', 10000, 'typing'), { op: 'typing', room, user: '~lp' });
    // a long-poll send is the next seq of the site's room
    const sent = await request(GUESTS, 'send', { method: 'POST', body: { room, name: 'lp', text: 'back', cid: 'l1' } });
    assert.equal(sent.status, 200, sent.text);
    assert.equal(sent.json.seq, 2);
    assert.equal(sent.json.room, room);
    assert.equal((await w.next((e) => e.op === 'msg' && e.seq === 2, 10000, 'lp send')).text, 'back');
  } finally {
    w.close();
  }
});

test('a client cannot pick a namespace: not with a room name, not with a header', async () => {
  const room = uniqueRoom('nsx');
  const alice = await member('alice');
  try {
    await join(alice, room);
    await wsSend(alice, room, `members only ${room}`, 'x1');
    // a room name with the namespace in it is not a room name
    const g = await guest('x');
    g.send({ op: 'join', room: `members-site:${room}`, ref: 1 });
    const err = await g.next((e) => e.op === 'error', 10000, 'error');
    assert.equal(err.code, 'bad_request');
    g.close();
    const h = await request(GUESTS, `history?room=members-site:${room}`);
    assert.equal(h.status, 400, h.text);
    // X-Chat-Namespace from the client: nginx sets its own on every request
    const spoof = { 'X-Chat-Namespace': 'members-site' };
    const s = await guest('y', portBase(10, 'ws'), spoof);
    const sj = await join(s, room);
    assert.equal(sj.seq, 0, JSON.stringify(sj));
    s.close();
    const d = await guest('z', WS_BASE, spoof);
    assert.equal((await join(d, room)).seq, 0);
    d.close();
    for (const base of [GUESTS, portBase(0)]) {
      const r = await request(base, `history?room=${room}`, { headers: { ...spoof, 'X-Chat-Namespace-': 'members-site' } });
      assert.equal(r.status, 200, r.text);
      assert.ok(!r.text.includes('members only'), r.text);
    }
  } finally {
    alice.close();
  }
});

test('without a namespace the sites share their rooms (the default, as before namespaces)', async () => {
  const room = uniqueRoom('nsd');
  const alice = await Client.connect('', { headers: basic('alice') }, portBase(1, 'ws'));
  try {
    await alice.op('hello');
    await wsSend(alice, room, 'shared by default', 'd1');
    const h = await request(portBase(0), `history?room=${room}`);
    assert.deepEqual(h.json.messages.map((m) => m.text), ['shared by default']);
  } finally {
    alice.close();
  }
});
