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

test('cids: posts and changes keep their own; a cid names one change; a NULL moderator flag is no moderator', async () => {
  const room = uniqueRoom('cid');
  const s1 = await post(room, 'alice', 'first', 'x');
  const e1 = await change(room, 'alice', s1, 'edit', 'first!', { cid: 'x' });
  assert.deepEqual([e1.err, e1.seq, e1.dup], [null, 2, false], 'the post\'s cid does not answer for an edit');
  const e2 = await change(room, 'alice', s1, 'edit', 'first!!', { cid: 'y' });
  assert.equal(e2.seq, 3);
  const retry = await change(room, 'alice', s1, 'edit', 'first!!', { cid: 'y' });
  assert.deepEqual([retry.seq, retry.dup], [3, true], 'a retry of the same edit');
  const other = await change(room, 'alice', s1, 'delete', null, { cid: 'y' });
  assert.equal(other.err, 'bad_request', 'the same cid for another change is refused');
  assert.equal(await post(room, 'alice', 'a new message', 'y'), 4, 'an edit\'s cid does not swallow a post');
  const b = await post(room, '~bob', 'bob says');
  const nul = await change(room, 'alice', b, 'delete', null, { moderator: null });
  assert.equal(nul.err, 'forbidden');
  assert.equal(await lastSeq(room), 5);
});

test('every earlier version goes: an edit again, a deletion of an edit, an edit that outlived its message', async () => {
  const room = uniqueRoom('versions');
  const s1 = await post(room, 'alice', 'meet at 5');
  await change(room, 'alice', s1, 'edit', 'my card is 4111');
  const e3 = await change(room, 'alice', s1, 'edit', 'meet at 6');
  let all = await rows(room);
  assert.equal(all[0].text, 'meet at 6');
  assert.deepEqual(all[1], { op: 'msg', room, seq: 2, user: 'alice', ts: all[1].ts, edit: 1 }, 'a superseded edit keeps no text');
  assert.equal(all[2].text, 'meet at 6');
  assert.ok(!JSON.stringify(all).includes('4111'));
  // deleting an edit row deletes its message
  const d = await change(room, 'alice', e3.seq, 'delete', null);
  assert.equal(d.err, null);
  all = await rows(room);
  assert.equal(all[3].delete, 1, 'the deletion names the message');
  assert.ok(all.slice(0, 3).every((m) => m.text === undefined), 'no text left');
  assert.equal(all[0].deleted, true);

  // retention removed the message; its edit (posted later) is still there
  // and can be deleted on its own
  const room2 = uniqueRoom('outlived');
  const m = await post(room2, 'alice', 'fine');
  await db.query("UPDATE messages SET ts = now() - interval '2 days' WHERE room = $1", [room2]);
  const abusive = await change(room2, 'alice', m, 'edit', 'ABUSIVE TEXT', { window: null });
  await db.query("INSERT INTO retention VALUES ($1, interval '1 day')", [room2]);
  try {
    await db.query('CALL chat_prune(0, 100, 0)');
  } finally {
    await db.query('DELETE FROM retention WHERE pattern = $1', [room2]);
  }
  const gone = await change(room2, 'mod', abusive.seq, 'delete', null, { moderator: true });
  assert.equal(gone.err, null);
  const left = await rows(room2);
  assert.deepEqual(left.map((x) => x.seq), [2, 3]);
  assert.equal(left[0].deleted, true);
  assert.equal(left[1].delete, 2);
  assert.ok(!JSON.stringify(left).includes('ABUSIVE'));
});

test('a large edit is announced as a hint; the row has it whole; a deleted row shows no cid', async () => {
  const room = uniqueRoom('big');
  const s1 = await post(room, 'alice', 'short', 'BUY PILLS NOW');
  const text = 'é'.repeat(3990); // 7980 bytes
  const e = await change(room, 'alice', s1, 'edit', text);
  const line = await heardLine('chat', (l) => l.room === room && l.seq === e.seq, 'the edit');
  assert.deepEqual(line, { op: 'hint', room, seq: e.seq });
  assert.equal((await rows(room))[1].text, text);
  await change(room, 'mod', s1, 'delete', null, { moderator: true });
  const all = await rows(room);
  assert.equal(all[0].cid, undefined);
  assert.ok(!JSON.stringify(all).includes('PILLS'));
});

