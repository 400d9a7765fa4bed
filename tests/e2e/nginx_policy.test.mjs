// Identity and policy come from nginx only, on every location: a client
// cannot smuggle X-Chat-* headers (or the FastCGI CHAT_* parameters)
// through any endpoint, and each location carries the server's policy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, Client, uniqueRoom, portBase, withTimeout } from './lib.mjs';

const SMUGGLED = {
  'X-Chat-User': 'admin', 'X-Chat-Guests': 'on', 'X-Chat-Rooms': '*', 'X-Chat-Readonly': 'off',
  'X-Chat-Max-Text': '65536', 'X-Chat-Origins': 'https://evil.example',
  // what a naive FastCGI mapping would turn into CHAT_USER
  'Chat-User': 'admin', 'Chat_User': 'admin',
};

async function post(base, path, body, headers = {}) {
  const r = await fetch(base + path, {
    method: 'POST', headers: { 'content-type': 'application/json', ...SMUGGLED, ...headers },
    body: JSON.stringify(body),
  });
  return { status: r.status, json: r.status === 204 ? null : await r.json() };
}

test('send, poll, history and typing ignore client-sent policy headers', async () => {
  const room = uniqueRoom('smuggle');
  const ack = await post(BASE, 'send', { room, text: 'hi', cid: 'c1', name: 'eve' });
  assert.equal(ack.status, 200);
  const poll = await fetch(`${BASE}poll?rooms=${room}&name=eve`, { headers: { ...SMUGGLED, 'x-chat-request': '1' } });
  const events = (await poll.json()).events;
  assert.equal(events.find((e) => e.op === 'msg').user, '~eve', 'the sender is the guest, not "admin"');
  const hist = await fetch(`${BASE}history?room=${room}`, { headers: { ...SMUGGLED, 'x-chat-request': '1' } });
  assert.equal((await hist.json()).messages[0].user, '~eve');
  assert.equal((await post(BASE, 'typing', { room, name: 'eve' })).status, 204);
});

test('the WebSocket location ignores them too', async () => {
  const c = await Client.connect('name=eve', { headers: SMUGGLED });
  assert.equal((await c.op('hello')).user, '~eve');
  c.close();
});

test('an authenticated server: every endpoint needs the nginx user and speaks as it', async () => {
  const base = portBase(1);
  const auth = { Authorization: 'Basic ' + Buffer.from('bob:secret').toString('base64') };
  const room = uniqueRoom('auth');
  // no credentials: nginx answers 401 on every location
  for (const path of ['send', 'typing']) {
    const r = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(r.status, 401, path);
  }
  for (const path of ['poll?rooms=lobby', 'history?room=lobby', 'ws', '']) {
    assert.equal((await fetch(base + path)).status, 401, path);
  }
  const ack = await post(base, 'send', { room, text: 'as bob', cid: 'b1', name: 'mallory' }, auth);
  assert.equal(ack.status, 200);
  const hist = await (await fetch(`${base}history?room=${room}`, { headers: { ...auth, ...SMUGGLED, 'x-chat-request': '1' } })).json();
  assert.equal(hist.messages[0].user, 'bob');
  const c = await Client.connect('', { headers: { ...auth, ...SMUGGLED } }, portBase(1, 'ws'));
  assert.equal((await c.op('hello')).user, 'bob');
  c.close();
});

test('the restricted server applies its rooms and text limit on the HTTP endpoints', async () => {
  const base = portBase(2);
  assert.equal((await post(base, 'send', { room: 'secret', text: 'x', name: 'eve' })).status, 403);
  const big = await post(base, 'send', { room: 'lobby', text: 'x'.repeat(101), name: 'eve' });
  assert.equal(big.status, 413);
  assert.equal(big.json.code, 'too_large');
  assert.equal((await fetch(`${base}poll?rooms=secret&name=eve`, { headers: { 'x-chat-request': '1' } })).status, 403);
  assert.equal((await post(base, 'ro/send', { room: 'lobby', text: 'x', name: 'eve' })).status, 403);
});

test('a burst of 2000 WebSocket connects through nginx: every one upgraded, no 502', async () => {
  const n = 2000;
  const results = await withTimeout(Promise.allSettled(Array.from({ length: n }, (_, i) =>
    Client.connect(`name=burst${i}`).then(async (c) => { await c.op('hello', 30000); return c; }))),
  60000, 'the burst');
  const failed = results.filter((r) => r.status === 'rejected').map((r) => r.reason.message);
  assert.deepEqual(failed.slice(0, 5), []);
  const clients = results.map((r) => r.value);
  await Promise.all(clients.map((c) => { c.close(); return c.waitClose(30000); }));
});
