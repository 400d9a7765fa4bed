// A database that went back in time (issue 13 item 3), end to end: the
// stack's database is dumped (pg_dump), more messages are sent, and the
// older copy is restored under the running stack (pg_restore --clean, in
// one transaction), as an admin restoring a backup would, or as a promoted
// asynchronous standby that lacked the newest messages would look. The
// next messages reuse seqs the clients have already seen. Every client must
// end up showing exactly what the table holds, in order, each once: the
// live WebSocket member, the parked long-poll member and the open event
// stream (GET events: it never polls again, the listener must tell it) get
// a `reset` and the new messages (not dropped as duplicates), and a
// WebSocket, a long-poll and an event-stream client that resume with a
// cursor past the room see the reset too; an event stream's `id:` follows
// the reset, so that a reconnect resumes from where it really is. Each client's screen is modelled as the page keeps it: a message
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
import { openStream } from './sse_lib.mjs';

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
const sseScreen = (s, room) => new Screen(room).of(s.events.map((e) => e.data).filter(Boolean));
const texts = (s) => s.shown.map((m) => m.text);

test('a restored older database: live and resuming clients get a reset and show exactly the table, once each', async () => {
  const room = uniqueRoom('restored');
  const dir = mkdtempSync(join(tmpdir(), 'chat-restore-'));
  try {
    const rx = await wsMember(room, 0);
    const lp = new Poller([room], { name: 'lena', since: 0, timeout: 30 }).start();
    const sse = await openStream(new URLSearchParams({ rooms: `${room}:0`, name: 'sara' }).toString());
    assert.equal(sse.status, 200, sse.text);
    const tx = await Client.connect('name=sam');
    await tx.op('hello');

    for (const t of ['a1', 'a2', 'a3']) await wsSend(tx, room, t, t);
    await run(`${PGBIN}/pg_dump`, [...CONN, '-Fc', '-f', `${dir}/chat.dump`]);
    for (const t of ['b4', 'b5']) await wsSend(tx, room, t, t);
    await waitFor(rx, () => texts(screenOf(rx, room)).length === 5, 10000, 'five by WebSocket');
    await lp.waitFor((p) => p.msgs.get(room).length === 5, 10000, 'five by long-poll');
    await sse.waitFor(() => texts(sseScreen(sse, room)).length === 5, 10000, 'five by event stream');
    assert.equal(sse.lastEventId, `${room}:5`);
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
    await sse.waitFor(() => texts(sseScreen(sse, room)).at(-1) === 'c4', 15000, 'c4 by event stream');

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
    // a browser's EventSource reconnecting with the id it saw last (5)
    const sseBack = await openStream(new URLSearchParams({ rooms: room, name: 'sid' }).toString(),
      { lastEventId: `${room}:5` });
    assert.equal(sseBack.status, 200, sseBack.text);

    for (const t of ['c5', 'c6']) await wsSend(tx, room, t, t);
    const want = await table(room);
    assert.deepEqual(want.map((m) => m.text), ['a1', 'a2', 'a3', 'c4', 'c5', 'c6']);
    const screens = {
      'live WebSocket': () => screenOf(rx, room),
      'live long-poll': () => new Screen(room).of(lp.events),
      // it shows what it had (1..5 of the first connection), then what the new one brings
      'resuming WebSocket': () => new Screen(room).of([...resumeWs.events, ...back.events]),
      'live event stream': () => sseScreen(sse, room),
      // it showed 1..5 (a1..b5, as the live stream got them) before it reconnected
      'resuming event stream': () => new Screen(room).of([
        ...sse.events.map((e) => e.data).filter((d) => d?.op === 'msg').slice(0, 5),
        ...sseBack.events.map((e) => e.data).filter(Boolean)]),
    };
    await waitFor(rx, () => texts(screens['live WebSocket']()).at(-1) === 'c6', 15000, 'c6 by WebSocket');
    await waitFor(back, () => texts(screenOf(back, room)).at(-1) === 'c6', 15000, 'c6 by the resumed WebSocket');
    await lp.waitFor(() => texts(screens['live long-poll']()).at(-1) === 'c6', 15000, 'c6 by long-poll');
    await sse.waitFor(() => texts(screens['live event stream']()).at(-1) === 'c6', 15000, 'c6 by event stream');
    await sseBack.waitFor(() => texts(screens['resuming event stream']()).at(-1) === 'c6', 15000,
      'c6 by the resumed event stream');
    for (const [who, screen] of Object.entries(screens)) {
      const s = screen();
      assert.deepEqual(s.errors, [], who);
      assert.ok(s.resets.length >= 1, `${who} got a reset`);
      assert.deepEqual(s.shown, want, `${who} shows the table, each message once`);
    }
    // each event stream's cursor (what a reconnect sends as Last-Event-ID)
    // went back with its reset and is at the end of the table now
    for (const s of [sse, sseBack]) {
      const reset = s.events.find((e) => e.data?.op === 'reset');
      assert.equal(reset.id, `${room}:${reset.data.seq}`, 'the reset moves the stream\'s id');
      assert.equal(s.lastEventId, `${room}:6`);
    }
    // the resuming long-poll client, up to c4 (it polled before c5)
    assert.deepEqual(lpBackScreen.errors, []);
    assert.deepEqual(lpBackScreen.shown, want.slice(0, 4), 'the resuming long-poll client');
    await lp.stop();
    for (const c of [rx, tx, back, sse, sseBack]) c.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
