// Edits and deletions in the browser: a change (sql/003's chat_change, as
// the daemons' edit and delete ops will call it) reaches a WebSocket page
// and a long-poll page live, in place ("edited", "message deleted"), and a
// page opened afterwards (backlog and history through both daemons) shows
// the message as it is now, never the removed text.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pgClient, uniqueRoom } from './lib.mjs';
import { SKIP, WAIT, launch, openUser, say, waitText, screenshot } from './browser_lib.mjs';

// the messages on screen: text, and whether marked edited or deleted
function onScreen(page) {
  return page.evaluate(() => [...document.querySelectorAll('#log ol.messages:not(.outbox) li.msg')]
    .map((li) => ({
      seq: Number(li.dataset.seq),
      text: li.querySelector('.text').textContent,
      edited: li.querySelector('.meta .edited') !== null,
      deleted: li.querySelector('.text').classList.contains('deleted'),
    })));
}

async function waitScreen(page, want) {
  await page.waitForFunction((w) => {
    const got = [...document.querySelectorAll('#log ol.messages:not(.outbox) li.msg')].map((li) => [
      Number(li.dataset.seq), li.querySelector('.text').textContent,
      li.querySelector('.meta .edited') !== null, li.querySelector('.text').classList.contains('deleted')]);
    return JSON.stringify(got) === JSON.stringify(w);
  }, want.map((m) => [m.seq, m.text, m.edited, m.deleted]), { timeout: WAIT });
}

describe('edits and deletions in the browser', { skip: SKIP }, () => {
  let browser;
  let db;
  before(async () => {
    browser = await launch();
    db = await pgClient();
    await db.connect();
  });
  after(async () => {
    await browser?.close();
    await db?.end();
  });

  test('live on WebSocket and long-poll, in place; a page opened later shows the same', async () => {
    const room = uniqueRoom('mod');
    const ws = await openUser(browser, 'wendy', { room });
    const lp = await openUser(browser, 'lars', { room, noWebSocket: true });
    try {
      await say(ws.page, 'see you at 5');
      await say(ws.page, 'spam spam spam');
      await say(ws.page, 'last word');
      for (const u of [ws, lp]) await waitText(u.page, 'last word');

      const change = (seq, kind, text) => db.query(
        "SELECT err FROM chat_change($1, '~wendy', $2, $3, $4, NULL, true, NULL)", [room, seq, kind, text]);
      assert.equal((await change(1, 'edit', 'see you at 6')).rows[0].err, null);
      assert.equal((await change(2, 'delete', null)).rows[0].err, null);
      const want = [
        { seq: 1, text: 'see you at 6', edited: true, deleted: false },
        { seq: 2, text: 'message deleted', edited: false, deleted: true },
        { seq: 3, text: 'last word', edited: false, deleted: false },
      ];
      for (const u of [ws, lp]) await waitScreen(u.page, want);
      // the room goes on after the changes (their seqs are taken, not shown)
      await say(lp.page, 'after');
      for (const u of [ws, lp]) await waitText(u.page, 'after');
      await screenshot(ws.page, 'moderation-live');

      // pages opened now read the room from the daemons: the same picture
      const later = await openUser(browser, 'olga', { room });
      const laterLp = await openUser(browser, 'pete', { room, noWebSocket: true });
      try {
        for (const u of [later, laterLp]) {
          await waitText(u.page, 'after');
          const got = await onScreen(u.page);
          assert.deepEqual(got.slice(0, 3), want);
          assert.equal(got.length, 4, 'the change events are no messages of their own');
          assert.ok(!got.some((m) => /spam|at 5/.test(m.text)), 'no removed text');
          assert.deepEqual(u.errors, []);
        }
      } finally {
        await later.context.close();
        await laterLp.context.close();
      }
      assert.deepEqual(ws.errors, []);
      assert.deepEqual(lp.errors, []);
    } finally {
      await ws.context.close();
      await lp.context.close();
    }
  });
});
