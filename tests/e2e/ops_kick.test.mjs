// chatctl (issue 11 item 6): `chatctl kick USER` ends every connection of
// that user, on WebSocket (every chat-ws worker) and on long-poll, through
// the database (chat_kick on channel chat_admin); another user is not
// touched, and the kicked user may come back. `chatctl ban/bans/unban`
// keep someone out and let them back. The tool is run as an admin would,
// with the database in DATABASE_URL or --db.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Client, DATABASE_URL, ROOT, portBase, uniqueRoom, withTimeout } from './lib.mjs';
import { pollOnce, parkedCount, request, waitUntil } from './lp_lib.mjs';

const AUTH = portBase(1);
const WS = portBase(1, 'ws');
const basic = (u) => ({ Authorization: 'Basic ' + Buffer.from(`${u}:secret`).toString('base64') });
const chatctl = (args, env = {}) => spawnSync(`${ROOT}/scripts/chatctl`, args,
  { encoding: 'utf8', timeout: 30000, env: { ...process.env, ...env } });

async function ws(user) {
  const c = await Client.connect('', { headers: basic(user) }, WS);
  const first = await c.next(() => true, 10000, 'hello or banned');
  return { c, first };
}

test('chatctl kick ends a user\'s WebSockets and long-poll everywhere; another user stays', async () => {
  const room = uniqueRoom('kick');
  const sockets = [];
  try {
    // alice on four sockets (the stack's chat-ws workers share them), bob on one
    for (let i = 0; i < 4; i++) {
      const { c, first } = await ws('alice');
      assert.equal(first.op, 'hello');
      c.send({ op: 'join', room });
      await c.op('joined');
      sockets.push(c);
    }
    const { c: bob } = await ws('bob');
    bob.send({ op: 'join', room });
    await bob.op('joined');
    bob.send({ op: 'send', room, text: 'before', ref: 'b0' });
    const seq = (await bob.next((e) => e.ref === 'b0')).seq; // the polls wait for what follows
    const parked0 = await parkedCount();
    const alicePoll = pollOnce(`rooms=${room}:${seq}&timeout=60`, { base: AUTH, headers: basic('alice') });
    const ctl = new AbortController();
    const bobPoll = pollOnce(`rooms=${room}:${seq}&timeout=60`, { base: AUTH, headers: basic('bob'), signal: ctl.signal })
      .catch(() => null);
    await waitUntil(async () => (await parkedCount()) >= parked0 + 2, 10000, 'both polls parked');

    const r = chatctl(['--db', DATABASE_URL, 'kick', 'alice']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /kicked alice/);

    for (const c of sockets) assert.equal((await c.waitClose()).code, 4001, 'closed as kicked');
    const p = await withTimeout(alicePoll, 10000, 'alice\'s parked poll ends');
    assert.equal(p.status, 200);
    assert.deepEqual(p.json.events, []);
    // bob: socket open and served, his poll still parked
    assert.equal(bob.closed, null);
    bob.send({ op: 'send', room, text: 'still here', ref: 'b1' });
    assert.equal((await bob.next((e) => e.ref === 'b1')).op, 'ack');
    // his poll ends with news (alice gone, his message), not a kick's empty answer
    const b = await withTimeout(bobPoll, 10000, 'bob\'s poll answered');
    assert.equal(b.status, 200);
    assert.ok(b.json.events.length > 0, JSON.stringify(b.json));
    // a kick keeps no one out
    const back = await ws('alice');
    assert.equal(back.first.op, 'hello');
    back.c.close();
    bob.close();
  } finally {
    for (const c of sockets) c.close();
  }
});

test('chatctl ban keeps a user out on both transports, bans lists it, unban lets them back', async () => {
  const room = uniqueRoom('ctlban');
  const env = { DATABASE_URL };
  let id = null;
  try {
    const { c } = await ws('alice');
    c.send({ op: 'join', room });
    await c.op('joined');
    const r = chatctl(['--by', 'ops', 'ban', 'alice', '--for', '1 hour', '--reason', 'ops test'], env);
    assert.equal(r.status, 0, r.stderr);
    id = r.stdout.match(/ban (\d+)/)?.[1];
    assert.ok(id, r.stdout);
    assert.equal((await c.waitClose()).code, 4003, 'her open socket closed as banned');
    const again = await ws('alice');
    assert.equal(again.first.code, 'banned');
    assert.equal(again.first.reason, 'ops test');
    const send = await request(AUTH, 'send', { method: 'POST', body: { room, text: 'x' }, headers: basic('alice') });
    assert.equal(send.status, 403);
    const list = chatctl(['bans'], env);
    assert.equal(list.status, 0, list.stderr);
    assert.ok(list.stdout.split('\n').some((l) => l.startsWith(`${id}\talice\t`) && l.endsWith('\tops\tops test')),
      list.stdout);
    const bob = await ws('bob');
    assert.equal(bob.first.op, 'hello', 'another user is served meanwhile');
    bob.c.close();

    const u = chatctl(['unban', id], env);
    assert.equal(u.status, 0, u.stderr);
    id = null;
    assert.equal(chatctl(['unban', '999999999'], env).status, 1, 'no such ban: exit 1');
    await waitUntil(async () => (await request(AUTH, 'send', {
      method: 'POST', body: { room, text: 'back' }, headers: basic('alice'),
    })).status === 200, 10000, 'alice sends again');
  } finally {
    if (id) chatctl(['unban', id], env);
  }
});

test('chatctl refuses bad names and unknown verbs before touching the database', () => {
  for (const args of [['kick', 'no spaces'], ['kick', "x'; DROP TABLE bans; --"], ['ban'], ['frob'], []]) {
    const r = chatctl(['--db', 'host=/nonexistent', ...args]);
    assert.equal(r.status, 2, `${JSON.stringify(args)}: ${r.stderr}`);
  }
});
