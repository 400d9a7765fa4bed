// A database that went back in time (issue 13 item 3), end to end: the
// stack's database is dumped (pg_dump), more messages are sent, and the
// older copy is restored under the running stack (pg_restore --clean, in
// one transaction), as an admin restoring a backup would, or as a promoted
// asynchronous standby that lacked the newest messages would look. The
// next messages reuse seqs the clients have already seen. Every client must
// end up showing exactly what the table holds, in order, each once: the
// live WebSocket member and the parked long-poll member get a `reset` and
// the new messages (not dropped as duplicates), and a WebSocket and a
// long-poll client that resume with a cursor past the room see the reset
// too. Each client's screen is modelled as the page keeps it: a message
// appends (one at or below the last shown is a duplicate: a failure), a
// reset drops what is shown past its seq.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client, PG_SOCK, pgClient, uniqueRoom, withTimeout } from './lib.mjs';
import { Poller, pollOnce, send } from './lp_lib.mjs';

const run = promisify(execFile);
const PGBIN = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(a) - Number(b))
  .map((v) => `/usr/lib/postgresql/${v}/bin`).pop();
const CONN = ['-h', PG_SOCK, '-U', 'chat', '-d', 'chat'];

// What a page shows of one room, from the events it got in order.
class Screen {
  constructor(room) {
    this.room = room;
    this.shown = [];
    this.resets = [];
    this.errors = [];
  }

  apply(ev) {
    if (ev.room !== this.room) return;
    if (ev.op === 'reset') {
      this.resets.push(ev.seq);
      this.shown = this.shown.filter((m) => m.seq <= ev.seq);
    } else if (ev.op === 'msg') {
      const last = this.shown.at(-1);
      if (last && ev.seq <= last.seq) this.errors.push(`seq ${ev.seq} after ${last.seq}: a duplicate`);
      else if (last && ev.seq !== last.seq + 1) this.errors.push(`seq ${ev.seq} after ${last.seq}: a hole`);
      else this.shown.push({ seq: ev.seq, text: ev.text });
    }
  }

  of(events) {
    for (const ev of events) this.apply(ev);
    return this;
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

async function wsSend(ws, room, text, ref) {
  ws.send({ op: 'send', room, text, cid: ref, ref });
  const ev = await ws.next((e) => e.ref === ref, 15000, `ack of ${text}`);
  assert.equal(ev.op, 'ack', JSON.stringify(ev));
  return ev;
}

async function table(room) {
  const db = await pgClient();
  await db.connect();
  try {
    const { rows } = await db.query('SELECT seq, text FROM messages WHERE room = $1 ORDER BY seq', [room]);
    return rows.map((r) => ({ seq: Number(r.seq), text: r.text }));
  } finally {
    await db.end();
  }
}

async function wsMember(room, since) {
  const c = await Client.connect('name=wendy');
  await c.op('hello');
  c.send({ op: 'join', room, since });
  await c.op('joined');
  return c;
}

const screenOf = (c, room) => new Screen(room).of(c.events);
const texts = (s) => s.shown.map((m) => m.text);

test('a restored older database: live and resuming clients get a reset and show exactly the table, once each', async () => {
  const room = uniqueRoom('restored');
  const dir = mkdtempSync(join(tmpdir(), 'chat-restore-'));
  try {
    const rx = await wsMember(room, 0);
    const lp = new Poller([room], { name: 'lena', since: 0, timeout: 30 }).start();
    const tx = await Client.connect('name=sam');
    await tx.op('hello');

    for (const t of ['a1', 'a2', 'a3']) await wsSend(tx, room, t, t);
    await run(`${PGBIN}/pg_dump`, [...CONN, '-Fc', '-f', `${dir}/chat.dump`]);
    for (const t of ['b4', 'b5']) await wsSend(tx, room, t, t);
    await waitFor(rx, () => texts(screenOf(rx, room)).length === 5, 10000, 'five by WebSocket');
    await lp.waitFor((p) => p.msgs.get(room).length === 5, 10000, 'five by long-poll');
    // a WebSocket and a long-poll client that saw 1..5 and went away
    const resumeWs = await wsMember(room, 0);
    await waitFor(resumeWs, () => texts(screenOf(resumeWs, room)).length === 5, 10000, 'five');
    resumeWs.close();

    // the older copy, restored under the running stack
    await run(`${PGBIN}/pg_restore`, [...CONN, '--clean', '--if-exists', '--single-transaction',
      `${dir}/chat.dump`]);
    assert.deepEqual(texts({ shown: await table(room) }), ['a1', 'a2', 'a3']);

    // the next message reuses seq 4; the live members must not drop it
    const ack = await wsSend(tx, room, 'c4', 'c4');
    assert.equal(ack.seq, 4);
    await waitFor(rx, () => texts(screenOf(rx, room)).at(-1) === 'c4', 15000, 'c4 by WebSocket');
    await lp.waitFor((p) => texts(new Screen(room).of(p.events)).at(-1) === 'c4', 15000, 'c4 by long-poll');

    // clients resuming with a cursor past the room (5 > 4)
    const back = await wsMember(room, 5);
    const lpBack = await pollOnce(new URLSearchParams({ rooms: `${room}:5`, name: 'lou', timeout: '0' }).toString());
    assert.equal(lpBack.status, 200);
    const lpBackScreen = new Screen(room).of(
      [{ op: 'msg', room, seq: 1, text: 'a1' }, { op: 'msg', room, seq: 2, text: 'a2' },
        { op: 'msg', room, seq: 3, text: 'a3' }, { op: 'msg', room, seq: 4, text: 'b4' },
        { op: 'msg', room, seq: 5, text: 'b5' }, ...lpBack.json.events]);
    assert.ok(lpBackScreen.resets.length === 1, `the resuming poll is told: ${lpBack.text}`);
    const [cur] = lpBack.json.cursor.split(',').map((p) => Number(p.split(':')[1]));
    const lpNext = await pollOnce(new URLSearchParams({ rooms: `${room}:${cur}`, name: 'lou', timeout: '0' }).toString());
    lpBackScreen.of(lpNext.json.events);

    for (const t of ['c5', 'c6']) await wsSend(tx, room, t, t);
    const want = await table(room);
    assert.deepEqual(want.map((m) => m.text), ['a1', 'a2', 'a3', 'c4', 'c5', 'c6']);
    const screens = {
      'live WebSocket': () => screenOf(rx, room),
      'live long-poll': () => new Screen(room).of(lp.events),
      // it shows what it had (1..5 of the first connection), then what the new one brings
      'resuming WebSocket': () => new Screen(room).of([...resumeWs.events, ...back.events]),
    };
    await waitFor(rx, () => texts(screens['live WebSocket']()).at(-1) === 'c6', 15000, 'c6 by WebSocket');
    await waitFor(back, () => texts(screenOf(back, room)).at(-1) === 'c6', 15000, 'c6 by the resumed WebSocket');
    await lp.waitFor(() => texts(screens['live long-poll']()).at(-1) === 'c6', 15000, 'c6 by long-poll');
    for (const [who, screen] of Object.entries(screens)) {
      const s = screen();
      assert.deepEqual(s.errors, [], who);
      assert.ok(s.resets.length >= 1, `${who} got a reset`);
      assert.deepEqual(s.shown, want, `${who} shows the table, each message once`);
    }
    // the resuming long-poll client, up to c4 (it polled before c5)
    assert.deepEqual(lpBackScreen.errors, []);
    assert.deepEqual(lpBackScreen.shown, want.slice(0, 4), 'the resuming long-poll client');
    await lp.stop();
    for (const c of [rx, tx, back]) c.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
