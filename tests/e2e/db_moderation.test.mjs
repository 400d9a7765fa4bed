// The database side of moderation (sql/003_moderation.sql): edits and
// deletions are events in the room's order and leave no removed text in
// any row; bans and kicks are recorded and announced to every process;
// retention removes a prefix of a room and says where history starts;
// search finds current text only; chat-export writes a room as JSON lines.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { DATABASE_URL, ROOT, pgClient, uniqueRoom, withTimeout } from './lib.mjs';

let db;
let listener;
const heard = { chat: [], chat_admin: [] };
before(async () => {
  db = await pgClient();
  await db.connect();
  listener = await pgClient();
  await listener.connect();
  listener.on('notification', (n) => {
    for (const line of n.payload.split('\n')) heard[n.channel]?.push(JSON.parse(line));
  });
  await listener.query('LISTEN chat');
  await listener.query('LISTEN chat_admin');
});
after(async () => {
  await listener.end();
  await db.end();
});

async function post(room, sender, text, cid = null) {
  const r = await db.query('SELECT seq FROM chat_post($1::text[], $2::text[], $3::text[], $4::text[])',
    [[room], [sender], [text], [cid]]);
  return Number(r.rows[0].seq);
}

// chat_change as a daemon calls it
async function change(room, actor, ref, kind, text, { cid = null, moderator = false, window = '15 minutes' } = {}) {
  const r = await db.query('SELECT seq, ts, dup, err, message FROM chat_change($1, $2, $3, $4, $5, $6, $7, $8::interval)',
    [room, actor, ref, kind, text, cid, moderator, window]);
  const row = r.rows[0];
  return { ...row, seq: row.seq === null ? null : Number(row.seq) };
}

// every row of a room as clients read it (history, backlog, catch-up)
async function rows(room) {
  const r = await db.query('SELECT chat_row_json(m) AS j FROM messages m WHERE room = $1 ORDER BY seq', [room]);
  return r.rows.map((x) => JSON.parse(x.j));
}

async function lastSeq(room) {
  return Number((await db.query('SELECT last_seq FROM rooms WHERE name = $1', [room])).rows[0].last_seq);
}

// waits until the listener heard a line matching pred on channel ch
async function heardLine(ch, pred, what) {
  const found = () => heard[ch].find(pred);
  return withTimeout((async () => {
    for (;;) {
      if (found()) return found();
      await db.query('SELECT 1'); // a round trip lets pending notifications in
      await new Promise((r) => setImmediate(r));
    }
  })(), 5000, what);
}

test('an edit is the room\'s next event; the message reads as edited everywhere, the old text nowhere', async () => {
  const room = uniqueRoom('edit');
  const s1 = await post(room, 'alice', 'helo wrld', 'a1');
  await post(room, '~bob', 'hi');
  const e = await change(room, 'alice', s1, 'edit', 'hello world', { cid: 'e1' });
  assert.equal(e.err, null);
  assert.equal(e.seq, 3, 'the room\'s next seq');
  assert.equal(e.dup, false);

  const line = await heardLine('chat', (l) => l.room === room && l.seq === 3, 'the edit\'s NOTIFY');
  assert.deepEqual(line, { op: 'msg', room, seq: 3, user: 'alice', text: 'hello world', ts: e.ts, cid: 'e1', edit: 1 });

  const all = await rows(room);
  assert.deepEqual(all.map((m) => m.seq), [1, 2, 3], 'gap-free');
  assert.equal(all[0].text, 'hello world', 'history shows the current text');
  assert.equal(all[0].edited, e.ts, 'and when it was edited');
  assert.equal(all[0].cid, 'a1');
  assert.ok(!JSON.stringify(all).includes('helo wrld'), 'the old text is in no row');

  // a retry with the same cid answers the same and changes nothing
  const again = await change(room, 'alice', s1, 'edit', 'hello world', { cid: 'e1' });
  assert.deepEqual([again.seq, again.ts, again.dup], [3, e.ts, true]);
  assert.equal(await lastSeq(room), 3);
  // and the room goes on after it
  assert.equal(await post(room, '~bob', 'next'), 4);
});