// waits until every one of clients is waiting on a lock
async function waitLocked(...clients) {
  const pids = clients.map((c) => c.processID);
  await withTimeout((async () => {
    for (;;) {
      const r = await db.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY ($1) AND wait_event_type = 'Lock'", [pids]);
      if (r.rows[0].n === pids.length) return;
      await new Promise((res) => setTimeout(res, 20));
    }
  })(), 10000, `sessions ${pids} waiting on locks`);
}

test('a prune, a deletion, a post and a second prune on one room at once: one lock order, no deadlock, the horizon only grows', async () => {
  const room = uniqueRoom('lock');
  for (let i = 1; i <= 40; i++) await post(room, 'alice', `m${i}`);
  await db.query("UPDATE messages SET ts = now() - interval '2 days' + seq * interval '1 ms' WHERE room = $1", [room]);
  await db.query("INSERT INTO retention VALUES ($1, interval '1 day')", [room]);
  const s = await Promise.all(Array.from({ length: 5 }, async () => {
    const c = await pgClient();
    await c.connect();
    return c;
  }));
  const [L, B, C, D, E] = s;
  try {
    await L.query('BEGIN');
    await L.query('SELECT 1 FROM messages WHERE room = $1 AND seq = 25 FOR UPDATE', [room]);
    const pB = B.query('CALL chat_prune(0, 30, 0)');
    await waitLocked(B); // holds the room, its delete waits for row 25
    const pC = C.query("SELECT err FROM chat_change($1, 'mod', 10, 'delete', NULL, NULL, true, NULL)", [room]);
    const pD = D.query("SELECT seq FROM chat_post(ARRAY[$1], ARRAY['bob'], ARRAY['live'], ARRAY[NULL])", [room]);
    const pE = E.query('CALL chat_prune(0, 5, 0)');
    await waitLocked(B, C, D, E);
    await L.query('COMMIT');
    const [, rC, rD] = await Promise.all([pB, pC, pD, pE]);
    assert.equal(rC.rows[0].err, 'not_found', 'message 10 was pruned before the deletion got the room');
    const posted = Number(rD.rows[0].seq);
    const st = await db.query('SELECT horizon, last_seq FROM rooms WHERE name = $1', [room]);
    assert.equal(Number(st.rows[0].horizon), 40, 'every old message went, and the horizon says so');
    assert.equal(Number(st.rows[0].last_seq), 41);
    assert.equal(posted, 41);
    assert.deepEqual((await rows(room)).map((m) => m.seq), [41], 'nothing missing above the horizon');
  } finally {
    await L.query('ROLLBACK').catch(() => {});
    await Promise.all(s.map((c) => c.end()));
    await db.query('DELETE FROM retention WHERE pattern = $1', [room]);
  }
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
  // addresses of this run alone (a failed run leaves nothing that stops the next)
  const x = 1 + (process.pid % 250);
  const y = 1 + (Date.now() % 250);
  const host = `10.${x}.${y}.7`;
  const ids = [];
  const ban = async (target, addr, dur, reason) => {
    const id = Number((await db.query('SELECT chat_ban($1, $2::inet, $3::interval, $4, $5) AS id', [target, addr, dur, 'mod', reason])).rows[0].id);
    ids.push(id);
    return id;
  };
  const check = async (user, addr) => (await db.query('SELECT id, until, reason FROM chat_ban_check($1, $2::inet)', [user, addr])).rows;
  try {
    const id = await ban(who, host, '1 hour', 'links');
    const ann = await heardLine('chat_admin', (l) => l.op === 'ban' && l.id === id, 'the ban announcement');
    assert.deepEqual({ ...ann, until: undefined }, { op: 'ban', id, user: who, addr: host, until: undefined });
    assert.match(ann.until, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    assert.equal((await check(who, null))[0].reason, 'links', 'the name is banned');
    assert.equal(Number((await check(null, host))[0].id), id, 'so is the address');
    assert.equal(Number((await check('~someone', host))[0].id), id, 'whoever uses it');
    assert.equal(Number((await check('~someone', `::ffff:${host}`))[0].id), id, 'also when nginx writes it as IPv6');
    assert.deepEqual(await check('~someone', `10.${x}.${y}.8`), [], 'another address is not');

    // a network, given with host bits: stored and announced as the network
    const net = await ban(null, `10.${x}.${y}.99/24`, null, '');
    const nann = await heardLine('chat_admin', (l) => l.op === 'ban' && l.id === net, 'the network ban');
    assert.equal(nann.addr, `10.${x}.${y}.0/24`);
    assert.equal(Number((await check('alice', `10.${x}.${y}.200`))[0].id), net, 'a network ban covers its hosts');
    assert.deepEqual(await check('alice', `10.${x}.${(y % 250) + 1}.200`), [], 'and nothing else');

    // the longest ban is the one reported
    const longer = await ban(who, null, '1 day', 'again');
    assert.equal(Number((await check(who, null))[0].id), longer);

    assert.equal((await db.query('SELECT chat_unban($1, $2) AS ok', [id, 'mod'])).rows[0].ok, true);
    assert.equal((await db.query('SELECT chat_unban($1, $2) AS ok', [id, 'mod'])).rows[0].ok, false, 'lifted once');
    await heardLine('chat_admin', (l) => l.op === 'unban' && l.id === id, 'the unban announcement');
    await db.query('SELECT chat_unban($1, $2)', [longer, 'mod']);
    assert.deepEqual(await check(who, null), []);
    await db.query('SELECT chat_unban($1, $2)', [net, 'mod']);
    assert.deepEqual(await check('alice', `10.${x}.${y}.200`), []);

    // an expired ban stops nobody and stays on record
    const old = await ban(who, null, '1 minute', 'old');
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
  } finally {
    await db.query("UPDATE bans SET lifted = now(), lifted_by = 'test' WHERE id = ANY ($1) AND lifted IS NULL", [ids]);
  }
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
  assert.deepEqual(await seqs('-fox'), [], 'nothing to look for: nothing found');
  assert.deepEqual(await seqs(''), []);
  for (const q of ["'", '"', '&&|!:*()', '\\', '<script>', "fox' OR 1=1 --", '', ' ', '😀', 'a'.repeat(5000)]) {
    assert.ok(Array.isArray(await search(q)), `query ${JSON.stringify(q.slice(0, 20))} answers`);
  }
});

test('search in a long room: the newest matches, and old ones past the recent window', async () => {
  const room = uniqueRoom('long');
  await db.query('INSERT INTO rooms (name, last_seq) VALUES ($1, 25000)', [room]);
  await db.query(`INSERT INTO messages (room, seq, sender, text, ts)
    SELECT $1, g, 'alice', CASE WHEN g IN (5, 24990) THEN 'a needle here' ELSE 'hay ' || g END,
           now() - interval '1 hour' + g * interval '1 ms'
    FROM generate_series(1, 25000) g`, [room]);
  const seqs = async (q, before = null, limit = 50) =>
    (await db.query('SELECT seq FROM chat_search($1, $2, $3, $4)', [room, q, before, limit])).rows.map((r) => Number(r.seq));
  assert.deepEqual(await seqs('needle'), [24990, 5], 'one in the newest 20,000, one before them');
  assert.deepEqual(await seqs('needle', 24990), [5]);
  assert.deepEqual(await seqs('needle', null, 1), [24990], 'a full page needs no older look');
  assert.deepEqual(await seqs('hay', null, 3), [25000, 24999, 24998]);
  assert.deepEqual(await seqs('hay', 4, 10), [3, 2, 1], 'a page at the very start');
});
