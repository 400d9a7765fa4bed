// Moderation benchmark (not a test): on one room of a million messages,
// full-text search times (chat_search), and what a retention prune of the
// whole million does to the people still chatting: ack latency of
// WebSocket sends through nginx to that same room (the worst case: the
// prune's commits and the sends take the same room row lock) before and
// during `CALL chat_prune()`. Prints one JSON line per measurement.
//
//   cd tests && CHAT_URL=http://127.0.0.1:8080/chat/ DATABASE_URL='host=... dbname=chat' \
//       ../scripts/node bench/moderation_bench.mjs [--messages 1000000] [--rate 20]
import WebSocket from 'ws';
import { pgClient } from '../e2e/lib.mjs';

const BASE = process.env.CHAT_URL || 'http://127.0.0.1:8080/chat/';
const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), Number(all[i + 1])]);
  return acc;
}, []));
const N = args.messages ?? 1000000;
const RATE = args.rate ?? 20;
const CONNS = 4; // a connection may send 10 messages a second
const room = `modbench-${process.pid}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function pct(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? Number(s[Math.min(s.length - 1, Math.floor(q * s.length))].toFixed(2)) : null;
}
const stats = (xs) => ({ n: xs.length, p50: pct(xs, 0.5), p99: pct(xs, 0.99), max: pct(xs, 1) });

async function client() {
  const c = await pgClient();
  await c.connect();
  return c;
}

// a room of N messages, ten days old, one a millisecond apart, from a
// vocabulary where "zanzibar" is in 1 message of 10,000, "apple" in 1 of 200
// and "the" in every one
async function fill(db) {
  const t0 = performance.now();
  await db.query('INSERT INTO rooms (name, last_seq) VALUES ($1, $2)', [room, N]);
  await db.query(`INSERT INTO messages (room, seq, sender, text, ts)
    SELECT $1, g, 'bench' || (g % 50),
           'the ' || (ARRAY['quick','brown','fox','lazy','dog','hello world','meeting','lunch','deploy','review'])[1 + g % 10]
             || ' ' || CASE WHEN g % 200 = 0 THEN 'apple' ELSE 'pear' END
             || CASE WHEN g % 10000 = 0 THEN ' zanzibar' ELSE '' END || ' number ' || g,
           now() - interval '10 days' + g * interval '1 millisecond'
    FROM generate_series(1, $2::bigint) g`, [room, N]);
  return (performance.now() - t0) / 1000;
}

async function searches(db) {
  const out = {};
  for (const [name, q] of [['rare', 'zanzibar'], ['uncommon', 'apple'], ['phrase', '"hello world"'], ['every', 'the'], ['none', 'nothing-matches']]) {
    const times = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      const r = await db.query('SELECT seq FROM chat_search($1, $2, NULL, 50)', [room, q]);
      times.push(performance.now() - t0);
      if (i === 0) out[`${name}_hits`] = r.rowCount;
    }
    out[name] = stats(times);
  }
  return out;
}

// CONNS WebSockets sending RATE messages a second in all to the room;
// resolves the ack latencies of the sends made while phase() runs
async function sendWhile(phase) {
  const conns = await Promise.all(Array.from({ length: CONNS }, (_, i) => new Promise((resolve, reject) => {
    const ws = new WebSocket(`${BASE.replace(/^http/, 'ws')}ws?name=mb${i}`);
    const pending = new Map();
    ws.on('message', (d) => {
      const ev = JSON.parse(d);
      if (ev.op === 'hello') resolve({ ws, pending });
      if (ev.op === 'ack' && pending.has(ev.cid)) {
        pending.get(ev.cid)(performance.now());
        pending.delete(ev.cid);
      }
    });
    ws.on('error', reject);
  })));
  const lat = [];
  let errors = 0;
  let stop = false;
  let k = 0;
  const sender = (async () => {
    const inflight = [];
    while (!stop) {
      const c = conns[k % CONNS];
      const cid = `c${k++}`;
      const t0 = performance.now();
      inflight.push(new Promise((res) => {
        c.pending.set(cid, (t) => { lat.push(t - t0); res(); });
        setTimeout(() => { if (c.pending.delete(cid)) { errors++; res(); } }, 30000);
      }));
      c.ws.send(JSON.stringify({ op: 'send', room, text: `live ${cid}`, cid }));
      await sleep(1000 / RATE);
    }
    await Promise.all(inflight);
  })();
  const result = await phase();
  stop = true;
  await sender;
  for (const c of conns) c.ws.close();
  return { result, ack_ms: stats(lat), errors };
}

const db = await client();
const filled = await fill(db);
console.log(JSON.stringify({ phase: 'fill', messages: N, seconds: Number(filled.toFixed(1)) }));
await db.query('ANALYZE messages');
console.log(JSON.stringify({ phase: 'search', messages: N, limit: 50, ms: await searches(db) }));

const base = await sendWhile(() => sleep(10000));
console.log(JSON.stringify({ phase: 'sends-before-prune', rate: RATE, ack_ms: base.ack_ms, errors: base.errors }));
await db.query("INSERT INTO retention VALUES ($1, interval '1 day')", [room]);
const pruner = await client();
const during = await sendWhile(async () => {
  const t0 = performance.now();
  const r = await pruner.query('CALL chat_prune()');
  return { removed: Number(r.rows[0].removed), seconds: Number(((performance.now() - t0) / 1000).toFixed(1)) };
});
console.log(JSON.stringify({ phase: 'sends-during-prune', rate: RATE, ack_ms: during.ack_ms, errors: during.errors, prune: during.result }));
const left = await db.query('SELECT horizon, last_seq FROM rooms WHERE name = $1', [room]);
console.log(JSON.stringify({ phase: 'after-prune', horizon: Number(left.rows[0].horizon), last_seq: Number(left.rows[0].last_seq) }));
await db.query('DELETE FROM retention WHERE pattern = $1', [room]);
await db.query('DELETE FROM messages WHERE room = $1', [room]);
await pruner.end();
await db.end();
