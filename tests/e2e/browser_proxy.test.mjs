// The shipped client (web/chat-client.js) behind a proxy that blocks
// WebSocket: the upgrade is refused (403), accepted but never passes a
// frame, or closed right after the 101 (tests/nginx.test.conf, servers at
// PORT + 3, 4, 5, through tests/e2e/browser_proxy_box.mjs). In each case
// the page falls back to SSE (chat-poll.js's stream) and chats within 5 s; when the proxy
// starts passing WebSocket, the page moves back by itself, and every
// message is shown exactly once, in the server's order.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { VAR, uniqueRoom, Client, portBase } from './lib.mjs';
import { SKIP, WAIT, launch, waitConnected, say, shown, waitText, screenshot, scene } from './browser_lib.mjs';
import { startBlockingBox } from './browser_proxy_box.mjs';

const FALLBACK_MS = 5000; // the longest a blocked page may take to chat
const BACK_MS = 60000; // WebSocket is tried again after 1.5-3 s, then backing off

const CASES = [
  ['forbid', 3, 'answers 403 to the upgrade'],
  ['silent', 4, 'accepts the upgrade (101) and never passes a frame'],
  ['close', 5, 'closes the connection right after the 101'],
];

async function wsUser(name, room) {
  const c = await Client.connect(`name=${name}`);
  c.send({ op: 'join', room, ref: 'j' });
  await c.op('joined');
  return c;
}

async function history(room) {
  const reader = await Client.connect('name=auditor');
  reader.send({ op: 'history', room, limit: 200, ref: 1 });
  const h = await reader.op('history');
  reader.close();
  return h.messages;
}

describe('behind a proxy that blocks WebSocket', { skip: SKIP }, () => {
  let browser;
  let box;
  before(async () => {
    browser = await launch();
    box = await startBlockingBox(Number(new URL(portBase(6)).port), `${VAR}/run/ws.sock`);
  });
  after(async () => {
    await box?.close();
    await browser?.close();
  });

  for (const [which, offset, what] of CASES) {
    test(`the proxy ${what}: SSE chats within 5 s, WebSocket comes back later, nothing lost or doubled`,
      (t) => scene(`proxy-${which}`, async (pages) => {
        box.mode[which] = which;
        const room = uniqueRoom(`p${which}`);
        const web = await wsUser('web', room);
        const context = await browser.newContext({ viewport: { width: 1180, height: 780 } });
        const page = await context.newPage();
        pages.push(page);
        const errors = [];
        page.on('pageerror', (err) => errors.push(String(err)));
        await page.goto(`${portBase(offset)}#${room}`);
        await page.locator('#login-name').fill('pat');
        await page.evaluate(() => {
          window.__conn = [];
          const conn = document.getElementById('conn');
          new MutationObserver(() => window.__conn.push(`${conn.dataset.state}/${conn.dataset.transport}`))
            .observe(conn, { attributes: true, attributeFilter: ['data-state', 'data-transport'] });
        });
        const t0 = Date.now();
        await page.locator('#login-form button[type=submit]').click();

        // Falls back and chats both ways within 5 s of starting.
        await waitConnected(page, 'sse'); // WebSocket, then Server-Sent Events
        web.send({ op: 'send', room, text: 'can you read me?', cid: 'w1' });
        await waitText(page, 'can you read me?', FALLBACK_MS);
        await say(page, 'yes, through the proxy');
        await web.next((e) => e.op === 'msg' && e.text === 'yes, through the proxy', FALLBACK_MS, 'reply over SSE');
        const took = Date.now() - t0;
        assert.ok(took < FALLBACK_MS, `chatting took ${took} ms`);
        assert.ok(box.upgrades[which] >= 1, 'WebSocket was tried through the proxy');
        assert.match(await page.locator('#conn').innerText(), /SSE/);

        // The proxy lets WebSocket through now. Both keep talking while the
        // page moves back by itself.
        box.mode[which] = 'pass';
        const t1 = Date.now();
        await say(page, 'during 1');
        web.send({ op: 'send', room, text: 'during 2', cid: 'w2' });
        await page.waitForFunction(() => document.getElementById('conn').dataset.transport === 'websocket' &&
          document.getElementById('conn').dataset.state === 'connected', null, { timeout: BACK_MS });
        t.diagnostic(`${which}: chatting over SSE ${took} ms after start; back on WebSocket ` +
          `${Date.now() - t1} ms after the proxy let it through; ${box.upgrades[which]} upgrades tried`);
        await say(page, 'after 1');
        web.send({ op: 'send', room, text: 'after 2', cid: 'w3' });
        const texts = ['can you read me?', 'yes, through the proxy', 'during 1', 'during 2', 'after 1', 'after 2'];
        await page.waitForFunction((want) => {
          const got = [...document.querySelectorAll('#log ol.messages:not(.outbox) li.msg .text')].map((e) => e.textContent);
          return want.every((t) => got.includes(t)) && !document.querySelector('#log .outbox li');
        }, texts, { timeout: WAIT });
        for (const t of ['during 1', 'after 1']) await web.next((e) => e.op === 'msg' && e.text === t, WAIT, t);
        const conn = await page.evaluate(() => window.__conn);
        assert.ok(conn.indexOf('connected/sse') < conn.lastIndexOf('connected/websocket'), `states: ${conn}`);

        // Exactly once, gap-free, in the server's order, on the page and on the server.
        const stored = await history(room);
        assert.deepEqual([...stored.map((m) => m.text)].sort(), [...texts].sort());
        assert.deepEqual(stored.map((m) => m.seq), texts.map((_, i) => i + 1));
        const seen = await shown(page);
        assert.deepEqual(seen.map((m) => [m.seq, m.user, m.text]), stored.map((m) => [m.seq, m.user, m.text]));
        assert.deepEqual(seen.filter((m) => m.user === '~pat').map((m) => m.state), ['sent', 'sent', 'sent']);
        await screenshot(page, `proxy-${which}`);
        web.close();
        assert.deepEqual(errors, []);
      }));
  }
});