test('a deletion leaves a tombstone; the text and every earlier version of it are gone', async () => {
  const room = uniqueRoom('del');
  const s1 = await post(room, 'alice', 'secret one');
  await change(room, 'alice', s1, 'edit', 'secret two');
  const d = await change(room, 'alice', s1, 'delete', null, { cid: 'd1' });
  assert.equal(d.err, null);
  assert.equal(d.seq, 3);
  const all = await rows(room);
  assert.deepEqual(all, [
    { op: 'msg', room, seq: 1, user: 'alice', ts: all[0].ts, deleted: true },
    { op: 'msg', room, seq: 2, user: 'alice', ts: all[1].ts, edit: 1, deleted: true },
    { op: 'msg', room, seq: 3, user: 'alice', ts: d.ts, cid: 'd1', delete: 1 },
  ]);
  assert.ok(!JSON.stringify(all).includes('secret'));
  const line = await heardLine('chat', (l) => l.room === room && l.seq === 3, 'the deletion\'s NOTIFY');
  assert.equal(line.delete, 1);
  assert.equal(line.text, undefined);

  // a deleted message cannot be edited or deleted again
  for (const [kind, text] of [['edit', 'x'], ['delete', null]]) {
    const r = await change(room, 'alice', s1, kind, text);
    assert.equal(r.err, 'not_found', kind);
  }
  assert.equal(await lastSeq(room), 3, 'refusals take no seq');
});

test('who may change what: the author edits, the author or a moderator deletes, within the window', async () => {
  const room = uniqueRoom('rules');
  const a = await post(room, 'alice', 'mine');
  const b = await post(room, '~bob', 'spam spam');

  let r = await change(room, '~bob', a, 'edit', 'hacked');
  assert.deepEqual([r.err, r.seq], ['forbidden', null], 'another user cannot edit');
  r = await change(room, 'carol', a, 'edit', 'hacked', { moderator: true });
  assert.equal(r.err, 'forbidden', 'a moderator cannot put words in someone\'s mouth');
  r = await change(room, '~bob', a, 'delete', null);
  assert.equal(r.err, 'forbidden', 'another user cannot delete');
  r = await change(room, 'alice', 99, 'delete', null);
  assert.equal(r.err, 'not_found', 'no such seq');
  r = await change(uniqueRoom('none'), 'alice', 1, 'delete', null);
  assert.equal(r.err, 'not_found', 'no such room');
  assert.equal(await lastSeq(room), 2, 'refusals take no seq');

  // the window: an hour-old message is past a 15-minute window for its
  // author, not for a moderator
  await db.query("UPDATE messages SET ts = ts - interval '1 hour' WHERE room = $1", [room]);
  r = await change(room, 'alice', a, 'edit', 'late');
  assert.equal(r.err, 'too_late');
  r = await change(room, '~bob', b, 'delete', null);
  assert.equal(r.err, 'too_late');
  r = await change(room, 'alice', a, 'edit', 'late but allowed', { window: null });
  assert.equal(r.err, null, 'no window: any time');
  r = await change(room, 'carol', b, 'delete', null, { moderator: true });
  assert.equal(r.err, null, 'a moderator deletes any message, any time');
  assert.equal(r.seq, 4);

  // a change row is not a message: it cannot be changed itself
  r = await change(room, 'alice', 3, 'edit', 'edit of an edit', { window: null });
  assert.equal(r.err, 'not_found');
  const all = await rows(room);
  assert.equal(all[1].deleted, true);
  assert.equal(all[3].user, 'carol', 'a deletion names who deleted');
});

test('posts and changes from many sessions at once: one gap-free order, every event heard once', async () => {
  const room = uniqueRoom('mix');
  const sessions = await Promise.all(Array.from({ length: 4 }, async () => {
    const c = await pgClient();
    await c.connect();
    return c;
  }));
  try {
    const mine = sessions.map(() => []);
    await Promise.all(sessions.map(async (c, w) => {
      for (let i = 0; i < 40; i++) {
        if (i % 3 === 2 && mine[w].length) {
          const ref = mine[w][Math.floor(mine[w].length / 2)];
          const kind = i % 2 ? 'edit' : 'delete';
          const r = await c.query('SELECT seq, err FROM chat_change($1, $2, $3, $4, $5, $6, false, NULL)',
            [room, `w${w}`, ref, kind, kind === 'edit' ? `edited ${i}` : null, `c${i}`]);
          if (r.rows[0].err === null && kind === 'delete') mine[w].splice(mine[w].indexOf(ref), 1);
        } else {
          const r = await c.query('SELECT seq FROM chat_post($1::text[], $2::text[], $3::text[], $4::text[])',
            [[room], [`w${w}`], [`m${i}`], [`p${i}`]]);
          mine[w].push(Number(r.rows[0].seq));
        }
      }
    }));
  } finally {
    await Promise.all(sessions.map((c) => c.end()));
  }
  const all = await rows(room);
  const n = await lastSeq(room);
  assert.deepEqual(all.map((m) => m.seq), Array.from({ length: n }, (_, i) => i + 1), 'gap-free');
  for (const m of all) {
    if (m.edit) assert.ok(m.edit < m.seq && !all[m.edit - 1].edit && !all[m.edit - 1].delete);
    if (m.delete) assert.equal(all[m.delete - 1].deleted, true);
  }
  for (let i = 1; i < all.length; i++) assert.ok(all[i].ts >= all[i - 1].ts, 'ts never goes backwards');
  await heardLine('chat', (l) => l.room === room && l.seq === n, 'the last event');
  const got = heard.chat.filter((l) => l.room === room).map((l) => l.seq);
  assert.deepEqual(got, Array.from({ length: n }, (_, i) => i + 1), 'every event notified once, in order');
});

