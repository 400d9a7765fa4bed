// The web client's own controls for the life of a message, in Chromium,
// on both transports: an author edits and deletes their message from the
// page (the others see it in place), another's message offers no such
// control, and the search box finds a room's messages as they are now.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pgClient, portBase, uniqueRoom } from './lib.mjs';
import { SKIP, WAIT, launch, openUser, say, waitConnected, waitText } from './browser_lib.mjs';

// the li of the message whose text is t
const msgLi = (page, t) => page.locator('#log li.msg', { has: page.locator('.text', { hasText: t }) });

describe('edit, delete and search from the page', { skip: SKIP }, () => {
  let browser;
  before(async () => { browser = await launch(); });
  after(async () => { await browser?.close(); });

  for (const noWebSocket of [false, true]) {
    const via = noWebSocket ? 'long-poll' : 'WebSocket';
    test(`an author edits and deletes from the page (${via}); search finds the current text`, async () => {
      const room = uniqueRoom('ui');
      const me = await openUser(browser, 'ulla', { room, noWebSocket });
      const other = await openUser(browser, 'vic', { room });
      // this test answers the page's dialogs itself (openUser dismisses them)
      me.page.removeAllListeners('dialog');
      try {
        await say(me.page, 'meet at nine');
        await say(me.page, 'oops wrong room');
        await say(other.page, 'not yours');
        await waitText(me.page, 'not yours');
        assert.equal(await msgLi(me.page, 'not yours').locator('.edit-msg').count(), 0,
          'no Edit on another user\'s message');

        me.page.once('dialog', (d) => d.accept('meet at ten'));
        await msgLi(me.page, 'meet at nine').locator('.edit-msg').click();
        for (const u of [me, other]) {
          await u.page.waitForFunction(() => [...document.querySelectorAll('#log li.msg')].some((li) =>
            li.querySelector('.text').textContent === 'meet at ten' && li.querySelector('.meta .edited')),
          null, { timeout: WAIT });
        }

        me.page.once('dialog', (d) => d.accept());
        await msgLi(me.page, 'oops wrong room').locator('.delete-msg').click();
        for (const u of [me, other]) {
          await u.page.waitForFunction(() => [...document.querySelectorAll('#log li.msg .text')]
            .some((t) => t.classList.contains('deleted')) &&
            ![...document.querySelectorAll('#log li.msg .text')].some((t) => t.textContent.includes('oops')),
          null, { timeout: WAIT });
        }

        await me.page.fill('#search-input', 'meet');
        await me.page.press('#search-input', 'Enter');
        await me.page.waitForFunction(() => !document.getElementById('search-results').hidden &&
          document.querySelectorAll('#search-list li.msg').length === 1, null, { timeout: WAIT });
        assert.equal(await me.page.textContent('#search-list li.msg .text'), 'meet at ten');
        await me.page.fill('#search-input', 'oops');
        await me.page.press('#search-input', 'Enter');
        await me.page.waitForFunction(() => /No messages/.test(document.getElementById('search-summary').textContent),
          null, { timeout: WAIT });
        assert.deepEqual(me.errors, []);
        assert.deepEqual(other.errors, []);
      } finally {
        await me.close?.();
        await other.close?.();
      }
    });
  }

  test('a moderator (the /chat/mod/ location) deletes anyone\'s message and bans its author from the page', async () => {
    const room = uniqueRoom('modui');
    const open = async (username, path) => {
      const context = await browser.newContext({ httpCredentials: { username, password: 'secret' } });
      const page = await context.newPage();
      const errors = [];
      page.on('pageerror', (err) => errors.push(String(err)));
      await page.goto(`${portBase(1)}${path}#${room}`);
      await waitConnected(page, 'websocket');
      return { context, page, errors };
    };
    const alice = await open('alice', '');
    const mod = await open('mod', 'mod/');
    const db = await pgClient();
    await db.connect();
    try {
      await say(alice.page, 'cheap pills here');
      await waitText(mod.page, 'cheap pills here');
      assert.equal(await msgLi(alice.page, 'cheap pills here').locator('.ban-user').count(), 0,
        'no moderator controls for alice');
      mod.page.once('dialog', (d) => d.accept());
      await msgLi(mod.page, 'cheap pills here').locator('.delete-msg').click();
      await alice.page.waitForFunction(() => [...document.querySelectorAll('#log li.msg .text')]
        .some((t) => t.classList.contains('deleted')), null, { timeout: WAIT });

      await say(alice.page, 'more spam');
      await waitText(mod.page, 'more spam');
      mod.page.once('dialog', (d) => d.accept('spam'));
      await msgLi(mod.page, 'more spam').locator('.ban-user').click();
      await mod.page.locator('.toast, [role=status], body', { hasText: 'alice is banned' }).first().waitFor({ timeout: WAIT });
      const bans = await db.query("SELECT id, reason, by FROM chat_bans_active WHERE target = 'alice'");
      assert.equal(bans.rows.length, 1);
      assert.equal(bans.rows[0].reason, 'spam');
      assert.equal(bans.rows[0].by, 'mod');
      assert.deepEqual(mod.errors, []);
    } finally {
      await db.query("SELECT chat_unban(id, 'mod') FROM chat_bans_active WHERE target = 'alice'");
      await db.end();
      await alice.context.close();
      await mod.context.close();
    }
  });
});
