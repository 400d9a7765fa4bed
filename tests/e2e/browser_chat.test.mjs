// The browser client in a real browser (Debian's chromium, headless): what a
// person at the page sees. Every wait is for page state, bounded by WAIT.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { uniqueRoom, Client, portBase } from './lib.mjs';
import {
  SKIP, WAIT, launch, openUser, waitConnected, say, shown, waitText, screenshot, scene, seed,
} from './browser_lib.mjs';

describe('browser client', { skip: SKIP }, () => {
  let browser;
  before(async () => { browser = await launch(); });
  after(async () => { await browser?.close(); });

  test('two users chat both ways, see each other online and typing', () => scene('two-users', async (pages) => {
    const room = uniqueRoom('b');
    const alice = await openUser(browser, 'alice', { room });
    const bob = await openUser(browser, 'bob', { room });
    pages.push(alice.page, bob.page);
    for (const u of [alice, bob]) {
      const c = await u.page.evaluate(() => document.getElementById('conn').dataset);
      assert.equal(c.transport, 'websocket');
      assert.match(await u.page.locator('#conn').innerText(), /WebSocket/);
    }

    // Each sees the other in the room's member list.
    await alice.page.locator('#member-list', { hasText: '~bob' }).waitFor({ timeout: WAIT });
    await bob.page.locator('#member-list', { hasText: '~alice' }).waitFor({ timeout: WAIT });

    // "~alice is typing…" shows at bob's while she types.
    await alice.page.locator('#input').pressSequentially('Hi Bob');
    await bob.page.locator('#typing', { hasText: '~alice is typing…' }).waitFor({ timeout: WAIT });
    await alice.page.locator('#input').fill('');

    await say(alice.page, 'Hi Bob! Did the deploy go through?');
    await waitText(bob.page, 'Hi Bob! Did the deploy go through?');
    // A message's arrival clears its sender's typing notice.
    await bob.page.waitForFunction(() => document.getElementById('typing').textContent === '', null, { timeout: WAIT });
    await say(bob.page, 'Yes, all green.\nNotes: https://example.com/notes?id=42.');
    await waitText(alice.page, 'Yes, all green.\nNotes: https://example.com/notes?id=42.');
    await say(alice.page, 'Thanks!');
    await waitText(bob.page, 'Thanks!');
    await waitText(alice.page, 'Thanks!');

    const a = await shown(alice.page);
    const b = await shown(bob.page);
    assert.deepEqual(a.map((m) => [m.seq, m.user, m.text]), b.map((m) => [m.seq, m.user, m.text]));
    assert.deepEqual(a.map((m) => m.text), ['Hi Bob! Did the deploy go through?',
      'Yes, all green.\nNotes: https://example.com/notes?id=42.', 'Thanks!']);
    assert.deepEqual(a.map((m) => m.seq), [1, 2, 3]);
    // Own messages are marked sent (acknowledged), nothing stays pending.
    assert.deepEqual(a.map((m) => m.state), ['sent', '', 'sent']);
    assert.equal(await alice.page.locator('#log .outbox li').count(), 0);
    // Shift+Enter adds a line instead of sending.
    await bob.page.locator('#input').fill('two');
    await bob.page.locator('#input').press('Shift+Enter');
    assert.equal(await bob.page.locator('#input').inputValue(), 'two\n');
    await bob.page.locator('#input').fill('');

    await screenshot(alice.page, 'two-users-alice');
    assert.deepEqual([...alice.errors, ...bob.errors], []);
  }));

  test('unread counts in the room list, cleared by opening the room', () => scene('unread', async (pages) => {
    const lobby = uniqueRoom('u');
    const side = uniqueRoom('s');
    const erin = await openUser(browser, 'erin', { room: side });
    const finn = await openUser(browser, 'finn', { room: side });
    pages.push(erin.page, finn.page);
    // Finn opens another room; Erin writes in the first.
    await finn.page.locator('#join-input').fill(lobby);
    await finn.page.locator('#join-input').press('Enter');
    await finn.page.waitForFunction((r) => document.getElementById('room-name').textContent === `#${r}`, lobby);
    await say(erin.page, 'one');
    await say(erin.page, 'two');
    const badge = finn.page.locator('#room-list a', { hasText: side }).locator('.badge');
    await badge.filter({ hasText: '2' }).waitFor({ timeout: WAIT });
    await finn.page.waitForFunction(() => document.title.startsWith('(2)'));
    await finn.page.locator('#room-list a', { hasText: side }).click();
    await waitText(finn.page, 'two');
    await badge.waitFor({ state: 'detached', timeout: WAIT });
    assert.doesNotMatch(await finn.page.title(), /^\(/);
  }));

  test('a page without WebSocket falls back to long-poll and chats with a WebSocket user',
    () => scene('long-poll', async (pages) => {
      const room = uniqueRoom('lp');
      const carol = await openUser(browser, 'carol', { room, noWebSocket: true });
      const dave = await openUser(browser, 'dave', { room });
      pages.push(carol.page, dave.page);
      await waitConnected(carol.page, 'longpoll');
      await waitConnected(dave.page, 'websocket');
      assert.match(await carol.page.locator('#conn').innerText(), /Long-poll/);
      await dave.page.locator('#member-list', { hasText: '~carol' }).waitFor({ timeout: WAIT });
      await carol.page.locator('#member-list', { hasText: '~dave' }).waitFor({ timeout: WAIT });
      // Typing travels both ways.
      await dave.page.locator('#input').pressSequentially('x');
      await carol.page.locator('#typing', { hasText: '~dave is typing…' }).waitFor({ timeout: WAIT });
      await carol.page.locator('#input').pressSequentially('y');
      await dave.page.locator('#typing', { hasText: '~carol is typing…' }).waitFor({ timeout: WAIT });

      await say(carol.page, 'hello from long-poll');
      await waitText(dave.page, 'hello from long-poll');
      await say(dave.page, 'hello from WebSocket');
      await waitText(carol.page, 'hello from WebSocket');
      await say(carol.page, 'both ways');
      await waitText(dave.page, 'both ways');
      await waitText(carol.page, 'both ways');

      const c = await shown(carol.page);
      const d = await shown(dave.page);
      assert.deepEqual(c.map((m) => m.text), ['hello from long-poll', 'hello from WebSocket', 'both ways']);
      assert.deepEqual(c.map((m) => [m.seq, m.user, m.text]), d.map((m) => [m.seq, m.user, m.text]));
      assert.deepEqual(c.map((m) => m.state), ['sent', '', 'sent']);
      assert.equal(await carol.page.evaluate(() => typeof window.WebSocket), 'undefined');
      await screenshot(carol.page, 'long-poll-carol');
      assert.deepEqual([...carol.errors, ...dave.errors], []);
    }));

  test('HTML and script in a message are shown as text and run nothing', () => scene('xss', async (pages) => {
    const room = uniqueRoom('x');
    const mallory = await openUser(browser, 'mallory', { room });
    const victim = await openUser(browser, 'victim', { room });
    pages.push(mallory.page, victim.page);
    const payloads = [
      '<img src=x onerror="window.__pwned=1">',
      '<script>window.__pwned=2</script><b>bold?</b>',
      '"><svg onload="window.__pwned=3">',
      'javascript:window.__pwned=4 and <a href="javascript:window.__pwned=5">click</a>',
      'a link: https://example.org/path?q=1&r=<i>2</i>. and http://[bad',
    ];
    for (const p of payloads) await say(mallory.page, p);
    for (const p of payloads) await waitText(victim.page, p);
    const seen = await victim.page.evaluate(() => {
      const texts = [...document.querySelectorAll('#log li.msg .text')];
      return {
        pwned: window.__pwned,
        injected: document.querySelectorAll('#log img, #log script, #log svg, #log b, #log i').length,
        links: texts.flatMap((t) => [...t.querySelectorAll('a')].map((a) => ({
          href: a.getAttribute('href'), rel: a.rel, target: a.target, text: a.textContent }))),
      };
    });
    assert.equal(seen.pwned, undefined);
    assert.equal(seen.injected, 0);
    // Only the http(s) URL became a link, and a safe one.
    assert.deepEqual(seen.links, [{
      href: 'https://example.org/path?q=1&r=', rel: 'noopener noreferrer', target: '_blank',
      text: 'https://example.org/path?q=1&r=',
    }]);
    await screenshot(victim.page, 'xss-victim');
    assert.deepEqual([...mallory.errors, ...victim.errors], []);
  }));

  test('older history loads when scrolling up; a reader who scrolled up is not yanked down',
    () => scene('history', async (pages) => {
      const room = uniqueRoom('h');
      await seed(room, 130);
      const gina = await openUser(browser, 'gina', { room, viewport: { width: 900, height: 700 } });
      pages.push(gina.page);
      await waitText(gina.page, 'line 130');
      const first = await shown(gina.page);
      assert.ok(first.length <= 60, `the page starts with the latest messages, not all ${first.length}`);
      assert.equal(first.at(-1).seq, 130);
      // At the bottom to begin with.
      assert.ok(await gina.page.evaluate(() => {
        const l = document.getElementById('log');
        return l.scrollHeight - l.scrollTop - l.clientHeight < 50;
      }));

      // Scroll up, as a reader does, until the beginning of the room shows.
      const log = gina.page.locator('#log');
      await log.hover();
      const deadline = Date.now() + WAIT;
      while (!(await gina.page.locator('#log .log-top .start').count())) {
        assert.ok(Date.now() < deadline, 'the beginning of the room never showed');
        await gina.page.mouse.wheel(0, -3000);
        await gina.page.waitForFunction(() => document.getElementById('log').scrollTop > 0 ||
          document.querySelector('#log .log-top .start') || document.querySelector('#log .log-top .loading'),
        null, { timeout: WAIT }).catch(() => {});
      }
      const all = await shown(gina.page);
      assert.deepEqual(all.map((m) => m.seq), Array.from({ length: 130 }, (_, i) => i + 1));
      assert.deepEqual(all.map((m) => m.text), Array.from({ length: 130 }, (_, i) => `line ${i + 1}`));

      // Reading old messages: a new one does not move the view, a pill says so.
      await gina.page.evaluate(() => { document.getElementById('log').scrollTop = 200; });
      const top = await gina.page.evaluate(() => document.getElementById('log').scrollTop);
      const bot = await Client.connect('name=latecomer');
      bot.send({ op: 'send', room, text: 'line 131', cid: 'c131' });
      await waitText(gina.page, 'line 131');
      await gina.page.locator('#jump', { hasText: '1 new message' }).waitFor({ timeout: WAIT });
      assert.equal(await gina.page.evaluate(() => document.getElementById('log').scrollTop), top);
      await gina.page.locator('#jump').click();
      await gina.page.locator('#jump').waitFor({ state: 'hidden', timeout: WAIT });
      await screenshot(gina.page, 'history');
      bot.close();
      assert.deepEqual(gina.errors, []);
    }));

  test('a message the server refuses shows as failed, and Retry sends it', () => scene('retry', async (pages) => {
    const room = uniqueRoom('r');
    const hal = await openUser(browser, 'hal', { room, noWebSocket: true });
    pages.push(hal.page);
    // The server refuses the first try (as if the room were read-only).
    await hal.page.route('**/chat/send', (route) => route.fulfill({
      status: 403, contentType: 'application/json',
      body: '{"op":"error","code":"forbidden","message":"read-only here"}',
    }));
    await say(hal.page, 'try me');
    const failed = hal.page.locator('#log .outbox li.msg[data-state="failed"]', { hasText: 'try me' });
    await failed.waitFor({ timeout: WAIT });
    assert.match(await failed.innerText(), /Not sent: not allowed here/);
    await hal.page.unroute('**/chat/send');
    await failed.getByRole('button', { name: 'Retry' }).click();
    await waitText(hal.page, 'try me');
    assert.deepEqual((await shown(hal.page)).map((m) => [m.text, m.state]), [['try me', 'sent']]);
    assert.equal(await hal.page.locator('#log .outbox li').count(), 0);
  }));

  test('a user nginx signed in is not asked for a name and chats under it, over either transport',
    () => scene('signed-in', async (pages) => {
      // The test stack's second server: auth_basic (alice/bob:secret), guests off.
      const auth = portBase(1);
      const room = uniqueRoom('a');
      const open = async (username, noWebSocket) => {
        const context = await browser.newContext({ httpCredentials: { username, password: 'secret' } });
        if (noWebSocket) await context.addInitScript(() => { delete window.WebSocket; delete window.EventSource; }); // long-poll
        const page = await context.newPage();
        pages.push(page);
        await page.goto(`${auth}#${room}`);
        await waitConnected(page, noWebSocket ? 'longpoll' : 'websocket');
        return page;
      };
      const alice = await open('alice', false);
      const bob = await open('bob', true);
      assert.equal(await alice.locator('#login').isHidden(), true, 'no name asked');
      assert.equal(await bob.locator('#login').isHidden(), true, 'no name asked over long-poll either');
      await alice.locator('#me-name', { hasText: 'alice' }).waitFor({ timeout: WAIT });
      assert.equal(await alice.locator('#change-name').isHidden(), true, 'a signed-in name is not changed here');
      await say(alice, 'signed in over WebSocket');
      await waitText(bob, 'signed in over WebSocket');
      await say(bob, 'signed in over long-poll');
      await waitText(alice, 'signed in over long-poll');
      const seen = await shown(alice);
      assert.deepEqual(seen.map((m) => [m.user, m.text]),
        [['alice', 'signed in over WebSocket'], ['bob', 'signed in over long-poll']]);
      // Bob's own message, acknowledged before long-poll told him his name,
      // carries the name nginx gave him, and shows as sent (waited for: his
      // page may show it a poll after alice's shows it)
      await bob.waitForFunction(() => document.querySelector('#log li.msg[data-seq="2"]')?.dataset.user === 'bob',
        null, { timeout: WAIT });
      assert.deepEqual((await shown(bob)).map((m) => [m.user, m.state]), [['alice', ''], ['bob', 'sent']]);
    }));

  test('usable at phone width: rooms fold away, the composer stays', () => scene('phone', async (pages) => {
    const room = uniqueRoom('p');
    const ivy = await openUser(browser, 'ivy', { room, viewport: { width: 390, height: 780 } });
    pages.push(ivy.page);
    await say(ivy.page, 'typing on a phone');
    await waitText(ivy.page, 'typing on a phone');
    const layout = await ivy.page.evaluate(() => ({
      overflow: document.documentElement.scrollWidth - window.innerWidth,
      sidebar: document.getElementById('sidebar').getBoundingClientRect().right,
      composer: document.getElementById('input').getBoundingClientRect().width,
    }));
    assert.ok(layout.overflow <= 0, 'no sideways scrolling');
    assert.ok(layout.sidebar <= 0, 'the room list is folded away');
    assert.ok(layout.composer > 250, 'the message box takes the width');
    await screenshot(ivy.page, 'phone');
    await ivy.page.getByRole('button', { name: 'Rooms' }).click();
    await ivy.page.locator('#sidebar').getByText('Join or create a room').waitFor({ timeout: WAIT });
    await ivy.page.waitForFunction(() => document.getElementById('sidebar').getBoundingClientRect().left >= 0);
    await screenshot(ivy.page, 'phone-rooms');
  }));
});
