// The browser client over Server-Sent Events (Debian's chromium, headless):
// a page without WebSocket chats over GET events with a WebSocket user; a
// page whose event streams never get through falls back to long-poll, and
// remembers it. Every wait is for page state, bounded by WAIT.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { uniqueRoom } from './lib.mjs';
import { SKIP, WAIT, launch, openUser, waitConnected, say, shown, waitText, scene } from './browser_lib.mjs';

describe('browser client over SSE', { skip: SKIP }, () => {
  let browser;
  before(async () => { browser = await launch(); });
  after(async () => { await browser?.close(); });

  test('a page without WebSocket chats over SSE with a WebSocket user', () => scene('sse', async (pages) => {
    const room = uniqueRoom('bsse');
    const sam = await openUser(browser, 'sam', { room, noWebSocket: true, sse: true });
    const web = await openUser(browser, 'web', { room });
    pages.push(sam.page, web.page);
    const urls = [];
    sam.page.on('request', (r) => urls.push(new URL(r.url()).pathname));
    await waitConnected(sam.page, 'sse');
    await waitConnected(web.page, 'websocket');
    assert.match(await sam.page.locator('#conn').innerText(), /SSE/);
    // presence both ways
    await web.page.locator('#member-list', { hasText: '~sam' }).waitFor({ timeout: WAIT });
    await sam.page.locator('#member-list', { hasText: '~web' }).waitFor({ timeout: WAIT });
    // typing reaches the SSE page
    await web.page.locator('#input').pressSequentially('x');
    await sam.page.locator('#typing', { hasText: '~web is typing…' }).waitFor({ timeout: WAIT });
    await web.page.locator('#input').fill('');
    await say(web.page, 'over a websocket');
    await waitText(sam.page, 'over a websocket');
    await say(sam.page, 'over server-sent events');
    await waitText(web.page, 'over server-sent events');
    await say(web.page, 'third');
    await waitText(sam.page, 'third');
    const a = await shown(sam.page);
    const b = await shown(web.page);
    assert.deepEqual(a.map((m) => [m.seq, m.user, m.text]), b.map((m) => [m.seq, m.user, m.text]));
    assert.deepEqual(a.map((m) => m.seq), [1, 2, 3]);
    assert.ok(!urls.includes('/chat/poll'), `no long-poll: ${urls.join(' ')}`);
    const remembered = await sam.page.evaluate(() => Object.entries(localStorage)
      .filter(([k]) => k.startsWith('chat-transport|')).map(([, v]) => v));
    assert.deepEqual(remembered, ['sse']);
    assert.deepEqual([...sam.errors, ...web.errors], []);
  }));

  test('event streams that never get through: long-poll, and the next visit starts there',
    () => scene('sse-blocked', async (pages) => {
      const room = uniqueRoom('bsseb');
      // a proxy that holds event streams back: they open and say nothing
      const context = await browser.newContext();
      await context.addInitScript(() => {
        delete window.WebSocket;
        window.EventSource = class { constructor(url) { this.url = url; window.__streams = (window.__streams || 0) + 1; } close() {} };
      });
      const page = await context.newPage();
      pages.push(page);
      const urls = [];
      page.on('request', (r) => urls.push(new URL(r.url()).pathname));
      await page.goto(`${new URL('/chat/', process.env.CHAT_URL || 'http://127.0.0.1:8080/chat/').href}#${room}`);
      await page.locator('#login-name').fill('kit');
      const t0 = Date.now();
      await page.locator('#login-form button[type=submit]').click();
      await waitConnected(page, 'longpoll');
      const took = Date.now() - t0;
      assert.ok(took < 8000, `long-poll after ${took} ms`);
      assert.equal(await page.evaluate(() => window.__streams), 1);
      await say(page, 'via long-poll');
      await waitText(page, 'via long-poll');
      // next visit: straight to long-poll, no stream tried
      await page.reload();
      await waitConnected(page, 'longpoll');
      assert.equal(await page.evaluate(() => window.__streams || 0), 0);
      assert.ok(urls.filter((u) => u === '/chat/poll').length >= 2);
    }));
});