test('bans: by name, by address or network, until lifted or expired; recorded and announced', async () => {
  const who = `~spam${process.pid % 10000}${Date.now() % 100000}`;
  const id = Number((await db.query("SELECT chat_ban($1, '192.0.2.7', interval '1 hour', 'mod', 'links') AS id", [who])).rows[0].id);
  const ann = await heardLine('chat_admin', (l) => l.op === 'ban' && l.id === id, 'the ban announcement');
  assert.deepEqual({ ...ann, until: undefined }, { op: 'ban', id, user: who, addr: '192.0.2.7', until: undefined });
  assert.match(ann.until, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

  const check = async (user, addr) => (await db.query('SELECT id, until, reason FROM chat_ban_check($1, $2::inet)', [user, addr])).rows;
  assert.equal((await check(who, null))[0].reason, 'links', 'the name is banned');
  assert.equal(Number((await check(null, '192.0.2.7'))[0].id), id, 'so is the address');
  assert.equal(Number((await check('~someone', '192.0.2.7'))[0].id), id, 'whoever uses it');
  assert.deepEqual(await check('~someone', '192.0.2.8'), [], 'another address is not');

  const net = Number((await db.query("SELECT chat_ban(NULL, '198.51.100.0/24', NULL, 'mod', '') AS id")).rows[0].id);
  assert.equal(Number((await check('alice', '198.51.100.9'))[0].id), net, 'a network ban covers its hosts');
  assert.equal((await check('alice', '198.51.100.9'))[0].until, null, 'until lifted');

  assert.equal((await db.query('SELECT chat_unban($1, $2) AS ok', [id, 'mod'])).rows[0].ok, true);
  assert.equal((await db.query('SELECT chat_unban($1, $2) AS ok', [id, 'mod'])).rows[0].ok, false, 'lifted once');
  await heardLine('chat_admin', (l) => l.op === 'unban' && l.id === id, 'the unban announcement');
  assert.deepEqual(await check(who, null), []);
  await db.query('SELECT chat_unban($1, $2)', [net, 'mod']);
  assert.deepEqual(await check('alice', '198.51.100.9'), []);

  // an expired ban stops nobody and stays on record
  const old = Number((await db.query("SELECT chat_ban($1, NULL, interval '1 minute', 'mod', 'old') AS id", [who])).rows[0].id);
  await db.query("UPDATE bans SET created = created - interval '1 hour', until = until - interval '1 hour' WHERE id = $1", [old]);
  assert.deepEqual(await check(who, null), []);
  const rec = await db.query('SELECT target, by, reason, lifted_by FROM bans WHERE id = ANY ($1) ORDER BY id', [[id, old]]);
  assert.deepEqual(rec.rows, [
    { target: who, by: 'mod', reason: 'links', lifted_by: 'mod' },
    { target: who, by: 'mod', reason: 'old', lifted_by: null },
  ]);
  // a bad name is refused, not stored
  await assert.rejects(db.query("SELECT chat_ban('bad name', NULL, NULL, 'mod', '')"), /bans_target_check/);

  await db.query("SELECT chat_kick('alice', 'admin')");
  await heardLine('chat_admin', (l) => l.op === 'kick' && l.user === 'alice' && l.by === 'admin', 'the kick');
});

test('retention removes the oldest messages in batches and records where history starts', async () => {
  const room = uniqueRoom('keep');
  for (let i = 1; i <= 30; i++) await post(room, 'alice', `m${i}`);
  // the first 20 are two days old (ts still growing with seq)
  await db.query(`UPDATE messages SET ts = now() - interval '2 days' + seq * interval '1 second'
                  WHERE room = $1 AND seq <= 20`, [room]);
  const edit = await change(room, 'alice', 25, 'edit', 'm25 fixed', { window: null });
  assert.equal(edit.seq, 31);
  await db.query("INSERT INTO retention VALUES ($1, interval '1 day')", [room]);
  try {
    const removed = Number((await db.query('CALL chat_prune(0, 7)')).rows[0].removed);
    assert.ok(removed >= 20, `removed ${removed}`);
    const left = await rows(room);
    assert.deepEqual(left.map((m) => m.seq), Array.from({ length: 11 }, (_, i) => i + 21), 'a prefix went; nothing above it');
    assert.equal(Number((await db.query('SELECT horizon FROM rooms WHERE name = $1', [room])).rows[0].horizon), 20);
    assert.equal(await post(room, 'alice', 'after'), 32, 'seq goes on');
    assert.equal((await change(room, 'alice', 5, 'delete', null, { moderator: true })).err, 'not_found',
      'what is below the horizon cannot be changed');
    // nothing more is old enough: a second prune removes nothing
    assert.equal(Number((await db.query('CALL chat_prune(0, 7)')).rows[0].removed), 0);
    // export says where the history starts
    const out = execFileSync(`${ROOT}/scripts/chat-export`, ['--db', DATABASE_URL, room], { encoding: 'utf8' });
    const lines = out.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines[0], { op: 'horizon', room, seq: 20 });
    assert.deepEqual(lines.slice(1), await rows(room));
  } finally {
    await db.query('DELETE FROM retention WHERE pattern = $1', [room]);
  }
});

