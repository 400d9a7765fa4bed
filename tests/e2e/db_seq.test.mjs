// The database contract (sql/): gap-free per-room seq under concurrency,
// idempotent sends by cid, and a reader that follows NOTIFY with catch-up
// from the table sees every message in order, oversized ones included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pgClient, uniqueRoom, withTimeout } from './lib.mjs';

async function connected() {
  const c = await pgClient();
  await c.connect();
  return c;
}

// A session to post with and one LISTENing on 'chat', closed after the
// test; payloads collects the notifications that keep() accepts.
async function postAndListen(t, keep = () => true) {
  const c = await connected();
  const l = await connected();
  t.after(() => Promise.allSettled([l.end(), c.end()]));
  const payloads = [];
  l.on('notification', (n) => { if (n.channel === 'chat' && keep(n.payload)) payloads.push(n.payload); });
  await l.query('LISTEN chat');
  return { c, payloads };
}

async function post(client, room, sender, text, cid) {
  const r = await client.query(
    'SELECT idx, seq, ts, dup FROM chat_post($1::text[], $2::text[], $3::text[], $4::text[])',
    [[room], [sender], [text], [cid]]);
  return { seq: Number(r.rows[0].seq), ts: r.rows[0].ts, dup: r.rows[0].dup };
}

// A listener as the daemons are: NOTIFY lines are hints; anything that is
// not exactly the next message of the room is read from the table.
class Reader {
  constructor(room) {
    this.room = room;
    this.last = 0;
    this.seen = [];
    this.notified = 0;
    this.waiters = [];
    this.catching = null;
  }

  async start() {
    this.listen = await connected();
    this.query = await connected();
    this.listen.on('notification', (n) => this.onNotify(n.payload));
    await this.listen.query('LISTEN chat');
    await this.catchUp();
  }

  onNotify(payload) {
    for (const line of payload.split('\n')) {
      const ev = JSON.parse(line);
      if (ev.room !== this.room || (ev.op !== 'msg' && ev.op !== 'hint')) continue;
      this.notified++;
      if (ev.op === 'msg' && ev.seq === this.last + 1 && !this.catching) this.accept(ev);
      else if (ev.seq > this.last) this.catchUp();
    }
  }

  accept(ev) {
    this.last = ev.seq;
    this.seen.push(ev);
    for (const w of this.waiters.splice(0)) w();
  }

  catchUp() {
    if (this.catching) { this.again = true; return this.catching; }
    this.catching = (async () => {
      do {
        this.again = false;
        const r = await this.query.query(
          `SELECT seq, chat_msg_json(room, seq, sender, text, ts, cid) AS j FROM messages
           WHERE room = $1 AND seq > $2 ORDER BY seq LIMIT 1000`, [this.room, this.last]);
        for (const row of r.rows) {
          if (Number(row.seq) === this.last + 1) this.accept(JSON.parse(row.j));
        }
        if (r.rows.length === 1000) this.again = true;
      } while (this.again);
      this.catching = null;
    })();
    return this.catching;
  }

  async waitFor(seq, ms = 60000) {
    await withTimeout((async () => {
      while (this.last < seq) await new Promise((r) => this.waiters.push(r));
    })(), ms, `reader to reach seq ${seq} (at ${this.last})`);
  }

  async stop() {
    await this.listen.end();
    await this.query.end();
  }
}

test('8 concurrent sessions x 1000 messages: seq 1..8000, no gap, no duplicate, reader in order', async () => {
  const room = uniqueRoom('seq');
  const reader = new Reader(room);
  await reader.start();
  const sessions = await Promise.all(Array.from({ length: 8 }, async () => {
    const c = await connected();
    return c;
  }));
  const results = await Promise.all(sessions.map(async (c, s) => {
    const got = [];
    for (let i = 0; i < 1000; i++) {
      const r = await post(c, room, `user${s}`, `message ${i} of session ${s}`, `s${s}-${i}`);
      got.push(r.seq);
    }
    return got;
  }));
  await Promise.all(sessions.map((c) => c.end()));

  // each session saw its own seqs strictly increasing
  for (const got of results) {
    for (let i = 1; i < got.length; i++) assert.ok(got[i] > got[i - 1], 'per-session order');
  }
  const all = results.flat().sort((a, b) => a - b);
  assert.equal(all.length, 8000);
  all.forEach((seq, i) => assert.equal(seq, i + 1, `seq ${i + 1} missing or doubled`));

  const check = await connected();
  const t = await check.query(
    'SELECT count(*)::int AS n, min(seq)::int AS lo, max(seq)::int AS hi, count(DISTINCT seq)::int AS d FROM messages WHERE room = $1',
    [room]);
  assert.deepEqual(t.rows[0], { n: 8000, lo: 1, hi: 8000, d: 8000 });
  const last = await check.query('SELECT last_seq::int FROM rooms WHERE name = $1', [room]);
  assert.equal(last.rows[0].last_seq, 8000);
  // per room, time never goes backwards as seq grows
  const back = await check.query(
    `SELECT count(*)::int AS n FROM (SELECT ts < lag(ts) OVER (ORDER BY seq) AS back
     FROM messages WHERE room = $1) s WHERE back`, [room]);
  assert.equal(back.rows[0].n, 0);
  await check.end();

  await reader.waitFor(8000);
  assert.equal(reader.seen.length, 8000);
  reader.seen.forEach((ev, i) => assert.equal(ev.seq, i + 1));
  assert.ok(reader.notified > 0, 'the reader heard notifications, not only the table');
  await reader.stop();
});

