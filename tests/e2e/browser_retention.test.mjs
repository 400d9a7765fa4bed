// chat-client.js in Chromium against the real stack, after retention
// removed the start of a room: a client resuming from below the horizon
// on either transport emits 'horizon', never 'gap', and gets what is above.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, pgClient, uniqueRoom } from './lib.mjs';
import { SKIP, WAIT, launch } from './browser_lib.mjs';
import { send } from './lp_lib.mjs';

describe('retention seen by chat-client.js', { skip: SKIP }, () => {
  let browser;
  let page;
  let db;
  before(async () => {
    browser = await launch();
    page = await browser.newPage();
    await page.goto(`${BASE}favicon.svg`);
    db = await pgClient();
    await db.connect();
  });
  after(async () => {
    await browser?.close();
    await db?.end();
  });

  for (const transport of ['websocket', 'longpoll']) {
    test(`a cursor below the horizon is a 'horizon' event, not a 'gap' (${transport})`, async () => {
      const room = uniqueRoom('rethz');
      for (let i = 1; i <= 4; i++) assert.equal((await send(room, `old ${i}`, { name: 'rex' })).status, 200);
      await db.query("INSERT INTO retention VALUES ($1, interval '1 millisecond')", [room]);
      await db.query('SELECT pg_sleep(0.01)'); // the messages are now older than the keep
      await db.query('CALL chat_prune()');
      await db.query('DELETE FROM retention WHERE pattern = $1', [room]);
      for (let i = 5; i <= 6; i++) assert.equal((await send(room, `new ${i}`, { name: 'rex' })).status, 200);

      const got = await page.evaluate(async ({ room, transport, wait }) => {
        const { ChatClient } = await import('/chat/chat-client.js');
        const chat = new ChatClient({ name: 'rae', transports: [transport], sharePoll: false });
        const seen = { gaps: [], horizons: [], seqs: [] };
        chat.on('gap', (g) => seen.gaps.push(g));
        chat.on('horizon', (h) => seen.horizons.push(h));
        const done = new Promise((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`timed out: ${JSON.stringify(seen)}`)), wait);
          chat.on('message', (m) => {
            seen.seqs.push(m.seq);
            if (m.seq === 6) { clearTimeout(t); resolve(); }
          });
        });
        chat.connect().join(room, { since: 1 });
        await done;
        const older = await chat.history(room, { before: 5 });
        chat.close();
        return { ...seen, older: older.length, olderHorizon: older.horizon };
      }, { room, transport, wait: WAIT });
      assert.deepEqual(got.gaps, [], 'the jump is not a gap');
      assert.deepEqual(got.horizons, [{ room, horizon: 4, after: 1 }]);
      assert.deepEqual(got.seqs, [5, 6]);
      assert.equal(got.older, 0);
      assert.equal(got.olderHorizon, 4);
    });
  }
});