test('the most specific retention pattern of a room applies', async () => {
  const base = uniqueRoom('ret');
  await db.query(`INSERT INTO retention VALUES ($1, interval '2 days'), ($2, interval '1 day'), ($3, interval '3 days')`,
    [`${base}*`, `${base}-x`, `${base}-x*`]);
  try {
    const keep = async (room) => (await db.query('SELECT extract(epoch FROM chat_retention_for($1))::int AS s', [room])).rows[0].s;
    assert.equal(await keep(`${base}-x`), 86400, 'the exact name');
    assert.equal(await keep(`${base}-xy`), 3 * 86400, 'the longest prefix');
    assert.equal(await keep(`${base}-y`), 2 * 86400, 'a shorter prefix');
    await assert.rejects(db.query("INSERT INTO retention VALUES ('Bad*', interval '1 day')"), /retention_pattern_check/);
    await assert.rejects(db.query("INSERT INTO retention VALUES ('ok', interval '0')"), /retention_keep_check/);
  } finally {
    await db.query('DELETE FROM retention WHERE pattern LIKE $1', [`${base}%`]);
  }
});

test('search finds current text in one room, newest first, in pages; removed text and hostile queries find nothing', async () => {
  const room = uniqueRoom('find');
  const other = uniqueRoom('find');
  await post(room, 'alice', 'The quick brown fox');            // 1
  await post(room, '~bob', 'a lazy dog');                       // 2
  await post(room, 'alice', 'Fox hunting is banned');           // 3
  const typo = await post(room, 'alice', 'teh zebra');          // 4
  const gone = await post(room, '~bob', 'fox secret plans');    // 5
  await post(other, 'alice', 'fox in another room');
  await change(room, 'alice', typo, 'edit', 'the zebra and a fox'); // 6
  await change(room, '~bob', gone, 'delete', null);                 // 7

  const search = async (q, before = null, limit = 50) =>
    (await db.query('SELECT seq, line FROM chat_search($1, $2, $3, $4)', [room, q, before, limit])).rows
      .map((r) => JSON.parse(r.line));
  const seqs = async (...a) => (await search(...a)).map((m) => m.seq);
  assert.deepEqual(await seqs('fox'), [4, 3, 1], 'current text, newest first; not the deleted one, not the edit row, not the other room');
  assert.equal((await search('fox'))[0].text, 'the zebra and a fox');
  assert.deepEqual(await seqs('FOX'), [4, 3, 1], 'case does not matter');
  assert.deepEqual(await seqs('teh'), [], 'the text before the edit is not found');
  assert.deepEqual(await seqs('secret'), [], 'deleted text is not found');
  assert.deepEqual(await seqs('"quick brown"'), [1], 'a phrase');
  assert.deepEqual(await seqs('fox -hunting'), [4, 1], 'a word left out');
  assert.deepEqual(await seqs('dog or zebra'), [4, 2], 'either');
  assert.deepEqual(await seqs('fox', 4, 1), [3], 'a page below seq 4');
  assert.deepEqual(await seqs('fox', 3, 5), [1], 'the next page');
  for (const q of ["'", '"', '&&|!:*()', '\\', '<script>', "fox' OR 1=1 --", '', ' ', '😀', 'a'.repeat(5000)]) {
    assert.ok(Array.isArray(await search(q)), `query ${JSON.stringify(q.slice(0, 20))} answers`);
  }
});
