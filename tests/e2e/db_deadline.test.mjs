// Deadlines on the database (issue 13 item 1), end to end: with the
// stack's PostgreSQL frozen (SIGSTOP of its postmaster and every backend:
// the kernel still accepts and acknowledges, nothing answers), a send over
// WebSocket and over long-poll is answered `unavailable` within the query
// deadline (--db-timeout, 5 s) instead of hanging, and /chat/health (and
// chat-ws's own /health) answer within a second, reporting the database
// down. After SIGCONT the same cids are stored once and every receiver has
// the room gap-free, each message once. The after hook resumes PostgreSQL
// whatever happened.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { Client, PG_DATA, VAR, http, pgClient, uniqueRoom, withTimeout } from './lib.mjs';
import { Poller, send } from './lp_lib.mjs';

const DEADLINE_MS = 5000; // CHAT_DB_TIMEOUT_MS, the default of both daemons
const SLACK_MS = 2500; // a loaded machine, the sanitizer build

// The stack's postmaster and its children (backends, walwriter, ...).
function postgresPids() {
  const pm = Number(readFileSync(`${PG_DATA}/postmaster.pid`, 'utf8').split('\n')[0]);
  const pids = [pm];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pm) pids.push(Number(d));
    } catch { /* gone */ }
  }
  return pids;
}

let frozen = [];
function freeze() {
  // the postmaster first, so that it forks nothing unfrozen meanwhile
  const [pm] = postgresPids();
  process.kill(pm, 'SIGSTOP');
  frozen = [pm];
  for (const pid of postgresPids().slice(1)) {
    try { process.kill(pid, 'SIGSTOP'); frozen.push(pid); } catch { /* gone */ }
  }
}
function thaw() {
  for (const pid of frozen) {
    try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
  }
  frozen = [];
}
after(thaw);

// GET /health on chat-ws's own unix socket: { status, json, ms }.
function wsHealth() {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath: `${VAR}/run/ws.sock`, path: '/health', timeout: 3000 },
      (res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => resolve({ status: res.statusCode, json: JSON.parse(body), ms: Date.now() - t0 }));
      });
    req.on('timeout', () => req.destroy(new Error('no answer within 3 s')));
    req.on('error', reject);
    req.end();
  });
}

async function chatHealth() {
  const t0 = Date.now();
  const r = await http('health');
  return { ...r, ms: Date.now() - t0 };
}