test('a repeated cid returns the first row and stores nothing new', async () => {
  const room = uniqueRoom('cid');
  const c = await connected();
  const first = await post(c, room, 'alice', 'hello', 'k3j4');
  const other = await post(c, room, 'alice', 'another', 'k3j5');
  const again = await post(c, room, 'alice', 'hello (retry)', 'k3j4');
  assert.equal(first.dup, false);
  assert.equal(again.dup, true);
  assert.equal(again.seq, first.seq);
  assert.equal(again.ts, first.ts);
  assert.equal(other.seq, first.seq + 1);
  // the same cid from another sender is another message
  const bob = await post(c, room, 'bob', 'hi', 'k3j4');
  assert.equal(bob.dup, false);
  assert.equal(bob.seq, other.seq + 1);
  // a batch repeating a cid inside itself
  const r = await c.query(
    'SELECT idx, seq, dup FROM chat_post($1::text[], $2::text[], $3::text[], $4::text[])',
    [[room, room, room], ['carol', 'carol', 'carol'], ['a', 'b', 'a again'], ['x1', 'x2', 'x1']]);
  assert.deepEqual(r.rows.map((x) => [x.idx, Number(x.seq), x.dup]),
    [[1, bob.seq + 1, false], [2, bob.seq + 2, false], [3, bob.seq + 1, true]]);
  const n = await c.query('SELECT count(*)::int AS n, max(text) FILTER (WHERE cid = $2 AND sender = $3) AS t FROM messages WHERE room = $1',
    [room, 'k3j4', 'alice']);
  assert.equal(n.rows[0].n, 5);
  assert.equal(n.rows[0].t, 'hello');
  await c.end();
});

test('a message too large for a NOTIFY payload still reaches the reader', async () => {
  const room = uniqueRoom('big');
  const reader = new Reader(room);
  await reader.start();
  const c = await connected();
  const big = 'x'.repeat(20000) + ' é ' + 'y'.repeat(100);
  await post(c, room, 'alice', 'small first', 'b1');
  await post(c, room, 'alice', big, 'b2');
  await post(c, room, 'alice', 'small after', 'b3');
  await reader.waitFor(3, 10000);
  assert.deepEqual(reader.seen.map((e) => e.text), ['small first', big, 'small after']);
  await c.end();
  await reader.stop();
});

test('the schema refuses what the protocol forbids', async () => {
  const c = await connected();
  await assert.rejects(post(c, 'Bad Room', 'alice', 'x', 'c'), /check constraint/);
  await assert.rejects(post(c, uniqueRoom(), 'al ice', 'x', 'c'), /check constraint/);
  await assert.rejects(post(c, uniqueRoom(), 'alice', '', 'c'), /check constraint/);
  await c.end();
});

