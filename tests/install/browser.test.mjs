// The install test's browser half (tests/install/run.sh runs it from the
// host): Debian's nginx inside the chroot serves its default site with the
// chat added as docs/install.md says, auth_basic on the chat's locations
// only (alice and bob, password "secret"). INSTALL_URL: that site's root.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SKIP, WAIT, launch, say, screenshot, shown, waitConnected, waitText } from '../e2e/browser_lib.mjs';

const SITE = process.env.INSTALL_URL || 'http://127.0.0.1:20095/';
const CHAT = new URL('chat/', SITE).href;
const room = `install-${Date.now().toString(36)}`;

async function get(path, headers = {}) {
  const r = await fetch(new URL(path, SITE), { headers, redirect: 'manual' });
  return { status: r.status, location: r.headers.get('location'), body: await r.text() };
}
const basic = (u, p) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });

describe('installed from the .deb into Debian 12', () => {
  let browser;
  before(async () => {
    // never a silent skip: the install is proven in a browser or not at all
    assert.equal(SKIP, false, SKIP);
    browser = await launch();
  });
  after(async () => { await browser?.close(); });

  test("the site's own static page still works, without credentials", async () => {
    const r = await get('/');
    assert.equal(r.status, 200);
    assert.match(r.body, /Welcome to nginx/);
    const page = await browser.newPage();
    await page.goto(SITE);
    assert.equal(await page.title(), 'Welcome to nginx!');
    await page.close();
  });

  test('auth_basic guards the chat and only the chat', async () => {
    assert.equal((await get('/chat/')).status, 401, 'the client needs credentials');
    assert.equal((await get('/chat/history?room=lobby')).status, 401, 'so does long-poll');
    assert.equal((await get('/chat/ws')).status, 401, 'and the WebSocket');
    assert.equal((await get('/chat/', basic('alice', 'wrong'))).status, 401, 'a wrong password');
    assert.equal((await get('/chat/', basic('mallory', 'secret'))).status, 401, 'an unknown user');
    assert.equal((await get('/chat/', basic('alice', 'secret'))).status, 200);
  });

  test('/chat/health answers a load balancer without credentials; /chat goes to /chat/', async () => {
    const h = await get('/chat/health');
    assert.equal(h.status, 200, h.body);
    const j = JSON.parse(h.body);
    assert.equal(j.status, 'ok');
    assert.equal(j.backends.ws.status, 'ok', 'chat-fcgi reaches chat-ws through /run/chat');
    const r = await get('/chat');
    assert.equal(r.status, 301);
    assert.equal(r.location, '/chat/');
  });

  test('two signed-in users chat, one of them without WebSocket', async () => {
    const pages = [];
    const open = async (username, noWebSocket) => {
      const context = await browser.newContext({ httpCredentials: { username, password: 'secret' } });
      if (noWebSocket) await context.addInitScript(() => { delete window.WebSocket; });
      const page = await context.newPage();
      pages.push(page);
      await page.goto(`${CHAT}#${room}`);
      // without WebSocket the client takes Server-Sent Events, else long-poll
      await waitConnected(page, noWebSocket ? undefined : 'websocket');
      const transport = await page.locator('#conn').getAttribute('data-transport');
      assert.ok(noWebSocket ? ['sse', 'longpoll'].includes(transport) : transport === 'websocket', transport);
      assert.equal(await page.locator('#login').isHidden(), true, `${username} is not asked for a name`);
      return page;
    };
    try {
      const alice = await open('alice', false);
      const bob = await open('bob', true);
      await alice.locator('#me-name', { hasText: 'alice' }).waitFor({ timeout: WAIT });
      await say(alice, 'hello from the package, over WebSocket');
      await waitText(bob, 'hello from the package, over WebSocket');
      await say(bob, 'and back over long-poll');
      await waitText(alice, 'and back over long-poll');
      assert.deepEqual((await shown(alice)).map((m) => [m.user, m.text]), [
        ['alice', 'hello from the package, over WebSocket'],
        ['bob', 'and back over long-poll'],
      ]);
      // (a signed-in long-poll page does not know its own name yet: issue 11, item 7)
      assert.deepEqual((await shown(bob)).map((m) => m.text),
        ['hello from the package, over WebSocket', 'and back over long-poll']);
      assert.equal((await shown(bob))[0].user, 'alice');
      await screenshot(alice, 'install-alice');
    } finally {
      for (const p of pages) await p.context().close();
    }
  });
});
