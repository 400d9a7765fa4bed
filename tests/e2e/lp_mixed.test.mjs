// WebSocket and long-poll users together: the same cursor, the same
// gap-free order, the same presence, and each sees the other's messages at
// once, whichever transport sent them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, uniqueRoom, waitUntil, wsSend, wsUser } from './lib.mjs';
import { Poller, parkedCount, pollOnce, send } from './lp_lib.mjs';

// Joins room since `since` and collects its messages, checking order.
function collect(c, room) {
  const got = { msgs: [], errors: [] };
  const pump = async () => {
    for (;;) {
      let ev;
      try {
        ev = await c.next((e) => e.op === 'msg' && e.room === room, 60000, 'msg');
      } catch {
        return;
      }
      const last = got.msgs.length ? got.msgs[got.msgs.length - 1].seq : got.since;
      if (ev.seq !== last + 1) got.errors.push(`seq ${ev.seq} after ${last}`);
      got.msgs.push(ev);
    }
  };
  got.join = async (since) => {
    got.since = since;
    c.send({ op: 'join', room, since });
    await c.op('joined');
    pump();
  };
  return got;
}

test('a parked poll is answered as soon as a message is sent over WebSocket', async () => {
  const room = uniqueRoom('mx');
  const ws = await wsUser('wanda');
  const base = await parkedCount();
  // polls again after an answer without the message (its own presence)
  const p = new Poller([room], { name: 'carol', since: 0, timeout: 20 }).start();
  try {
    for (let i = 0; i < 500 && (await parkedCount()) < base + 1; i++);
    const t0 = Date.now();
    const ack = await wsSend(ws, room, 'from ws', 'x1');
    await p.waitFor((x) => x.msgs.get(room).length >= 1, 5000, 'the message');
    const latency = Date.now() - t0;
    assert.deepEqual(p.msgs.get(room).map((m) => [m.seq, m.text, m.user]), [[ack.seq, 'from ws', '~wanda']]);
    assert.ok(latency < 2000, `answered ${latency} ms after the send`);
  } finally {
    await p.stop();
    ws.close();
  }
});

test('a long-poll send reaches WebSocket members at once', async () => {
  const room = uniqueRoom('mx');
  const ws = await wsUser('wanda');
  try {
    ws.send({ op: 'join', room });
    await ws.op('joined');
    const ack = await send(room, 'from poll', { name: 'pat', cid: 'p1' });
    const ev = await ws.next((e) => e.op === 'msg' && e.room === room, 5000, 'msg');
    assert.deepEqual([ev.seq, ev.text, ev.user, ev.cid, ev.ts], [ack.json.seq, 'from poll', '~pat', 'p1', ack.json.ts]);
  } finally {
    ws.close();
  }
});

test('mixed: WebSocket and long-poll senders and receivers, every receiver gap-free', { timeout: 120000 }, async () => {
  const room = uniqueRoom('mx');
  const per = 30;
  const wsSenders = [await wsUser('ws1'), await wsUser('ws2')];
  const wsReaders = [await wsUser('wr1'), await wsUser('wr2')];
  const lpReaders = [new Poller([room], { name: 'lr1', since: 0 }).start(),
    new Poller([room], { name: 'lr2', since: 0 }).start()];
  try {
    const wsGot = wsReaders.map((c) => collect(c, room));
    for (const g of wsGot) await g.join(0);
    const jobs = [
      ...wsSenders.map(async (c, k) => { for (let i = 0; i < per; i++) await wsSend(c, room, `w${k}-${i}`, `w${k}-${i}`); }),
      ...['lp1', 'lp2'].map(async (name) => {
        for (let i = 0; i < per; i++) {
          const r = await send(room, `${name}-${i}`, { name, cid: `${name}-${i}` });
          assert.equal(r.status, 200, r.text);
        }
      }),
    ];
    await Promise.all(jobs);
    const total = 4 * per;
    for (const p of lpReaders) await p.waitFor((x) => x.msgs.get(room).length >= total, 30000, 'long-poll reader');
    for (const g of wsGot) await waitUntil(() => g.msgs.length >= total, 30000, 'ws reader');
    const reference = lpReaders[0].msgs.get(room).map((m) => `${m.seq}:${m.text}`);
    assert.equal(reference.length, total);
    assert.deepEqual(reference.map((s) => Number(s.split(':')[0])), Array.from({ length: total }, (_, i) => i + 1));
    for (const p of lpReaders) {
      assert.deepEqual(p.errors, []);
      assert.deepEqual(p.msgs.get(room).map((m) => `${m.seq}:${m.text}`), reference);
    }
    for (const g of wsGot) {
      assert.deepEqual(g.errors, []);
      assert.deepEqual(g.msgs.map((m) => `${m.seq}:${m.text}`), reference);
    }
    // each sender's own messages are in the order it sent them
    for (const prefix of ['w0-', 'w1-', 'lp1-', 'lp2-']) {
      const mine = reference.map((s) => s.split(':')[1]).filter((t) => t.startsWith(prefix));
      assert.deepEqual(mine, Array.from({ length: per }, (_, i) => `${prefix}${i}`));
    }
  } finally {
    for (const p of lpReaders) await p.stop();
    for (const c of [...wsSenders, ...wsReaders]) c.close();
  }
});

