// The worker process itself, on sockets of the test's own (FastCGI straight
// from the test, no nginx): --max-parked answers 503 past its bound,
// SIGTERM answers every parked poll and exits within 5 s, and spawn-fcgi
// mode (the FastCGI socket as fd 0) serves like --listen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { uniqueRoom, withTimeout } from './lib.mjs';
import { sanitizerReports, startWorker, waitUntil } from './lp_lib.mjs';

function parkedIs(w, n) {
  return waitUntil(async () => (await w.health()).parked === n, 10000, `${n} parked polls`);
}

async function stopClean(w, within = 5000) {
  const e = await w.stop();
  assert.equal(e.code, 0, w.log());
  assert.ok(e.ms < within, `exited after ${e.ms} ms`);
  assert.deepEqual(sanitizerReports(w.log()), [], w.log());
  return e;
}

test('--max-parked: past the bound a poll gets 503 unavailable at once; a freed slot is usable again', async () => {
  const w = await startWorker(['--max-parked', '3']);
  try {
    // a room each: one poller's presence would wake the others' polls
    const rooms = [0, 1, 2].map(() => uniqueRoom('maxp'));
    const room9 = uniqueRoom('maxp');
    const aborts = [];
    const parked = [];
    for (let i = 0; i < 3; i++) {
      const ac = new AbortController();
      aborts.push(ac);
      parked.push(w.request(`poll?rooms=${rooms[i]}:0&name=p${i}&timeout=60`, { signal: ac.signal }).catch((e) => e));
    }
    await parkedIs(w, 3);
    const t0 = Date.now();
    const over = await w.request(`poll?rooms=${room9}:0&name=p9&timeout=60`);
    assert.equal(over.status, 503, over.text);
    assert.equal(over.json.op, 'error');
    assert.equal(over.json.code, 'unavailable');
    assert.ok(Date.now() - t0 < 2000, 'refused at once, not parked');
    // a poll with news is answered without parking, bound or not
    for (const [i, room] of rooms.entries()) {
      const sent = await w.request('send', { body: { room, text: 'news', cid: `n${i}`, name: 'sam' } });
      assert.equal(sent.status, 200, sent.text);
    }
    for (const p of parked) {
      const r = await withTimeout(p, 5000, 'parked poll woken');
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json.events.map((e) => e.text), ['news']);
    }
    await parkedIs(w, 0);
    // fill again, free one by leaving (the browser goes away), park another
    const again = [0, 1, 2].map((i) => {
      const ac = new AbortController();
      aborts[i] = ac;
      return w.request(`poll?rooms=${rooms[i]}:1&name=p${i}&timeout=60`, { signal: ac.signal }).catch((e) => e);
    });
    await parkedIs(w, 3);
    assert.equal((await w.request(`poll?rooms=${room9}:0&name=p9&timeout=60`)).status, 503);
    aborts[0].abort();
    assert.match(String(await again[0]), /aborted/);
    await parkedIs(w, 2);
    const late = w.request(`poll?rooms=${room9}:0&name=p9&timeout=60`);
    await parkedIs(w, 3);
    await stopClean(w);
    for (const p of [again[1], again[2], late]) {
      const r = await withTimeout(p, 5000, 'poll answered at stop');
      assert.equal(r.status, 200);
      assert.deepEqual(r.json.events, []);
    }
    assert.match(w.log(), /--max-parked/);
  } finally {
    await w.stop().catch(() => {});
  }
});

test('SIGTERM: every parked poll is answered with events: [] and the worker exits within 5 s', async () => {
  const w = await startWorker();
  // a room each: one poller's presence would wake the others' polls
  const rooms = Array.from({ length: 20 }, () => uniqueRoom('term'));
  const polls = rooms.map((room, i) => w.request(`poll?rooms=${room}:0&name=t${i}&timeout=120`));
  await parkedIs(w, 20);
  const t0 = Date.now();
  const e = await stopClean(w);
  const answers = await withTimeout(Promise.all(polls), 5000, 'parked polls answered');
  for (const [i, r] of answers.entries()) {
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.events, []);
    assert.equal(r.json.cursor, `${rooms[i]}:0`);
  }
  assert.ok(Date.now() - t0 < 5000 + 100, `took ${e.ms} ms`);
  assert.match(w.log(), /SIGTERM: stopping \(20 parked polls/);
  assert.match(w.log(), /stopped/);
});

test('spawn-fcgi mode: the socket comes as fd 0 and the worker serves health, send and poll', async () => {
  const w = await startWorker([], { socket: 'spawn-fcgi' });
  try {
    assert.match(w.log(), /serving the FastCGI socket on fd 0/);
    assert.ok((await stat(w.path)).isSocket());
    const h = await w.request('health/details', { params: { CHAT_ADMIN: 'on' } });
    assert.equal(h.status, 200, h.text);
    assert.equal(h.json.backends.fcgi.pid, w.pid, 'spawn-fcgi -n runs the worker itself');
    const room = uniqueRoom('spawn');
    const poll = w.request(`poll?rooms=${room}:0&name=sp&timeout=60`);
    await parkedIs(w, 1);
    const ack = await w.request('send', { body: { room, text: 'via fd 0', cid: 'c1', name: 'sp' } });
    assert.equal(ack.status, 200, ack.text);
    assert.equal(ack.json.op, 'ack');
    assert.equal(ack.json.seq, 1);
    const r = await withTimeout(poll, 5000, 'poll woken');
    assert.deepEqual(r.json.events.map((e) => [e.seq, e.text, e.user]), [[1, 'via fd 0', '~sp']]);
    await stopClean(w);
  } finally {
    await w.stop().catch(() => {});
  }
});

test('without --listen, a worker whose fd 0 is not a socket refuses to start', async () => {
  await assert.rejects(startWorker([], { socket: 'none' }),
    /exited \{"code":1.*fd 0 is not a FastCGI socket/s);
});