test('a batch: per room seq in input order, duplicates (stored and in-batch), NULL cids, one line per new message', async (t) => {
  const ra = uniqueRoom('ba');
  const rb = uniqueRoom('bb');
  const { c, payloads } = await postAndListen(t);
  const stored = await post(c, rb, 'dave', 'stored before', 'old');
  assert.equal(stored.seq, 1);
  const big = 'z'.repeat(9000);
  const rows = [
    [rb, 'dave', 'b2', 'n1'],
    [ra, 'erin', 'a1', null],
    [rb, 'dave', 'retry of stored', 'old'],
    [ra, 'erin', 'a2', 'k'],
    [ra, 'erin', 'a1 again, no cid', null],
    [ra, 'erin', 'a2 again', 'k'],
    [rb, 'fred', big, 'k'],
    [rb, 'dave', 'retry of n1', 'n1'],
    [ra, 'gus', 'a3', 'k'],
  ];
  const r = await c.query(
    'SELECT idx, seq, ts, dup FROM chat_post($1::text[], $2::text[], $3::text[], $4::text[])',
    [rows.map((x) => x[0]), rows.map((x) => x[1]), rows.map((x) => x[2]), rows.map((x) => x[3])]);
  assert.deepEqual(r.rows.map((x) => [x.idx, Number(x.seq), x.dup]), [
    [1, 2, false], [2, 1, false], [3, 1, true], [4, 2, false], [5, 3, false],
    [6, 2, true], [7, 3, false], [8, 2, true], [9, 4, false]]);
  assert.equal(r.rows[2].ts, stored.ts);
  assert.equal(r.rows[5].ts, r.rows[3].ts);
  for (const x of r.rows) assert.match(x.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  const last = await c.query('SELECT name, last_seq::int FROM rooms WHERE name IN ($1, $2) ORDER BY name', [ra, rb]);
  assert.deepEqual(last.rows.map((x) => x.last_seq), [4, 3]);
  const cnt = await c.query('SELECT count(*)::int AS n FROM messages WHERE room IN ($1, $2)', [ra, rb]);
  assert.equal(cnt.rows[0].n, 7);

  // the lines of this batch: new messages only, in input order, the big one as a hint
  await withTimeout((async () => {
    while (!payloads.some((p) => p.includes(`"room":"${ra}","seq":4`))) await new Promise((res) => setTimeout(res, 20));
  })(), 10000, 'batch notification');
  const lines = payloads.flatMap((p) => p.split('\n')).map((x) => JSON.parse(x))
    .filter((e) => e.room === ra || e.room === rb);
  assert.deepEqual(lines.map((e) => [e.op, e.room, e.seq]), [
    ['msg', rb, 1], ['msg', rb, 2], ['msg', ra, 1], ['msg', ra, 2], ['msg', ra, 3],
    ['hint', rb, 3], ['msg', ra, 4]]);
  for (const p of payloads) assert.ok(Buffer.byteLength(p) <= 7900);
  const rowA2 = lines.find((e) => e.room === ra && e.seq === 2);
  assert.deepEqual(rowA2, { op: 'msg', room: ra, seq: 2, user: 'erin', text: 'a2', ts: r.rows[3].ts, cid: 'k' });
  // the same bytes as the table renders
  const j = await c.query('SELECT chat_msg_json(room, seq, sender, text, ts, cid) AS j FROM messages WHERE room = $1 AND seq = 2', [ra]);
  assert.ok(payloads.some((p) => p.split('\n').includes(j.rows[0].j)));

  // empty arrays: no rows; arrays of different lengths: an error, nothing stored
  const e = await c.query("SELECT * FROM chat_post('{}'::text[], '{}'::text[], '{}'::text[], '{}'::text[])");
  assert.equal(e.rows.length, 0);
  await assert.rejects(c.query('SELECT * FROM chat_post($1::text[], $2::text[], $3::text[], $4::text[])',
    [[ra, ra], ['erin'], ['x', 'y'], [null, null]]), /different lengths/);
});

test('many lines in one batch are packed into NOTIFYs of at most 7900 bytes, in order', async (t) => {
  const room = uniqueRoom('pack');
  const { c, payloads } = await postAndListen(t, (p) => p.includes(room));
  const n = 200;
  const texts = Array.from({ length: n }, (_, i) => `line ${i} ` + 'w'.repeat(i % 7 === 0 ? 3000 : 100));
  await c.query('SELECT * FROM chat_post($1::text[], $2::text[], $3::text[], $4::text[])',
    [texts.map(() => room), texts.map(() => 'hank'), texts, texts.map((_, i) => `p${i}`)]);
  await withTimeout((async () => {
    while (!payloads.some((p) => p.includes(`"seq":${n},`))) await new Promise((res) => setTimeout(res, 20));
  })(), 10000, 'packed notifications');
  const seqs = payloads.flatMap((p) => p.split('\n')).map((x) => JSON.parse(x).seq);
  assert.deepEqual(seqs, Array.from({ length: n }, (_, i) => i + 1));
  for (const p of payloads) assert.ok(Buffer.byteLength(p) <= 7900);
  // greedy: no payload could have taken the next one's first line
  for (let i = 0; i + 1 < payloads.length; i++) {
    const next = payloads[i + 1].split('\n')[0];
    assert.ok(Buffer.byteLength(payloads[i]) + 1 + Buffer.byteLength(next) > 7900);
  }
});
