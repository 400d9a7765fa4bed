// The web client follows the location's policy (issue 11 item 7), survives
// any link and any text (issue 12 item 8), and does not ask the server for
// member lists on every busy second (issue 12 item 3): in Chromium, on
// WebSocket and on the HTTP fallbacks (SSE, long-poll), and in the ES5 page.
// tests/nginx.test.conf's servers: +1 auth_basic (alice/bob:secret), +8
// $chat_max_text 8000 and $chat_rooms "team-* help" (no lobby) at /chat/,
// and read-only with $chat_first_room news at /ro/. (+7 is
// stack_run.test.mjs's own stack, +9 lp_hostile_addr's.)
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, uniqueRoom, Client, portBase } from './lib.mjs';
import { SKIP, WAIT, launch, scene } from './browser_lib.mjs';

const TRANSPORTS = ['websocket', 'sse', 'longpoll'];
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

// A person at the page: its own context; a guest `name` (null: nginx signs
// it in with `credentials`), a transport (the others removed from the
// page), or the ES5 page (an engine without modules, WebSocket, fetch or
// Promise, as tests/e2e/browser_es5.test.mjs makes it). Records what would
// tell the user something went wrong: page errors, toasts, and what the
// server refused (HTTP 403, WebSocket error events).
async function openPage(browser, { base, name, hash = '', transport = 'websocket', credentials, es5 = false, setup }) {
  const context = await browser.newContext({ viewport: { width: 1180, height: 780 }, httpCredentials: credentials });
  if (es5) {
    await context.addInitScript(() => {
      for (const k of ['WebSocket', 'fetch', 'Promise', 'BroadcastChannel', 'AbortController', 'TextEncoder',
        'URLSearchParams', 'queueMicrotask']) delete window[k];
      delete HTMLScriptElement.prototype.noModule;
    });
    await context.route((url) => /^\/(chat|ro)\/(index\.html)?$/.test(url.pathname), async (route) => {
      const res = await route.fetch();
      const html = (await res.text()).replace(/<script type="module"/g, '<script type="x-module-unknown"')
        .replace(/rel="modulepreload"/g, 'rel="x-unknown"');
      await route.fulfill({ response: res, body: html });
    });
  } else if (transport !== 'websocket') {
    await context.addInitScript((sse) => {
      delete window.WebSocket;
      if (!sse) delete window.EventSource;
    }, transport === 'sse');
  }
  await context.addInitScript(() => {
    window.__toasts = [];
    document.addEventListener('DOMContentLoaded', () => {
      const t = document.getElementById('toast');
      new MutationObserver(() => { if (t.textContent) window.__toasts.push(t.textContent); })
        .observe(t, { childList: true, characterData: true, subtree: true });
    });
  });
  const page = await context.newPage();
  const errors = [];
  const refused = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  page.on('response', (r) => { if (r.status() === 403) refused.push(`403 ${r.url()}`); });
  page.on('websocket', (ws) => ws.on('framereceived', (f) => {
    if (/"op":"error"/.test(String(f.payload))) refused.push(String(f.payload));
  }));
  setup?.(page);
  await page.goto(`${base}${hash}`);
  if (name) {
    await page.locator('#login-name').fill(name);
    await page.locator('#login-form button[type=submit]').click();
  }
  await waitConnected(page, es5 ? undefined : transport);
  const troubles = async () => [...errors, ...refused, ...await page.evaluate(() => window.__toasts)];
  return { page, errors, refused, troubles };
}

// The counter's text, whether it says "over", and whether Send is enabled.
const counter = (page) => page.evaluate(() => [document.getElementById('counter').textContent,
  document.getElementById('counter').classList.contains('over'), !document.getElementById('send').disabled]);
const listed = (page) => page.locator('#room-list .room-label').allInnerTexts();

