// Full-text search over both doors, through nginx: the current text of a
// room's messages, in ascending order like history, paged with before;
// a deleted message or an edit's old words never match; a room the
// location forbids is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, portBase, uniqueRoom } from './lib.mjs';
import { request } from './lp_lib.mjs';

async function ask(c, req) {
  const ref = Math.random().toString(36).slice(2);
  c.send({ ...req, ref });
  return c.next((e) => e.ref === ref, 10000, req.op);
}

test('search finds current text on both doors, pages, and never returns deleted or replaced words', async () => {
  const room = uniqueRoom('search');
  const c = await Client.connect('name=sam');
  try {
    await c.op('hello');
    const seqs = [];
    for (const text of ['Deploy on friday', 'lunch time', 'deploy again', 'secret deploy plan', 'typo deplyo']) {
      const a = await ask(c, { op: 'send', room, text });
      assert.equal(a.op, 'ack');
      seqs.push(a.seq);
    }
    assert.equal((await ask(c, { op: 'delete', room, seq: seqs[3] })).op, 'ack');
    assert.equal((await ask(c, { op: 'edit', room, seq: seqs[4], text: 'typo deploy' })).op, 'ack');
    assert.equal((await ask(c, { op: 'edit', room, seq: seqs[1], text: 'lunch at noon' })).op, 'ack');

    const r = await ask(c, { op: 'search', room, q: 'deploy' });
    assert.equal(r.op, 'search');
    assert.equal(r.room, room);
    assert.deepEqual(r.messages.map((m) => m.seq), [seqs[0], seqs[2], seqs[4]], 'ascending, no deleted');
    assert.equal(r.messages[2].text, 'typo deploy');
    assert.ok(!JSON.stringify(r).includes('secret'));
    assert.deepEqual((await ask(c, { op: 'search', room, q: 'deplyo' })).messages, [], 'old words of an edit');
    assert.deepEqual((await ask(c, { op: 'search', room, q: 'time' })).messages, []);
    assert.deepEqual((await ask(c, { op: 'search', room, q: '-deploy' })).messages, []);

    const page1 = await ask(c, { op: 'search', room, q: 'deploy', limit: 2 });
    assert.deepEqual(page1.messages.map((m) => m.seq), [seqs[2], seqs[4]], 'the newest page first');
    const page2 = await ask(c, { op: 'search', room, q: 'deploy', limit: 2, before: page1.messages[0].seq });
    assert.deepEqual(page2.messages.map((m) => m.seq), [seqs[0]]);

    const h = await request(portBase(0), `search?room=${room}&q=${encodeURIComponent('"deploy again" or friday')}`);
    assert.equal(h.status, 200, h.text);
    assert.equal(h.json.op, 'search');
    assert.deepEqual(h.json.messages.map((m) => m.seq), [seqs[0], seqs[2]]);
    const hp = await request(portBase(0), `search?room=${room}&q=deploy&limit=1&before=${seqs[4]}`);
    assert.deepEqual(hp.json.messages.map((m) => m.seq), [seqs[2]]);

    for (const q of ['', 'a%01b']) {
      const bad = await request(portBase(0), `search?room=${room}&q=${q}`);
      assert.equal(bad.status, 400, `q=${q}`);
    }
    assert.equal((await ask(c, { op: 'search', room })).code, 'bad_request');
    assert.equal((await ask(c, { op: 'search', room, q: 'x', limit: 101 })).code, 'bad_request');
  } finally {
    c.close();
  }
});

test('search honours the location\'s rooms on both doors', async () => {
  const c = await Client.connect('name=sam', {}, portBase(2, 'ws'));
  try {
    await c.op('hello');
    const e = await ask(c, { op: 'search', room: 'private-x', q: 'deploy' });
    assert.equal(e.code, 'forbidden');
    const h = await request(portBase(2), 'search?room=private-x&q=deploy');
    assert.equal(h.status, 403);
    const ok = await request(portBase(2), 'search?room=lobby&q=deploy');
    assert.equal(ok.status, 200);
  } finally {
    c.close();
  }
});
