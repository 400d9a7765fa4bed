// Edit and delete over both doors, through nginx: authors edit and delete
// their own messages, a moderator ($chat_role moderator, the /chat/mod/
// location of tests/nginx.test.conf) deletes anyone's, everyone else is
// refused, and nothing a client sends makes it a moderator. Each change is
// an event with the room's next seq, so it reaches joined sockets live and
// a long-poll receiver that was away by its cursor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, portBase, uniqueRoom } from './lib.mjs';
import { pollOnce, request } from './lp_lib.mjs';

const AUTH = portBase(1);                 // alice, bob: authenticated users
const MOD = portBase(1) + 'mod/';         // mod: $chat_role moderator
const GUEST = portBase(2);                // guests, $chat_edit_window 0
const basic = (u) => ({ Authorization: 'Basic ' + Buffer.from(`${u}:secret`).toString('base64') });

async function ws(user, base = portBase(1, 'ws'), extra = {}) {
  const c = await Client.connect('', { headers: { ...basic(user), ...extra } }, base);
  await c.op('hello');
  return c;
}

async function ask(c, req) {
  const ref = Math.random().toString(36).slice(2);
  c.send({ ...req, ref });
  return c.next((e) => e.ref === ref && (e.op === 'ack' || e.op === 'error'), 10000, req.op);
}

async function history(c, room) {
  const ref = Math.random().toString(36).slice(2);
  c.send({ op: 'history', room, ref });
  return c.next((e) => e.ref === ref, 10000, 'history');
}

test('WebSocket: the author edits and deletes, a moderator deletes, others are refused', async () => {
  const room = uniqueRoom('mod');
  const alice = await ws('alice');
  const bob = await ws('bob', portBase(1, 'ws'), { 'X-Chat-Role': 'moderator' }); // grants nothing
  const mod = await ws('mod', MOD.replace(/^http/, 'ws'));
  try {
    bob.send({ op: 'join', room });
    await bob.op('joined');
    const sent = await ask(alice, { op: 'send', room, text: 'helo', cid: 's1' });
    assert.equal(sent.op, 'ack');
    const s = sent.seq;

    const edit = await ask(alice, { op: 'edit', room, seq: s, text: 'hello', cid: 'e1' });
    assert.equal(edit.op, 'ack', JSON.stringify(edit));
    assert.equal(edit.seq, s + 1);
    assert.equal(edit.cid, 'e1');
    const again = await ask(alice, { op: 'edit', room, seq: s, text: 'hello', cid: 'e1' });
    assert.equal(again.seq, edit.seq, 'a retry with the same cid answers the first ack');
    const live = await bob.next((e) => e.op === 'msg' && e.edit === s, 10000, 'edit event');
    assert.equal(live.seq, s + 1);
    assert.equal(live.text, 'hello');

    for (const req of [
      { op: 'edit', room, seq: s, text: 'bob was here' },
      { op: 'delete', room, seq: s },
    ]) {
      const e = await ask(bob, req);
      assert.equal(e.op, 'error');
      assert.equal(e.code, 'forbidden', `bob ${req.op} with a role header of his own`);
    }
    const modEdit = await ask(mod, { op: 'edit', room, seq: s, text: 'mod text' });
    assert.equal(modEdit.code, 'forbidden', 'only authors edit, moderators too');

    const del = await ask(mod, { op: 'delete', room, seq: s, cid: 'd1' });
    assert.equal(del.op, 'ack', JSON.stringify(del));
    assert.equal(del.seq, s + 2);
    const gone = await bob.next((e) => e.op === 'msg' && e.delete === s, 10000, 'delete event');
    assert.equal(gone.user, 'mod');

    const h = await history(bob, room);
    const m = h.messages.find((x) => x.seq === s);
    assert.equal(m.deleted, true);
    assert.equal(m.text, undefined, 'history never serves removed text');
    assert.ok(!JSON.stringify(h).includes('hello'), 'no version of the text is left');

    const twice = await ask(alice, { op: 'delete', room, seq: s });
    assert.equal(twice.code, 'not_found');
    const nowhere = await ask(alice, { op: 'edit', room, seq: 999999, text: 'x' });
    assert.equal(nowhere.code, 'not_found');
    const noSeq = await ask(alice, { op: 'delete', room });
    assert.equal(noSeq.code, 'bad_request');
  } finally {
    alice.close();
    bob.close();
    mod.close();
  }
});

