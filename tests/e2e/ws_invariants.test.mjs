// Regressions of the invariants under the edge cases a review found:
// an ack means committed, a cursor ahead of this process gets nothing
// twice, a backlog never closes its own subscriber.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, pgClient, uniqueRoom } from './lib.mjs';


async function guest(name) {
  const c = await Client.connect(`name=${name}`);
  await c.op('hello');
  return c;
}

test('a commit that fails after the rows were returned is not acked', async () => {
  const room = uniqueRoom('commit');
  const d = await pgClient();
  await d.connect();
  // a deferred trigger fails at COMMIT, after chat_post returned its rows
  await d.query(`CREATE OR REPLACE FUNCTION test_fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.room = '${room}' AND NEW.text = 'FAILCOMMIT' THEN RAISE EXCEPTION 'failing at commit'; END IF;
    RETURN NEW; END $$`);
  await d.query(`CREATE CONSTRAINT TRIGGER test_fail_commit AFTER INSERT ON messages
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_fail_commit()`);
  try {
    const c = await guest('committer');
    c.send({ op: 'send', room, text: 'FAILCOMMIT', cid: 'f1', ref: 'f' });
    const e = await c.next((x) => x.ref === 'f');
    assert.equal(e.op, 'error', 'not an ack');
    assert.equal(e.code, 'unavailable');
    const n = await d.query('SELECT count(*)::int AS n FROM messages WHERE room = $1', [room]);
    assert.equal(n.rows[0].n, 0);
    c.send({ op: 'send', room, text: 'fine', cid: 'f2', ref: 'g' });
    const ok = await c.next((x) => x.ref === 'g');
    assert.equal(ok.op, 'ack');
    assert.equal(ok.seq, 1, 'the failed one used no seq');
    c.close();
  } finally {
    await d.query('DROP TRIGGER test_fail_commit ON messages');
    await d.query('DROP FUNCTION test_fail_commit()');
    await d.end();
  }
});

// A cursor past the room cannot be told apart here from a database that
// went back in time (docs/protocol.md, Reset): the client is told to drop
// the room (reset to 0), gets its last messages again and everything after,
// each once, with nothing silently skipped as "already seen".
test('joining with a cursor ahead of the room here: a reset to 0, then the room again and everything after', async () => {
  const room = uniqueRoom('ahead');
  const a = await guest('w');
  for (let i = 1; i <= 3; i++) {
    a.send({ op: 'send', room, text: `m${i}`, cid: `m${i}`, ref: i });
    await a.next((x) => x.ref === i);
  }
  const b = await guest('r');
  // b claims to have seen up to 5 (on another process, say) while 3 exist
  b.send({ op: 'join', room, since: 5 });
  assert.equal((await b.op('joined')).seq, 3);
  assert.equal((await b.op('reset')).seq, 0);
  for (let i = 4; i <= 7; i++) {
    a.send({ op: 'send', room, text: `m${i}`, cid: `m${i}`, ref: i });
    await a.next((x) => x.ref === i);
  }
  const got = [];
  while (got.length < 7) got.push((await b.op('msg')).seq);
  assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7]);
  a.close(); b.close();
});

test('a backlog bigger than the outbox is cut to fit, not closed with 1008', async () => {
  const room = uniqueRoom('bigbacklog');
  const d = await pgClient();
  await d.connect();
  const n = 300;
  const text = 'z'.repeat(4000);
  await d.query('SELECT chat_post($1::text[], $2::text[], $3::text[], $4::text[])',
    [Array(n).fill(room), Array(n).fill('~filler'), Array(n).fill(text), Array(n).fill(null)]);
  await d.end();
  const c = await guest('reader');
  c.send({ op: 'join', room, since: 0 });
  const j = await c.op('joined');
  assert.equal(j.seq, n);
  const seqs = [];
  for (;;) {
    const m = await c.op('msg');
    seqs.push(m.seq);
    if (m.seq === n) break;
  }
  // the newest ones, in order, ending at N; the rest is for history
  assert.ok(seqs.length >= 100 && seqs.length < n, `${seqs.length} replayed`);
  seqs.forEach((s, i) => assert.equal(s, n - seqs.length + 1 + i));
  assert.equal(c.closed, null);
  c.send({ op: 'ping', ref: 'alive' });
  assert.equal((await c.op('pong')).ref, 'alive');
  c.close();
});
