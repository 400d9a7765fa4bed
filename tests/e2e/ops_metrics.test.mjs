// /chat/metrics (issue 11 item 5): one scrape covers every process of both
// daemons on the host. Scrape, make traffic on both transports (WebSocket
// clients spread over chat-ws's workers; long-poll through nginx to the
// stack's chat-fcgi and straight to a second chat-fcgi worker; WebSocket
// through nginx and straight to a second chat-ws), scrape
// again: the counters moved by what was done. The text is the exposition
// format 0.0.4; the public location cannot read it (ops_health).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, Client, http, uniqueRoom, withTimeout } from './lib.mjs';
import { pollOnce, request, startWorker, waitUntil } from './lp_lib.mjs';
import { startDaemon } from './daemon.mjs';

// { 'name{labels}': value } of one scrape, checking every line's syntax.
async function scrape() {
  const r = await http('metrics');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  const m = {};
  const typed = new Set();
  for (const line of r.text.split('\n')) {
    if (line === '') continue;
    const t = line.match(/^# TYPE (\w+) (counter|gauge|histogram)$/);
    if (t) { typed.add(t[1]); continue; }
    if (line.startsWith('# HELP ')) continue;
    const s = line.match(/^([a-z_]+)(\{[a-z]+="[^"]*"(?:,[a-z]+="[^"]*")*\})? (-?[0-9.e+]+)$/);
    assert.ok(s, `exposition line: ${line}`);
    assert.ok(typed.has(s[1].replace(/_(bucket|sum|count)$/, '')) || typed.has(s[1]), `TYPE before ${s[1]}`);
    m[s[1] + (s[2] || '')] = Number(s[3]);
  }
  return m;
}
const d = (a, b, k) => (b[k] ?? NaN) - (a[k] ?? NaN);
const W = (k) => `${k}{daemon="ws"}`;
const F = (k) => `${k}{daemon="fcgi"}`;

async function wsClient(name, base) {
  const c = await Client.connect(`name=${name}`, {}, base);
  await c.op('hello');
  return c;
}

test('one scrape sums both daemons\' processes; traffic on both transports moves the right counters', async () => {
  const room = uniqueRoom('metrics');
  const details = (await http('health/details')).json;
  const wsProcs = details.processes.filter((p) => p.daemon === 'ws').length;
  // a second process of each daemon, their metrics files beside the stack's
  const extra = await startWorker([]);
  const daemon = await startDaemon([]);
  const clients = [];
  try {
    const m0 = await waitUntil(async () => {
      const m = await scrape();
      return m[F('chat_processes')] === 2 && m[W('chat_processes')] === wsProcs + 1 ? m : null;
    }, 10000, 'both chat-fcgi workers and every chat-ws worker in the scrape');

    // WebSocket: three clients through nginx, two on the second chat-ws
    for (let i = 0; i < 5; i++) {
      const c = await wsClient(`mw${i}`, i < 3 ? undefined : `${daemon.url}?name=mw${i}`);
      c.send({ op: 'join', room, ref: `j${i}` });
      await c.next((e) => e.ref === `j${i}` && e.op === 'joined', 10000, 'joined');
      clients.push(c);
    }
    const n = clients.length;
    // long-poll: one parked poll through nginx, waiting past the room's end
    const first = await pollOnce(`rooms=${room}&name=lp`);
    // polls again from its cursor until it has every message (presence
    // news of the sockets joining ends some polls early)
    const texts = ['w0', 'w1', 'w2', 'f0', 'f1', 'x0', 'x1'];
    const poller = (async () => {
      let cursor = first.json.cursor;
      const got = [];
      while (!texts.every((t) => got.includes(t))) {
        const r = await pollOnce(`rooms=${cursor}&name=lp&timeout=30`);
        assert.equal(r.status, 200, r.text);
        cursor = r.json.cursor;
        got.push(...r.json.events.filter((e) => e.op === 'msg').map((e) => e.text));
      }
      return got;
    })();
    await waitUntil(async () => (await scrape())[F('chat_parked_polls')] >= 1, 10000, 'the parked poll as a gauge');
    await waitUntil(async () => (await scrape())[W('chat_connections')] >= n, 10000, 'the sockets as a gauge');

    // 3 sends on WebSocket, 2 through nginx's FastCGI, 2 straight to the second worker
    for (let i = 0; i < 3; i++) {
      clients[i % n].send({ op: 'send', room, text: `w${i}`, ref: `s${i}` });
      assert.equal((await clients[i % n].next((e) => e.ref === `s${i}`)).op, 'ack');
    }
    for (let i = 0; i < 2; i++) {
      const r = await request(BASE, 'send', { method: 'POST', body: { room, text: `f${i}`, name: 'lp' } });
      assert.equal(r.status, 200, r.text);
      const x = await extra.request('send', { body: { room, text: `x${i}`, name: 'lx' } });
      assert.equal(x.status, 200, x.text);
    }
    // every WebSocket gets all 7 messages
    for (const c of clients) {
      for (const t of texts) {
        await c.next((e) => e.op === 'msg' && e.text === t, 10000, `${t} on a socket`);
      }
    }
    assert.deepEqual((await withTimeout(poller, 10000, 'the long-poll got them')).sort(), [...texts].sort());
    // refusals by reason: a send without text on each transport
    assert.equal((await request(BASE, 'send', { method: 'POST', body: { room } })).status, 400);
    clients[0].send({ op: 'send', room, ref: 'bad' });
    assert.equal((await clients[0].next((e) => e.ref === 'bad')).code, 'bad_request');

    const m1 = await scrape();
    assert.equal(d(m0, m1, W('chat_messages_in_total')), 3, 'stored from WebSocket');
    assert.equal(d(m0, m1, F('chat_messages_in_total')), 4, 'stored from FastCGI, both workers');
    assert.equal(d(m0, m1, W('chat_joins_total')), n, 'joins');
    assert.equal(d(m0, m1, W('chat_messages_out_total')), 7 * n, 'each message to each socket');
    assert.ok(d(m0, m1, F('chat_messages_out_total')) >= 7, 'the polls carried the messages');
    assert.ok(d(m0, m1, F('chat_deliveries_total')) >= 1);
    assert.ok(d(m0, m1, W('chat_deliveries_total')) >= 7 * n);
    assert.equal(d(m0, m1, 'chat_refused_total{daemon="fcgi",reason="bad_request"}'), 1);
    assert.equal(d(m0, m1, 'chat_refused_total{daemon="ws",reason="bad_request"}'), 1);
    for (const k of ['ws', 'fcgi']) {
      const c = `chat_db_query_seconds_count{daemon="${k}"}`;
      assert.ok(d(m0, m1, c) >= 1, `${k} timed its statements`);
      assert.equal(m1[`chat_db_query_seconds_bucket{daemon="${k}",le="+Inf"}`], m1[c]);
      assert.ok(m1[`chat_resident_memory_bytes{daemon="${k}"}`] > 0);
    }
  } finally {
    for (const c of clients) c.close();
    await extra.stop();
    await daemon.stop();
  }
  // the stopped worker's file is gone from the scrape
  await waitUntil(async () => {
    const m = await scrape();
    return m[F('chat_processes')] === 1 && m[W('chat_processes')] === wsProcs;
  }, 10000, 'the stack\'s processes only again');
});