test('WebSocket: read-only locations and a closed edit window refuse changes', async () => {
  const room = 'public-' + uniqueRoom('ro');
  const writer = await Client.connect('name=ann', {}, portBase(2, 'ws'));
  const ro = await Client.connect('name=ann', {}, portBase(2, 'ws') + 'ro/');
  try {
    await writer.op('hello');
    await ro.op('hello');
    const sent = await ask(writer, { op: 'send', room, text: 'typo' });
    assert.equal(sent.op, 'ack');
    const late = await ask(writer, { op: 'edit', room, seq: sent.seq, text: 'fixed' });
    assert.equal(late.code, 'too_late', '$chat_edit_window 0: authors may not change');
    const r = await ask(ro, { op: 'delete', room, seq: sent.seq });
    assert.equal(r.code, 'forbidden');
  } finally {
    writer.close();
    ro.close();
  }
});

test('HTTP: POST edit and delete with the same rules; an edit reaches a poller that was away', async () => {
  const room = uniqueRoom('modhttp');
  const post = (base, path, user, body, headers = {}) =>
    request(base, path, { method: 'POST', body, headers: { ...basic(user), ...headers } });
  const sent = await post(AUTH, 'send', 'alice', { room, text: 'first draft' });
  assert.equal(sent.status, 200, sent.text);
  const s = sent.json.seq;
  // a receiver that saw the message, then went away
  const before = await pollOnce(`rooms=${room}:${s}&timeout=1`, { base: AUTH, headers: basic('bob') });
  assert.equal(before.status, 200);

  const edit = await post(AUTH, 'edit', 'alice', { room, seq: s, text: 'final', cid: 'he1' });
  assert.equal(edit.status, 200, edit.text);
  assert.equal(edit.json.op, 'ack');
  assert.equal(edit.json.seq, s + 1);
  assert.equal(edit.json.cid, 'he1');

  const back = await pollOnce(`rooms=${room}:${s}`, { base: AUTH, headers: basic('bob') });
  assert.equal(back.status, 200);
  const ev = back.json.events.find((e) => e.edit === s);
  assert.ok(ev, `the edit reaches the poller by cursor: ${back.text}`);
  assert.equal(ev.text, 'final');

  const forged = await post(AUTH, 'delete', 'bob', { room, seq: s },
    { 'X-Chat-Role': 'moderator', 'Chat-Role': 'moderator' });
  assert.equal(forged.status, 403, 'a client-sent role grants nothing');
  assert.equal(forged.json.code, 'forbidden');
  const bobEdit = await post(AUTH, 'edit', 'bob', { room, seq: s, text: 'mine now' });
  assert.equal(bobEdit.status, 403);

  const del = await post(MOD, 'delete', 'mod', { room, seq: s });
  assert.equal(del.status, 200, del.text);
  assert.equal(del.json.seq, s + 2);
  const modAsAlice = await request(MOD, 'delete', { method: 'POST', body: { room, seq: s }, headers: basic('alice') });
  assert.equal(modAsAlice.status, 401, 'the moderators location takes moderators only');

  const hist = await request(AUTH, `history?room=${room}`, { headers: basic('bob') });
  const m = hist.json.messages.find((x) => x.seq === s);
  assert.equal(m.deleted, true);
  assert.ok(!hist.text.includes('final') && !hist.text.includes('first draft'));

  const again = await post(AUTH, 'delete', 'alice', { room, seq: s });
  assert.equal(again.status, 404);
  assert.equal(again.json.code, 'not_found');
  const bad = await post(AUTH, 'edit', 'alice', { room, seq: 'x', text: 'y' });
  assert.equal(bad.status, 400);
  const get = await request(AUTH, `edit?room=${room}`, { headers: basic('alice') });
  assert.equal(get.status, 405);
});

test('HTTP: read-only locations and a closed edit window refuse changes', async () => {
  const room = 'public-' + uniqueRoom('rohttp');
  const sent = await request(GUEST, 'send', { method: 'POST', body: { room, text: 'x', name: 'ann' } });
  assert.equal(sent.status, 200, sent.text);
  const late = await request(GUEST, 'delete', { method: 'POST', body: { room, seq: sent.json.seq, name: 'ann' } });
  assert.equal(late.status, 403);
  assert.equal(late.json.code, 'too_late');
  const ro = await request(GUEST + 'ro/', 'delete', { method: 'POST', body: { room, seq: sent.json.seq, name: 'ann' } });
  assert.equal(ro.status, 403);
  assert.equal(ro.json.code, 'forbidden');
});