// Asks health until it says 503; every answer must come within a second.
async function untilDown(ask, what) {
  const t0 = Date.now();
  const times = [];
  for (;;) {
    const r = await ask();
    times.push(r.ms);
    assert.ok(r.ms < 1000, `${what} answered in ${r.ms} ms (want < 1000)`);
    if (r.status === 503) return { afterMs: Date.now() - t0, slowestMs: Math.max(...times), r };
    assert.equal(r.status, 200);
    if (Date.now() - t0 > 5000) throw new Error(`${what} still 200 after 5 s`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

// Waits until pred() holds, woken by each event c receives.
async function waitFor(c, pred, ms, what) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out waiting for ${what}`);
    await withTimeout(new Promise((r) => c.waiters.push(r)), left, what).catch(() => {});
  }
}

async function wsSend(ws, room, text, cid, ref) {
  const t0 = Date.now();
  ws.send({ op: 'send', room, text, cid, ref });
  const ev = await ws.next((e) => e.ref === ref, DEADLINE_MS + SLACK_MS + 5000, `answer to ${ref}`);
  return { ev, ms: Date.now() - t0 };
}

test('frozen PostgreSQL: sends get unavailable within the deadline, health 503 within a second; after it the same cids are stored once, gap-free', async () => {
  const room = uniqueRoom('frozen');
  const rx = await Client.connect('name=rita');
  await rx.op('hello');
  rx.send({ op: 'join', room, since: 0 });
  await rx.op('joined');
  const lp = new Poller([room], { name: 'lena', since: 0, timeout: 20 }).start();
  const tx = await Client.connect('name=sam');
  await tx.op('hello');

  for (let i = 1; i <= 3; i++) {
    const { ev } = await wsSend(tx, room, `before ${i}`, `b${i}`, `b${i}`);
    assert.equal(ev.op, 'ack');
  }
  await lp.waitFor((p) => p.msgs.get(room).length === 3, 10000, 'the first three by long-poll');

  freeze();
  const t0 = Date.now();
  const [wsr, lpr, ch, wh] = await Promise.all([
    wsSend(tx, room, 'during (ws)', 'frozen-ws', 'f1'),
    (async () => {
      const t = Date.now();
      const r = await send(room, 'during (lp)', { name: 'sam', cid: 'frozen-lp' });
      return { r, ms: Date.now() - t };
    })(),
    untilDown(chatHealth, '/chat/health'),
    untilDown(wsHealth, "chat-ws's /health"),
  ]);
  console.log(`frozen: ws send unavailable after ${wsr.ms} ms, long-poll send ${lpr.r.status} after ${lpr.ms} ms; ` +
    `/chat/health 503 after ${ch.afterMs} ms (slowest answer ${ch.slowestMs} ms), ` +
    `chat-ws /health 503 after ${wh.afterMs} ms (slowest ${wh.slowestMs} ms)`);
  assert.equal(wsr.ev.op, 'error');
  assert.equal(wsr.ev.code, 'unavailable');
  assert.ok(wsr.ms <= DEADLINE_MS + SLACK_MS, `WebSocket send answered after ${wsr.ms} ms`);
  assert.equal(lpr.r.status, 503);
  assert.equal(lpr.r.json.code, 'unavailable');
  assert.ok(lpr.ms <= DEADLINE_MS + SLACK_MS, `long-poll send answered after ${lpr.ms} ms`);
  // nginx asks chat-ws first: its 503 (database down) is the answer, else chat-fcgi's
  assert.ok(ch.r.json.database?.status === 'down' || ch.r.json.backends?.ws?.status === 'down', ch.r.text);
  assert.equal(wh.r.json.database, 'down');
  // health keeps answering quickly for as long as the database is frozen
  const again = await chatHealth();
  assert.equal(again.status, 503);
  assert.ok(again.ms < 1000, `/chat/health answered in ${again.ms} ms`);
  assert.ok(Date.now() - t0 < 20000);

  thaw();
  // the same cids again, as the client retries: stored once each
  let ack;
  for (let tries = 0; ; tries++) {
    ({ ev: ack } = await wsSend(tx, room, 'during (ws)', 'frozen-ws', `r${tries}`));
    if (ack.op === 'ack') break;
    assert.equal(ack.code, 'unavailable');
    assert.ok(tries < 100, 'the WebSocket send was never acked after the thaw');
    await new Promise((res) => setTimeout(res, 200));
  }
  const lpAck = await send(room, 'during (lp)', { name: 'sam', cid: 'frozen-lp', retryMs: 30000 });
  assert.equal(lpAck.status, 200);
  const { ev: last } = await wsSend(tx, room, 'after', 'a1', 'a1');
  assert.equal(last.op, 'ack');

  const db = await pgClient();
  await db.connect();
  try {
    const { rows } = await db.query(
      'SELECT cid, count(*)::int AS n FROM messages WHERE room = $1 GROUP BY cid ORDER BY cid', [room]);
    assert.deepEqual(rows.map((r) => [r.cid, r.n]),
      [['a1', 1], ['b1', 1], ['b2', 1], ['b3', 1], ['frozen-lp', 1], ['frozen-ws', 1]]);
    const top = (await db.query('SELECT last_seq FROM rooms WHERE name = $1', [room])).rows[0].last_seq;
    assert.equal(Number(top), 6);
  } finally {
    await db.end();
  }
  const want = [1, 2, 3, 4, 5, 6];
  await lp.waitFor((p) => p.msgs.get(room).length >= 6, 30000, 'six messages by long-poll');
  const seqsWs = () => rx.events.filter((e) => e.op === 'msg' && e.room === room).map((e) => e.seq);
  await waitFor(rx, () => seqsWs().length >= 6, 30000, 'six messages by WebSocket');
  assert.deepEqual(seqsWs(), want, 'the WebSocket receiver: every message once, in order');
  assert.deepEqual(lp.msgs.get(room).map((m) => m.seq), want, 'the long-poll receiver too');
  assert.deepEqual(lp.errors, []);
  await lp.stop();
  rx.close();
  tx.close();
});
