// Three transports together: senders and readers on WebSocket, long-poll
// and Server-Sent Events in one room, and a reader that keeps switching
// among the three from its cursor. Every reader gets every message once,
// gap-free, in the same order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, uniqueRoom, waitUntil, wsSend, wsUser } from './lib.mjs';
import { Poller, pollOnce, send } from './lp_lib.mjs';
import { openStream } from './sse_lib.mjs';

// What one step of the switcher received, in order, short: "joined:29
// reset:0 msg:1 ..." (a failure then shows how the step answered).
const brief = (evs) => evs.filter((e) => e && e.op && e.op !== 'presence' && e.op !== 'typing')
  .map((e) => `${e.op}${e.seq !== undefined ? `:${e.seq}` : ''}${e.cursor !== undefined ? `@${e.cursor}` : ''}`);

// A reader that moves SSE -> long-poll -> WebSocket -> SSE (by Last-Event-ID)
// -> ... taking at least one message on each before it switches. A jump is
// reported with the step that made it and everything that step received,
// and the step before it.
async function switcher(room, total, log) {
  const got = [];
  const errors = [];
  const steps = []; // { kind, from, seen }
  let cursor = 0;
  const take = (ev) => {
    if (ev.seq !== cursor + 1) {
      const [prev, step] = steps.slice(-2).length === 2 ? steps.slice(-2) : [null, steps.at(-1)];
      const show = (st) => `${st.kind} from ${st.from}: ${brief(st.seen).slice(0, 24).join(' ')}`;
      errors.push(`seq ${ev.seq} after ${cursor} (step ${steps.length}, ${show(step)}` +
        `${prev ? `; the step before, ${show(prev)}` : ''})`);
    }
    got.push(ev);
    cursor = ev.seq;
  };
  for (let round = 0; cursor < total; round++) {
    const kind = ['sse', 'poll', 'ws', 'sse-id'][round % 4];
    log.push(kind);
    const start = cursor;
    const step = { kind, from: cursor, seen: [] };
    steps.push(step);
    if (kind === 'sse' || kind === 'sse-id') {
      // sse: the cursor in the query; sse-id: the browser's reconnect (first URL + Last-Event-ID)
      const s = kind === 'sse'
        ? await openStream(`rooms=${room}:${cursor}&name=sw`)
        : await openStream(`rooms=${room}:0&name=sw`, { lastEventId: `${room}:${cursor}` });
      assert.equal(s.status, 200);
      await s.waitFor(() => s.texts(room).length >= 1 || start >= total, 20000, `switcher ${kind}`);
      s.close();
      await s.pump;
      step.seen = s.events.map((e) => e.data);
      for (const m of s.msgs.get(room) ?? []) take(m);
    } else if (kind === 'poll') {
      const r = await pollOnce(`rooms=${room}:${cursor}&name=sw&timeout=10`);
      assert.equal(r.status, 200, r.text);
      step.seen = [...r.json.events, { op: 'cursor', cursor: r.json.cursor }];
      for (const ev of r.json.events) if (ev.op === 'msg') take(ev);
    } else {
      const c = await wsUser('sw');
      c.ws.on('message', (data) => { try { step.seen.push(JSON.parse(data.toString('utf8'))); } catch { /* not JSON */ } });
      c.send({ op: 'join', room, since: cursor });
      await c.op('joined');
      const first = await c.next((e) => e.op === 'msg', 20000, 'switcher ws'); // (taken out of c.events)
      c.close();
      await c.waitClose();
      take(first);
      for (const ev of c.events.filter((e) => e.op === 'msg' && e.room === room)) take(ev);
    }
    if (cursor === start && kind !== 'poll') errors.push(`${kind}: nothing new`);
  }
  return { got, errors };
}

test('mixed: senders and readers on WebSocket, long-poll and SSE; a reader switching among them', { timeout: 150000 }, async () => {
  const room = uniqueRoom('mx3');
  const per = 25;
  const total = 3 * per;
  const wsSender = await wsUser('wsend');
  const wsReader = await wsUser('wread');
  const wsMsgs = [];
  const lpReader = new Poller([room], { name: 'lread', since: 0 }).start();
  const sse = await openStream(`rooms=${room}:0&name=sread`);
  const log = [];
  try {
    wsReader.send({ op: 'join', room, since: 0 });
    await wsReader.op('joined');
    const sw = switcher(room, total, log);
    const pace = () => new Promise((r) => setTimeout(r, 40)); // a person's pace, not a wait for anything
    await Promise.all([
      (async () => { for (let i = 0; i < per; i++) { await wsSend(wsSender, room, `ws-${i}`, `ws-${i}`); await pace(); } })(),
      (async () => {
        for (let i = 0; i < per; i++) {
          assert.equal((await send(room, `lp-${i}`, { name: 'lsend', cid: `lp-${i}` })).status, 200);
          await pace();
        }
      })(),
      // an SSE client sends over POST send, as the browser client does
      (async () => {
        for (let i = 0; i < per; i++) {
          assert.equal((await send(room, `sse-${i}`, { name: 'ssend', cid: `sse-${i}` })).status, 200);
          await pace();
        }
      })(),
    ]);
    await lpReader.waitFor((x) => x.msgs.get(room).length >= total, 30000, 'long-poll reader');
    await sse.waitFor(() => sse.texts(room).length >= total, 30000, 'SSE reader');
    await waitUntil(() => wsReader.events.filter((e) => e.op === 'msg').length >= total, 30000, 'ws reader');
    for (const e of wsReader.events) if (e.op === 'msg') wsMsgs.push(e);
    const { got, errors } = await sw;
    const reference = lpReader.msgs.get(room).map((m) => `${m.seq}:${m.text}`);
    assert.deepEqual(reference.map((s) => Number(s.split(':')[0])), Array.from({ length: total }, (_, i) => i + 1));
    assert.deepEqual(lpReader.errors, []);
    assert.deepEqual(sse.errors, []);
    assert.deepEqual(sse.msgs.get(room).map((m) => `${m.seq}:${m.text}`), reference);
    assert.deepEqual(wsMsgs.map((m) => `${m.seq}:${m.text}`), reference);
    assert.deepEqual(errors, [], `switcher went ${log.join(' ')}`);
    assert.deepEqual(got.map((m) => `${m.seq}:${m.text}`), reference, 'the switcher: each message once');
    for (const k of ['sse', 'poll', 'ws', 'sse-id']) assert.ok(log.includes(k), `switched through ${k}: ${log.join(' ')}`);
    for (const prefix of ['ws-', 'lp-', 'sse-']) {
      const mine = reference.map((s) => s.split(':')[1]).filter((t) => t.startsWith(prefix));
      assert.deepEqual(mine, Array.from({ length: per }, (_, i) => `${prefix}${i}`));
    }
  } finally {
    await lpReader.stop();
    sse.close();
    wsSender.close();
    wsReader.close();
  }
});