// Polls page state (the ES5 page has no Promise, which waitForFunction needs).
async function waitUntil(page, fn, arg, what, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await page.evaluate(fn, arg)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function waitConnected(page, transport) {
  return waitUntil(page, (t) => {
    const c = document.getElementById('conn');
    return c.dataset.state === 'connected' && (!t || c.dataset.transport === t);
  }, transport, `connected ${transport || ''}`);
}

function waitRoom(page, room) {
  return waitUntil(page, (r) => document.getElementById('room-name').textContent === `#${r}`, room, `#${room} open`);
}

// Until a message with this text is on screen, acknowledged.
function waitText(page, text) {
  return waitUntil(page, (t) => [...document.querySelectorAll('#log ol.messages:not(.outbox) li.msg .text')]
    .some((el) => el.textContent === t) && !document.querySelector('#log .outbox li'), text, 'message shown');
}

describe('the page follows the location\'s policy', { skip: SKIP }, () => {
  let browser;
  before(async () => { browser = await launch(); });
  after(async () => { await browser?.close(); });

  for (const transport of TRANSPORTS) {
    test(`${transport}: $chat_max_text 8000 and rooms without lobby: the allowed room opens with no error, 5000 bytes can be sent`,
      () => scene(`policy-max-${transport}`, async (pages) => {
        const u = await openPage(browser, { base: portBase(8), name: `max${transport}` });
        pages.push(u.page);
        await waitRoom(u.page, 'help'); // the first name in "team-* help"
        assert.deepEqual(await listed(u.page), ['help']);
        const text = `${transport} ${uniqueRoom('long')} `.padEnd(5000, 'x');
        // (the counter shows from 80 % of the limit on; its text is kept up to date)
        await u.page.locator('#input').fill(text);
        assert.deepEqual(await counter(u.page), ['5000 / 8000', false, true], 'within the limit, Send is enabled');
        await u.page.locator('#input').fill(text.padEnd(7000, 'x'));
        await u.page.locator('#counter', { hasText: '7000 / 8000' }).waitFor({ state: 'visible', timeout: WAIT });
        assert.equal(await u.page.locator('#send').isEnabled(), true);
        await u.page.locator('#input').fill(text);
        await u.page.locator('#input').press('Enter');
        await waitText(u.page, text);
        assert.deepEqual(await u.troubles(), [], 'no error, refusal or toast');
        // Over the limit: the counter says so and Send is off.
        await u.page.locator('#input').fill('y'.repeat(8001));
        await u.page.locator('#counter.over', { hasText: '8001 / 8000' }).waitFor({ timeout: WAIT });
        assert.equal(await u.page.locator('#send').isDisabled(), true);
      }));

    test(`${transport}: a read-only location opens its first room with no composer`,
      () => scene(`policy-ro-${transport}`, async (pages) => {
        const u = await openPage(browser, { base: portBase(8).replace(/chat\/$/, 'ro/'), name: `ro${transport}` });
        pages.push(u.page);
        await waitRoom(u.page, 'news'); // $chat_first_room
        await u.page.locator('#readonly-note').waitFor({ state: 'visible', timeout: WAIT });
        assert.equal(await u.page.locator('#composer').isHidden(), true, 'no composer');
        assert.equal(await u.page.locator('#input').isVisible(), false);
        assert.deepEqual(await u.troubles(), []);
      }));

    test(`${transport}: a user nginx signed in sees their own name as soon as the page is connected`,
      () => scene(`policy-name-${transport}`, async (pages) => {
        const room = uniqueRoom('me');
        const u = await openPage(browser, { base: portBase(1), hash: `#${room}`, transport,
          credentials: { username: 'alice', password: 'secret' } });
        pages.push(u.page);
        // no wait: at "connected" the name is there (it was "?" on long-poll)
        assert.deepEqual(await u.page.evaluate(() => [document.getElementById('me-name').textContent,
          document.getElementById('me-avatar').textContent]), ['alice', 'A']);
        await u.page.locator('#member-list .member-name', { hasText: 'alice' }).waitFor({ timeout: WAIT });
        assert.equal(await u.page.locator('#member-list .member', { hasText: 'alice' }).locator('.you').count(), 1,
          'marked as you in the member list');
        assert.deepEqual(await u.troubles(), []);
      }));
  }

  test('ES5 page: max text, rooms without lobby, read-only and the signed-in name', () => scene('policy-es5', async (pages) => {
    const max = await openPage(browser, { base: portBase(8), name: 'oldmax', es5: true });
    pages.push(max.page);
    await waitRoom(max.page, 'help');
    assert.deepEqual(await listed(max.page), ['help']);
    const text = `es5 ${uniqueRoom('long')} `.padEnd(5000, 'x');
    await max.page.locator('#input').fill(text);
    assert.deepEqual(await counter(max.page), ['5000 / 8000', false, true]);
    await max.page.locator('#input').press('Enter');
    await waitText(max.page, text);
    assert.deepEqual(await max.troubles(), []);

    const ro = await openPage(browser, { base: portBase(8).replace(/chat\/$/, 'ro/'), name: 'oldro', es5: true });
    pages.push(ro.page);
    await waitRoom(ro.page, 'news');
    await ro.page.locator('#readonly-note').waitFor({ state: 'visible', timeout: WAIT });
    assert.equal(await ro.page.locator('#composer').isHidden(), true);
    assert.deepEqual(await ro.troubles(), []);

    const me = await openPage(browser, { base: portBase(1), hash: `#${uniqueRoom('me5')}`, es5: true,
      credentials: { username: 'bob', password: 'secret' } });
    pages.push(me.page);
    assert.equal(await me.page.locator('#me-name').textContent(), 'bob');
    await me.page.locator('#member-list .member', { hasText: 'bob' }).locator('.you').waitFor({ timeout: WAIT });
    assert.deepEqual(await me.troubles(), []);
  }));
});

describe('the page survives any link and any text', { skip: SKIP }, () => {
  let browser;
  before(async () => { browser = await launch(); });
  after(async () => { await browser?.close(); });

  for (const es5 of [false, true]) {
    const which = es5 ? 'ES5 page' : 'app.js';
    test(`${which}: a malformed fragment (/chat/#%E0%A4%A) throws nothing and the page connects`,
      () => scene(`fragment-${es5}`, async (pages) => {
        const u = await openPage(browser, { base: BASE, hash: '#%E0%A4%A', name: es5 ? 'fragold' : 'frag', es5 });
        pages.push(u.page);
        await waitRoom(u.page, 'lobby');
        assert.deepEqual(u.errors, [], 'no URIError');
        // a malformed one later (a click on a crafted link) neither
        await u.page.evaluate(() => { location.hash = '#%E0%A4%A'; });
        await waitConnected(u.page);
        assert.deepEqual(u.errors, []);
      }));

    test(`${which}: bidi controls cannot disguise a link (gnp.exe never reads exe.png)`,
      () => scene(`bidi-${es5}`, async (pages) => {
        const room = uniqueRoom('bidi');
        const u = await openPage(browser, { base: BASE, hash: `#${room}`, name: es5 ? 'bidiold' : 'bidi', es5 });
        pages.push(u.page);
        const bot = await Client.connect('name=mallory');
        const text = 'invoice: https://example.com/files/\u202egnp.exe and \u2067\u202bnot\u2069 this \u200fone';
        bot.send({ op: 'send', room, text, cid: 'bidi-1', ref: 1 });
        await bot.op('ack');
        bot.close();
        await waitUntil(u.page, () => document.querySelector('#log li.msg .text a') !== null, null, 'the link shown');
        const seen = await u.page.evaluate(() => {
          const li = [...document.querySelectorAll('#log li.msg')].pop();
          const a = li.querySelector('.text a');
          return { text: li.querySelector('.text').textContent, link: a.textContent, href: a.getAttribute('href') };
        });
        assert.equal(seen.link, 'https://example.com/files/gnp.exe', 'the link reads as the file it is');
        assert.equal(seen.href, 'https://example.com/files/gnp.exe', 'and goes where it reads');
        assert.equal(seen.text, 'invoice: https://example.com/files/gnp.exe and not this one');
        assert.ok(!BIDI.test(seen.text), 'no bidi control on screen');
        assert.deepEqual(u.errors, []);
      }));
  }
});

describe('a busy room\'s member list', { skip: SKIP }, () => {
  let browser;
  before(async () => { browser = await launch(); });
  after(async () => { await browser?.close(); });

  // 60 users join and leave two rooms together, every second: each second's
  // presence carries only the count (past 50 changes). The page, in room
  // `shown` with `other` in its list, asks the server for the member list
  // at most once per 5 s, and only for the room it shows (it asked on
  // every such event: once a second per room).
  test('count-only presence during a churn: members asked at most once per 5 s, only for the room shown',
    () => scene('members-churn', async (pages) => {
      const shownRoom = uniqueRoom('busy');
      const other = uniqueRoom('side');
      const asked = [];
      let countOnly = 0;
      const frames = (ws) => {
        ws.on('framesent', (f) => {
          const ev = JSON.parse(String(f.payload));
          if (ev.op === 'members') asked.push({ room: ev.room, at: Date.now() });
        });
        ws.on('framereceived', (f) => {
          const ev = JSON.parse(String(f.payload));
          if (ev.op === 'presence' && !ev.online && (ev.room === shownRoom || ev.room === other)) countOnly++;
        });
      };
      const u = await openPage(browser, { base: BASE, hash: `#${other}`, name: 'watcher',
        setup: (page) => page.on('websocket', frames) });
      pages.push(u.page);
      await u.page.locator('#join-input').fill(shownRoom);
      await u.page.locator('#join-input').press('Enter');
      await waitRoom(u.page, shownRoom);
      const crowd = await Promise.all(Array.from({ length: 60 }, (_, i) => Client.connect(`name=churn${i}`)));
      try {
        const started = Date.now();
        let inside = false;
        while (Date.now() - started < 10000) {
          inside = !inside;
          for (const c of crowd) {
            for (const room of [shownRoom, other]) c.send(inside ? { op: 'join', room } : { op: 'leave', room });
          }
          // the attack's pace (not a wait for anything): one flip a second
          await new Promise((r) => setTimeout(r, 1100));
        }
        const took = Date.now() - started;
        assert.ok(countOnly >= 8, `count-only presence events seen: ${countOnly}`);
        const mine = asked.filter((a) => a.room === shownRoom);
        assert.deepEqual(asked.filter((a) => a.room === other), [], 'the room not shown is not asked');
        assert.ok(mine.length <= Math.ceil(took / 5000) + 1, `members asked ${mine.length} times in ${took} ms`);
        for (let i = 1; i < mine.length; i++) assert.ok(mine[i].at - mine[i - 1].at >= 4900, 'at most once per 5 s');
        console.log(`# churn: ${countOnly} count-only presence events, members asked ${mine.length} times in ${took} ms`);
      } finally {
        for (const c of crowd) c.close();
      }
      // The list still catches up: the crowd gone, the page lists itself alone.
      await waitUntil(u.page, () => [...document.querySelectorAll('#member-list .member-name')]
        .map((e) => e.textContent).join() === '~watcher', null, 'the crowd gone from the list');
      assert.deepEqual(u.errors, []);
    }));
});
