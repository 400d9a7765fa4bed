// Bans and kicks, enforced by both daemons through nginx: a ban (made in
// the database, announced on channel chat_admin) ends the banned user's
// open WebSockets and parked polls at once, refuses their joins, sends and
// polls with "banned" (until, reason), leaves everyone else served, and an
// unban lets them back. Every ban a test makes is lifted in its finally.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, pgClient, portBase, uniqueRoom, withTimeout } from './lib.mjs';
import { pollOnce, request, waitUntil, parkedCount } from './lp_lib.mjs';

const AUTH = portBase(1);
const WS = portBase(1, 'ws');
const basic = (u) => ({ Authorization: 'Basic ' + Buffer.from(`${u}:secret`).toString('base64') });

async function ws(user, query = '', base = WS) {
  const c = await Client.connect(query, { headers: user ? basic(user) : {} }, base);
  const first = await c.next(() => true, 10000, 'hello or banned');
  return { c, first };
}

async function ask(c, req) {
  const ref = Math.random().toString(36).slice(2);
  c.send({ ...req, ref });
  return c.next((e) => e.ref === ref, 10000, req.op);
}

async function withDb(fn) {
  const db = await pgClient();
  await db.connect();
  try { return await fn(db); } finally { await db.end(); }
}

// A new WebSocket of user is served again (the unban was heard everywhere).
async function servedAgain(user, query, base) {
  return waitUntil(async () => {
    const { c, first } = await ws(user, query, base);
    c.close();
    return first.op === 'hello';
  }, 10000, `${user || query} served again`);
}

test('a ban ends the user\'s sockets and parked poll, refuses them, spares others; unban lets them back', async () => {
  const room = uniqueRoom('ban');
  const sockets = [];
  let banId = null;
  try {
    // alice on several sockets (the stack runs two chat-ws workers), bob on one
    for (let i = 0; i < 4; i++) {
      const { c, first } = await ws('alice');
      assert.equal(first.op, 'hello');
      c.send({ op: 'join', room });
      await c.op('joined');
      sockets.push(c);
    }
    const { c: bob } = await ws('bob');
    sockets.push(bob);
    bob.send({ op: 'join', room });
    await bob.op('joined');
    const sent = await ask(bob, { op: 'send', room, text: 'before' });
    const parked0 = await parkedCount();
    // alice polls as the client does: a presence event (bob's join reaching
    // the database) may answer a poll; she polls again until the ban ends it
    const poll = (async () => {
      for (;;) {
        const r = await pollOnce(`rooms=${room}:${sent.seq}&timeout=60`, { base: AUTH, headers: basic('alice') });
        if (r.status !== 200 || r.json.events.some((e) => e.op === 'msg')) return r;
      }
    })();
    await waitUntil(async () => (await parkedCount()) > parked0, 10000, 'alice\'s poll parked');

    banId = await withDb(async (db) => (await db.query(
      "SELECT chat_ban('alice', NULL, interval '1 hour', 'mod', 'spam links') AS id")).rows[0].id);

    for (const c of sockets.slice(0, 4)) {
      const e = await c.next((x) => x.op === 'error', 10000, 'banned error');
      assert.equal(e.code, 'banned');
      assert.equal(e.reason, 'spam links');
      assert.match(e.until, /^\d{4}-\d\d-\d\dT/);
      const closed = await c.waitClose();
      assert.equal(closed.code, 4003);
    }
    const p = await withTimeout(poll, 10000, 'the parked poll ends');
    assert.equal(p.status, 403);
    assert.equal(p.json.code, 'banned');
    assert.equal(p.json.reason, 'spam links');

    // bob is still served, on both doors
    const ok = await ask(bob, { op: 'send', room, text: 'still here' });
    assert.equal(ok.op, 'ack');
    assert.equal(bob.closed, null);

    // alice is refused everywhere while banned
    const again = await ws('alice');
    assert.equal(again.first.code, 'banned');
    assert.equal((await again.c.waitClose()).code, 4003);
    const send = await request(AUTH, 'send', { method: 'POST', body: { room, text: 'x' }, headers: basic('alice') });
    assert.equal(send.status, 403);
    assert.equal(send.json.code, 'banned');
    const poll2 = await pollOnce(`rooms=${room}`, { base: AUTH, headers: basic('alice') });
    assert.equal(poll2.status, 403);

    await withDb((db) => db.query('SELECT chat_unban($1, $2)', [banId, 'mod']));
    banId = null;
    await servedAgain('alice', '', WS);
    await waitUntil(async () => (await request(AUTH, 'send', {
      method: 'POST', body: { room, text: 'back' }, headers: basic('alice'),
    })).status === 200, 10000, 'alice sends again');
  } finally {
    for (const c of sockets) c.close();
    if (banId) await withDb((db) => db.query('SELECT chat_unban($1, $2)', [banId, 'mod']));
  }
});

