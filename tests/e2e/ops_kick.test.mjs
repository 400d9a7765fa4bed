// chatctl (issue 11 item 6): `chatctl kick USER` ends every connection of
// that user, on WebSocket (every chat-ws worker) and on long-poll, through
// the database (chat_kick on channel chat_admin); another user is not
// touched, and the kicked user may come back. `chatctl ban/bans/unban`
// keep someone out and let them back. The tool is run as an admin would,
// with the database in DATABASE_URL or --db.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Client, DATABASE_URL, ROOT, portBase, uniqueRoom } from './lib.mjs';
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

// Polls room in a loop as user, from its cursor, keeping every answer.
function pollLoop(user, room) {
  const answers = [];
  const ctl = new AbortController();
  let cursor = room;
  const done = (async () => {
    while (!ctl.signal.aborted) {
      const r = await pollOnce(`rooms=${cursor}&timeout=60`, { base: AUTH, headers: basic(user), signal: ctl.signal })
        .catch(() => null);
      if (!r) return;
      answers.push({ at: Date.now(), status: r.status, events: r.json?.events });
      if (r.json?.cursor) cursor = r.json.cursor;
    }
  })();
  return { answers, async stop() { ctl.abort(); await done; } };
}

test('chatctl kick ends a user\'s WebSockets and long-poll everywhere; another user stays', async () => {
  const roomW = uniqueRoom('kickws');
  const roomP = uniqueRoom('kicklp'); // a quiet room: only the two polls, no presence changes
  const sockets = [];
  const parked0 = await parkedCount();
  const alicePolls = pollLoop('alice', roomP);
  const bobPolls = pollLoop('bob', roomP);
  try {
    // alice on four sockets (the stack's chat-ws workers share them), bob on one
    for (let i = 0; i < 4; i++) {
      const { c, first } = await ws('alice');
      assert.equal(first.op, 'hello');
      c.send({ op: 'join', room: roomW });
      await c.op('joined');
      sockets.push(c);
    }
    const { c: bob } = await ws('bob');
    bob.send({ op: 'join', room: roomW });
    await bob.op('joined');
    // both parked, and the room quiet: presence news (at most one a second
    // per room) of the two joining ends early polls, which poll again
    const quiet = (l) => Date.now() - (l.answers.at(-1)?.at ?? 0) > 1500;
    await waitUntil(async () => (await parkedCount()) >= parked0 + 2 && quiet(alicePolls) && quiet(bobPolls),
      15000, 'both polls parked in a quiet room');

    const kickedAt = Date.now();
    const r = chatctl(['--db', DATABASE_URL, 'kick', 'alice']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /kicked alice/);

    for (const c of sockets) assert.equal((await c.waitClose()).code, 4001, 'closed as kicked');
    // alice's parked poll ends at once, empty (a kick's answer), not at its 60 s
    await waitUntil(async () => alicePolls.answers.some((a) => a.at >= kickedAt && a.status === 200 &&
      a.events?.length === 0), 10000, 'alice\'s parked poll ended by the kick');
    // bob: socket open and served; his poll was not ended empty
    assert.equal(bob.closed, null);
    bob.send({ op: 'send', room: roomW, text: 'still here', ref: 'b1' });
    assert.equal((await bob.next((e) => e.ref === 'b1')).op, 'ack');
    assert.ok(!bobPolls.answers.some((a) => a.at >= kickedAt && a.events?.length === 0),
      JSON.stringify(bobPolls.answers));
    // a kick keeps no one out
    const back = await ws('alice');
    assert.equal(back.first.op, 'hello');
    back.c.close();
    bob.close();
  } finally {
    for (const c of sockets) c.close();
    await alicePolls.stop();
    await bobPolls.stop();
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