test('a receiver that switches WebSocket -> long-poll -> WebSocket sees every message once', { timeout: 120000 }, async () => {
  const room = uniqueRoom('mx');
  const total = 90;
  const sender = await wsUser('sender');
  const sent = (async () => {
    for (let i = 1; i <= total; i++) {
      if (i % 2) await wsSend(sender, room, `t${i}`, `t${i}`);
      else assert.equal((await send(room, `t${i}`, { name: 'sender2', cid: `t${i}` })).status, 200);
    }
  })();
  const seen = [];
  try {
    // 1: WebSocket until a third has arrived
    let ws = await wsUser('switcher');
    let got = collect(ws, room);
    await got.join(0);
    await waitUntil(() => got.msgs.length >= total / 3, 30000, 'first third over WebSocket');
    ws.close();
    seen.push(...got.msgs);
    let cursor = seen[seen.length - 1].seq;
    // 2: long-poll from that cursor until two thirds
    const p = new Poller([room], { name: 'switcher', since: cursor }).start();
    await p.waitFor((x) => seen.length + x.msgs.get(room).length >= (2 * total) / 3, 30000, 'second third by long-poll');
    await p.stop();
    assert.deepEqual(p.errors, []);
    seen.push(...p.msgs.get(room));
    cursor = p.cursors.get(room);
    // 3: WebSocket again from the long-poll cursor until the end
    ws = await wsUser('switcher');
    got = collect(ws, room);
    await got.join(cursor);
    await sent;
    await waitUntil(() => seen.length + got.msgs.length >= total, 30000, 'last third over WebSocket');
    ws.close();
    seen.push(...got.msgs);
    assert.deepEqual(seen.map((m) => m.seq), Array.from({ length: total }, (_, i) => i + 1));
    assert.deepEqual(seen.map((m) => m.text), Array.from({ length: total }, (_, i) => `t${i + 1}`));
  } finally {
    sender.close();
  }
});

test('presence is shared: each transport sees the other\'s users come and go', { timeout: 60000 }, async () => {
  const room = uniqueRoom('mx');
  const ws = await wsUser('wendy');
  const p = new Poller([room], { name: 'polly' }).start();
  try {
    ws.send({ op: 'join', room });
    await ws.op('joined');
    await ws.next((e) => e.op === 'presence' && e.room === room && e.online?.includes('~polly'), 10000, 'polly online');
    const ws2 = await wsUser('walt');
    ws2.send({ op: 'join', room });
    await ws2.op('joined');
    await p.waitFor((x) => x.events.some((e) => e.op === 'presence' && e.online?.includes('~walt')), 10000, 'walt online');
    ws2.close();
    await p.waitFor((x) => x.events.some((e) => e.op === 'presence' && e.offline?.includes('~walt')), 10000, 'walt offline');
  } finally {
    await p.stop();
    ws.close();
  }
});