test('an address ban refuses guests from that address; a kick ends connections without a ban', async () => {
  const room = uniqueRoom('banaddr');
  let banId = null;
  const { c: guest } = await ws(null, 'name=carl', portBase(0, 'ws'));
  try {
    guest.send({ op: 'join', room });
    await guest.op('joined');
    banId = await withDb(async (db) => (await db.query(
      "SELECT chat_ban(NULL, '127.0.0.0/8', interval '1 minute', 'mod', 'flood') AS id")).rows[0].id);
    const e = await guest.next((x) => x.op === 'error', 10000, 'banned error');
    assert.equal(e.code, 'banned');
    assert.equal((await guest.waitClose()).code, 4003);
    const other = await ws(null, 'name=dora', portBase(0, 'ws'));
    assert.equal(other.first.code, 'banned', 'any name from that address');
    const send = await request(portBase(0), 'send', { method: 'POST', body: { room, text: 'x', name: 'dora' } });
    assert.equal(send.status, 403);
    await withDb((db) => db.query('SELECT chat_unban($1, $2)', [banId, 'mod']));
    banId = null;
    await servedAgain(null, 'name=dora', portBase(0, 'ws'));

    const { c: erin, first } = await ws(null, 'name=erin', portBase(0, 'ws'));
    assert.equal(first.op, 'hello');
    await withDb((db) => db.query("SELECT chat_kick('~erin', 'mod')"));
    assert.equal((await erin.waitClose()).code, 4001);
    const back = await ws(null, 'name=erin', portBase(0, 'ws'));
    assert.equal(back.first.op, 'hello', 'a kick keeps no one out');
    back.c.close();
  } finally {
    guest.close();
    if (banId) await withDb((db) => db.query('SELECT chat_unban($1, $2)', [banId, 'mod']));
  }
});

test('moderators ban, list and unban over both doors; nobody else can', async () => {
  const room = uniqueRoom('banop');
  const MODWS = portBase(1, 'ws') + 'mod/';
  const MOD = portBase(1) + 'mod/';
  const { c: mod, first } = await ws('mod', '', MODWS);
  assert.equal(first.op, 'hello');
  const { c: alice } = await ws('alice');
  const { c: bob } = await Client.connect('', { headers: { ...basic('bob'), 'X-Chat-Role': 'moderator' } }, WS)
    .then(async (c) => { await c.op('hello'); return { c }; });
  let banId = null;
  try {
    alice.send({ op: 'join', room });
    await alice.op('joined');
    for (const req of [{ op: 'ban', user: 'alice', reason: 'x' }, { op: 'bans' }, { op: 'unban', id: 1 }]) {
      const e = await ask(bob, req);
      assert.equal(e.code, 'forbidden', `bob's ${req.op} with his own role header`);
    }
    const forged = await request(AUTH, 'ban', {
      method: 'POST', body: { user: 'alice' }, headers: { ...basic('bob'), 'X-Chat-Role': 'moderator' },
    });
    assert.equal(forged.status, 403);
    const bad = await ask(mod, { op: 'ban', addr: '300.1.2.3' });
    assert.equal(bad.code, 'bad_request');
    const none = await ask(mod, { op: 'ban', reason: 'nobody' });
    assert.equal(none.code, 'bad_request');

    const ban = await ask(mod, { op: 'ban', user: 'alice', for: 600, reason: 'rude' });
    assert.equal(ban.op, 'ban', JSON.stringify(ban));
    banId = ban.id;
    const e = await alice.next((x) => x.op === 'error', 10000, 'banned error');
    assert.equal(e.code, 'banned');
    assert.equal(e.reason, 'rude');
    assert.equal((await alice.waitClose()).code, 4003);

    const list = await ask(mod, { op: 'bans' });
    const mine = list.bans.find((b) => b.id === banId);
    assert.equal(mine.user, 'alice');
    assert.equal(mine.by, 'mod');
    assert.equal(mine.reason, 'rude');
    const listHttp = await request(MOD, 'bans', { headers: basic('mod') });
    assert.equal(listHttp.status, 200);
    assert.ok(listHttp.json.bans.some((b) => b.id === banId));
    assert.equal((await request(AUTH, 'bans', { headers: basic('bob') })).status, 403);

    const un = await request(MOD, 'unban', { method: 'POST', body: { id: banId }, headers: basic('mod') });
    assert.equal(un.status, 200, un.text);
    assert.equal(un.json.lifted, true);
    banId = null;
    await servedAgain('alice', '', WS);
    const twice = await request(MOD, 'unban', { method: 'POST', body: { id: un.json.id }, headers: basic('mod') });
    assert.equal(twice.json.lifted, false);

    // and a ban over HTTP ends a WebSocket too
    const { c: alice2 } = await ws('alice');
    const hb = await request(MOD, 'ban', { method: 'POST', body: { user: 'alice', reason: 'again' }, headers: basic('mod') });
    assert.equal(hb.status, 200, hb.text);
    banId = hb.json.id;
    assert.equal((await alice2.waitClose()).code, 4003);
    const un2 = await ask(mod, { op: 'unban', id: banId });
    assert.equal(un2.lifted, true);
    banId = null;
  } finally {
    mod.close();
    alice.close();
    bob.close();
    if (banId) await withDb((db) => db.query('SELECT chat_unban($1, $2)', [banId, 'mod']));
  }
});
