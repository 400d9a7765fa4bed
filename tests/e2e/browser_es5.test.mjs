// The ES5 client (web/chat-es5.js) for engines without ES modules: it parses
// as ES5 and names none of the newer APIs, and in Chromium made to look like
// such an engine (no WebSocket, fetch or Promise; module scripts not run)
// it chats over long-poll with a WebSocket user, through a lost poll answer
// and a lost send acknowledgement, with nothing lost or doubled.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as acorn from 'acorn';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { BASE, ROOT, VAR, uniqueRoom, Client, portBase, http, pgClient, withTimeout } from './lib.mjs';
import { SKIP, WAIT, launch, shown, screenshot, scene, seed } from './browser_lib.mjs';

const FILE = `${ROOT}/web/chat-es5.js`;
const LOADER = `${ROOT}/web/legacy.js`;
const W3 = 'w3 (its poll answer is lost)';

// Globals and DOM methods an old engine lacks: the script must not touch them.
const MISSING_GLOBALS = ['Promise', 'fetch', 'WebSocket', 'Map', 'Set', 'WeakMap', 'Symbol', 'Proxy', 'Reflect',
  'AbortController', 'BroadcastChannel', 'TextEncoder', 'URL', 'URLSearchParams', 'queueMicrotask',
  'requestAnimationFrame', 'globalThis', 'Intl'];
const MISSING_METHODS = ['includes', 'startsWith', 'endsWith', 'padStart', 'find', 'findIndex', 'assign',
  'entries', 'closest', 'append', 'prepend', 'remove', 'replaceChildren', 'replaceWith', 'before', 'after',
  'dataset', 'classList', 'matchAll', 'requestSubmit', 'toggleAttribute', 'isComposing', 'locks'];

// Every identifier and every non-computed property name in the AST.
function names(node, out = { ids: new Set(), props: new Set() }) {
  if (!node || typeof node.type !== 'string') return out;
  if (node.type === 'Identifier') out.ids.add(node.name);
  if (node.type === 'MemberExpression' && !node.computed) {
    out.props.add(node.property.name);
    names(node.object, out);
    return out;
  }
  if (node.type === 'Property' && !node.computed) {
    names(node.value, out); // a key is a name of our own, not a use
    return out;
  }
  for (const v of Object.values(node)) {
    if (Array.isArray(v)) v.forEach((c) => names(c, out));
    else if (v && typeof v === 'object') names(v, out);
  }
  return out;
}

test('chat-es5.js is ES5: it parses with ecmaVersion 5 and uses no newer API', async () => {
  const src = readFileSync(FILE, 'utf8');
  const ast = acorn.parse(src, { ecmaVersion: 5, sourceType: 'script' });
  // The parser does refuse each newer form, so the parse above means something.
  for (const newer of ['let a = 1;', 'const a = 1;', 'var f = () => 1;', 'class A {}', 'var s = `x`;',
    'function f(a = 1) {}', 'var { a } = b;', 'for (var x of y) {}', 'async function f() {}', 'f(...a);',
    'var o = { a };', 'var o = { f() {} };']) {
    assert.throws(() => acorn.parse(newer, { ecmaVersion: 5 }), SyntaxError, newer);
  }
  const { ids, props } = names(ast);
  assert.deepEqual(MISSING_GLOBALS.filter((g) => ids.has(g)), [], 'globals an old engine lacks');
  assert.deepEqual(MISSING_METHODS.filter((m) => props.has(m)), [], 'methods an old engine lacks');
  // The loader that picks it is older still: ES3.
  const loader = readFileSync(LOADER, 'utf8');
  acorn.parse(loader, { ecmaVersion: 3, sourceType: 'script' });
  // What nginx serves is these files, as scripts, and the page loads the
  // loader after the module, deferred (so it runs after app.js had its turn).
  for (const [name, text] of [['chat-es5.js', src], ['legacy.js', loader]]) {
    const res = await fetch(`${BASE}${name}`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /javascript/);
    assert.equal(await res.text(), text);
  }
  const html = await (await fetch(BASE)).text();
  assert.match(html, /<script type="module" src="app.js"><\/script>[^]*<script defer src="legacy.js"><\/script>/);
});

// page.waitForFunction needs the page's Promise, which these pages do not
// have: wait by asking the page again until the deadline.
async function waitUntil(page, fn, arg, what, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await page.evaluate(fn, arg)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function waitConnected(page) {
  return waitUntil(page, () => {
    const c = document.getElementById('conn');
    return c.dataset.state === 'connected' && c.dataset.transport === 'longpoll';
  }, null, 'connected by long-poll');
}

function waitText(page, text) {
  return waitUntil(page, (t) => [...document.querySelectorAll('#log ol.messages:not(.outbox) li.msg .text')]
    .some((e) => e.textContent === t), text, `"${text}" on screen`);
}

// A page as an engine without ES modules, WebSocket, fetch or Promise sees
// it: a script of an unknown type (module) is not run, and those globals
// are not there.
// name null: a user nginx signs in (credentials), who is asked for no name.
async function openOld(browser, name, { base = BASE, room, credentials }) {
  const context = await browser.newContext({ viewport: { width: 1180, height: 780 }, httpCredentials: credentials });
  await context.addInitScript(() => {
    // (Map, Set and the like stay: playwright's own page scripts need them;
    // the test above checks that chat-es5.js names none of them.)
    for (const k of ['WebSocket', 'fetch', 'Promise', 'BroadcastChannel', 'AbortController', 'TextEncoder',
      'URLSearchParams', 'queueMicrotask']) {
      delete window[k];
    }
    delete HTMLScriptElement.prototype.noModule;
  });
  await context.route((url) => /^\/chat\/(index\.html)?$/.test(url.pathname), async (route) => {
    const res = await route.fetch();
    const html = (await res.text())
      .replace(/<script type="module"/g, '<script type="x-module-unknown"')
      .replace(/rel="modulepreload"/g, 'rel="x-unknown"');
    await route.fulfill({ response: res, body: html });
  });
  const page = await context.newPage();
  const errors = [];
  const scripts = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  page.on('request', (r) => { if (new URL(r.url()).pathname.endsWith('.js')) scripts.push(new URL(r.url()).pathname); });
  await page.goto(`${base}#${room}`);
  if (name !== null) {
    await page.locator('#login-name').fill(name);
    await page.locator('#login-form button[type=submit]').click();
  }
  await waitConnected(page);
  return { context, page, errors, scripts, name, user: name === null ? credentials.username : `~${name}` };
}

// A WebSocket user in `room` (lib.mjs Client) and the texts it has received.
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

describe('ES5 client in a browser without WebSocket, fetch, Promise or modules', { skip: SKIP }, () => {
  let browser;
  before(async () => { browser = await launch(); });
  after(async () => { await browser?.close(); });

  async function onlineInDb(room, member) {
    const db = await pgClient();
    await db.connect();
    try {
      await withTimeout((async () => {
        while ((await db.query('SELECT 1 FROM presence WHERE room = $1 AND member = $2', [room, member])).rowCount === 0) {
          await new Promise((r) => setTimeout(r, 50));
        }
      })(), WAIT, `${member} online in ${room}`);
    } finally {
      await db.end();
    }
  }

  test('chats both ways with a WebSocket user, through a lost poll answer and a lost ack',
    () => scene('es5-chat', async (pages) => {
      const room = uniqueRoom('e5');
      const web = await wsUser('web', room);
      // ~web is online in the database before the page loads: the page's
      // first poll lists the members then (a presence event is delivered
      // only to a poll parked when it comes, so one that fell between two
      // polls of the page would not show ~web until the next change)
      await onlineInDb(room, '~web');
      const old = await openOld(browser, 'old', { room });
      pages.push(old.page);

      // The page is the ES5 one: nothing else ran, the old engine's APIs are gone.
      assert.deepEqual(old.scripts, ['/chat/legacy.js', '/chat/chat-es5.js']);
      assert.deepEqual(await old.page.evaluate(() => [typeof window.WebSocket, typeof window.fetch,
        typeof window.Promise, window.chatModule]), ['undefined', 'undefined', 'undefined', 'es5']);
      assert.match(await old.page.locator('#conn').innerText(), /Long-poll/);
      await old.page.locator('#member-list', { hasText: '~web' }).waitFor({ timeout: WAIT });
      await web.next((e) => e.op === 'presence' && e.online?.includes('~old'), WAIT, 'old online');

      // as a person types: a typing event a second (the server forwards one
      // a second), until the page shows it. A typing event is not stored: one
      // that comes while the page is between two polls is not for it to see.
      const typingShown = old.page.locator('#typing', { hasText: '~web is typing…' }).waitFor({ timeout: WAIT });
      web.send({ op: 'typing', room });
      const keepTyping = setInterval(() => web.send({ op: 'typing', room }), 1100);
      try {
        await typingShown;
      } finally {
        clearInterval(keepTyping);
      }
      web.send({ op: 'send', room, text: 'hello from WebSocket', cid: 'w1' });
      await waitText(old.page, 'hello from WebSocket');
      assert.equal(await old.page.locator('#typing').innerText(), '', 'a message clears its sender\'s typing');
      await old.page.locator('#input').pressSequentially('hello from');
      await web.next((e) => e.op === 'typing' && e.user === '~old', WAIT, 'typing');
      await old.page.locator('#input').fill('hello from ES5');
      await old.page.locator('#input').press('Enter');
      const m = await web.next((e) => e.op === 'msg' && e.text === 'hello from ES5', WAIT, 'msg from es5');
      assert.equal(m.user, '~old');

      // The network loses a poll's answer (the server sent it) and a send's
      // ack (the server stored the message): the page resumes from its cursor
      // and sends again with the same cid.
      await old.page.evaluate(() => {
        const conn = document.getElementById('conn');
        window.__states = [];
        new MutationObserver(() => window.__states.push(conn.dataset.state))
          .observe(conn, { attributes: true, attributeFilter: ['data-state'] });
      });
      let dropPoll = false;
      let dropSend = false;
      let lostPoll = null;
      let release = null; // set: parked polls wait (a slow network), so only the ack can tell
      const held = new Promise((resolve) => { release = resolve; });
      let holdParked = false;
      const sendCids = [];
      await old.context.route((url) => url.pathname === '/chat/poll', async (route) => {
        const parks = new URL(route.request().url()).searchParams.get('timeout') !== '0';
        if (holdParked && parks) await held;
        if (!dropPoll) { await route.continue(); return; }
        const res = await route.fetch({ timeout: 60000 });
        const body = await res.json();
        if (!dropPoll || !body.events.some((e) => e.text === W3)) { await route.fulfill({ response: res }); return; }
        dropPoll = false;
        holdParked = true;
        lostPoll = body;
        await route.abort('connectionreset');
      });
      await old.context.route((url) => url.pathname === '/chat/send', async (route) => {
        sendCids.push(JSON.parse(route.request().postData()).cid);
        if (!dropSend) { await route.continue(); return; }
        dropSend = false;
        await route.fetch();
        await route.abort('connectionreset');
      });
      dropPoll = true;
      // The poll parked before the route is not intercepted: this message
      // answers it, and the answer carrying the next one is lost.
      web.send({ op: 'send', room, text: 'w2', cid: 'w2' });
      await waitText(old.page, 'w2');
      web.send({ op: 'send', room, text: W3, cid: 'w3' });
      await waitUntil(old.page, () => window.__states.includes('reconnecting'), null, 'reconnecting shown');
      assert.ok(lostPoll, 'an answer carrying w3 was lost');
      await waitText(old.page, W3); // the page polled again from its cursor
      await waitConnected(old.page);
      web.send({ op: 'send', room, text: 'w4', cid: 'w4' });
      dropSend = true;
      await old.page.locator('#input').fill('o2 (its ack is lost)');
      await old.page.locator('#input').press('Enter');
      await old.page.locator('#input').fill('o3');
      await old.page.locator('#input').press('Enter');
      await waitUntil(old.page, () => !document.querySelector('#log .outbox li'), null, 'o2 and o3 acknowledged');
      // o2 was sent twice with one cid (the first answer was lost), then o3.
      assert.equal(sendCids.length, 3, `sends: ${sendCids}`);
      assert.equal(sendCids[0], sendCids[1]);
      assert.notEqual(sendCids[2], sendCids[0]);
      release();
      web.send({ op: 'send', room, text: 'w5', cid: 'w5' });

      const texts = ['hello from WebSocket', 'hello from ES5', 'w2', W3, 'w4', 'o2 (its ack is lost)', 'o3', 'w5'];
      await waitUntil(old.page, (want) => {
        const got = [...document.querySelectorAll('#log ol.messages:not(.outbox) li.msg .text')].map((e) => e.textContent);
        return want.every((t) => got.includes(t)) && !document.querySelector('#log .outbox li');
      }, texts, 'every message on screen, none pending');
      for (const t of ['o2 (its ack is lost)', 'o3']) {
        await web.next((e) => e.op === 'msg' && e.text === t, WAIT, t);
      }
      assert.ok((await old.page.evaluate(() => window.__states)).includes('connected'));

      // Exactly once, gap-free, in the server's order, on the page and on the server.
      const stored = await history(room);
      assert.deepEqual([...stored.map((x) => x.text)].sort(), [...texts].sort());
      assert.deepEqual(stored.map((x) => x.seq), texts.map((_, i) => i + 1));
      const seen = await shown(old.page);
      assert.deepEqual(seen.map((x) => [x.seq, x.user, x.text]), stored.map((x) => [x.seq, x.user, x.text]));
      assert.deepEqual(seen.filter((x) => x.user === '~old').map((x) => x.state), ['sent', 'sent', 'sent']);
      await screenshot(old.page, 'es5-chat');
      web.close();
      assert.deepEqual(old.errors, []);
    }));

  test('only the rooms the location allows: a refused room is left with a reason, an allowed one chats',
    () => scene('es5-rooms', async (pages) => {
      // tests/nginx.test.conf's second server allows "public-* lobby".
      const secret = uniqueRoom('secret');
      const pub = uniqueRoom('public');
      const old = await openOld(browser, 'olga', { base: portBase(2), room: secret });
      pages.push(old.page);
      await old.page.locator('#toast', { hasText: `Cannot join #${secret}: not allowed here` })
        .waitFor({ timeout: WAIT });
      const listed = () => old.page.locator('#room-list .room-label').allInnerTexts();
      assert.deepEqual(await listed(), ['lobby']);
      await old.page.locator('#join-input').fill(pub);
      await old.page.locator('#join-input').press('Enter');
      await waitUntil(old.page, (r) => document.getElementById('room-name').textContent === `#${r}`, pub, 'room opened');
      await old.page.locator('#input').fill('in a public room');
      await old.page.locator('#input').press('Enter');
      await waitText(old.page, 'in a public room');
      await waitConnected(old.page);
      assert.deepEqual(await listed(), ['lobby', pub]);
      assert.deepEqual((await history(pub)).map((x) => [x.user, x.text]), [['~olga', 'in a public room']]);
      assert.deepEqual(old.errors, []);
    }));
  test('a user nginx signed in is asked for no name and chats under it', () => scene('es5-signed-in', async (pages) => {
    // The test stack's first extra server: auth_basic (alice/bob:secret), guests off.
    const room = uniqueRoom('e5a');
    const auth = { authorization: `Basic ${Buffer.from('bob:secret').toString('base64')}` };
    const bob = await Client.connect('', { headers: auth }, portBase(1, 'ws'));
    bob.send({ op: 'join', room, ref: 'j' });
    await bob.op('joined');
    const alice = await openOld(browser, null, { base: portBase(1), room, credentials: { username: 'alice', password: 'secret' } });
    pages.push(alice.page);
    assert.equal(await alice.page.locator('#login').isHidden(), true, 'no name asked');
    await alice.page.locator('#input').fill('signed in, old engine');
    await alice.page.locator('#input').press('Enter');
    const m = await bob.next((e) => e.op === 'msg' && e.text === 'signed in, old engine', WAIT, 'alice\'s message');
    assert.equal(m.user, 'alice');
    bob.send({ op: 'send', room, text: 'hi alice', cid: 'b1' });
    await waitText(alice.page, 'hi alice');
    await waitUntil(alice.page, () => !document.querySelector('#log .outbox li'), null, 'nothing pending');
    // Her own message carries her name from the server once it came back by poll.
    await waitUntil(alice.page, () => document.querySelector('#log li.msg[data-seq="1"]')?.dataset.user === 'alice',
      null, 'own message named');
    assert.deepEqual((await shown(alice.page)).map((x) => [x.seq, x.user, x.text, x.state]),
      [[1, 'alice', 'signed in, old engine', 'sent'], [2, 'bob', 'hi alice', '']]);
    bob.close();
    assert.deepEqual(alice.errors, []);
  }));

  test('the long-poll worker is killed mid-chat and restarted: nothing lost, nothing doubled',
    () => scene('es5-worker-restart', async (pages) => {
      const room = uniqueRoom('e5k');
      const web = await wsUser('web', room);
      const old = await openOld(browser, 'old', { room });
      pages.push(old.page);
      web.send({ op: 'send', room, text: 'before', cid: 'w1' });
      await waitText(old.page, 'before');
      const pid = (await http('health/details')).json?.backends?.fcgi?.pid;
      assert.ok(pid, 'the health check names the worker');
      await old.page.evaluate(() => {
        const conn = document.getElementById('conn');
        window.__states = [];
        new MutationObserver(() => window.__states.push(conn.dataset.state))
          .observe(conn, { attributes: true, attributeFilter: ['data-state'] });
      });
      // Every process of this stack's worker, at once, with no goodbye; the
      // stack's supervisor starts a new one. Both keep talking meanwhile.
      const pattern = `chat-fcgi --db .*${VAR.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/run/fcgi.sock`;
      await promisify(execFile)('pkill', ['-KILL', '-f', pattern]);
      await old.page.locator('#input').fill('during, from ES5');
      await old.page.locator('#input').press('Enter');
      web.send({ op: 'send', room, text: 'during, from WebSocket', cid: 'w2' });
      await waitUntil(old.page, () => window.__states.includes('reconnecting'), null, 'reconnecting shown');
      const texts = ['before', 'during, from ES5', 'during, from WebSocket'];
      await waitUntil(old.page, (want) => {
        const got = [...document.querySelectorAll('#log ol.messages:not(.outbox) li.msg .text')].map((e) => e.textContent);
        return want.every((t) => got.includes(t)) && !document.querySelector('#log .outbox li');
      }, texts, 'every message on screen, none pending', 40000);
      await web.next((e) => e.op === 'msg' && e.text === 'during, from ES5', WAIT, 'the ES5 message');
      assert.notEqual((await http('health/details')).json?.backends?.fcgi?.pid, pid, 'a new worker answers');
      const stored = await history(room);
      assert.deepEqual(stored.map((x) => x.seq), [1, 2, 3]);
      assert.deepEqual([...stored.map((x) => x.text)].sort(), [...texts].sort());
      assert.deepEqual((await shown(old.page)).map((x) => [x.seq, x.user, x.text]),
        stored.map((x) => [x.seq, x.user, x.text]));
      web.close();
      assert.deepEqual(old.errors, []);
    }));
  test('the last 50 messages, then older ones on "Load older messages"', () => scene('es5-history', async (pages) => {
    const room = uniqueRoom('e5h');
    await seed(room, 60);
    const old = await openOld(browser, 'olive', { room });
    pages.push(old.page);
    await waitText(old.page, 'line 60');
    assert.deepEqual((await shown(old.page)).map((x) => x.seq), Array.from({ length: 50 }, (_, i) => i + 11));
    await old.page.getByRole('button', { name: 'Load older messages' }).click();
    await old.page.locator('#log .log-top .start').waitFor({ timeout: WAIT });
    const seen = await shown(old.page);
    assert.deepEqual(seen.map((x) => x.seq), Array.from({ length: 60 }, (_, i) => i + 1));
    assert.deepEqual(seen.map((x) => x.text), Array.from({ length: 60 }, (_, i) => `line ${i + 1}`));
    assert.deepEqual(old.errors, []);
  }));
  // As Firefox 60-89 or Chrome 61-83: modules run, but chat-client.js's
  // syntax (private methods, ?., ??) does not parse, so app.js never runs.
  // As Chrome 84-85: it parses, but a DOM method app.js calls is missing.
  const TOO_OLD = {
    'the modern client\'s syntax does not parse': (context) => context.route(
      (url) => url.pathname === '/chat/chat-client.js',
      (route) => route.fulfill({ contentType: 'text/javascript', body: 'export class ChatClient { #a() {} }\nexport const x = ;\n' })),
    'a DOM method app.js calls is missing': (context) => context.addInitScript(() => {
      delete Element.prototype.replaceChildren;
    }),
  };
  for (const [what, age] of Object.entries(TOO_OLD)) {
    test(`a browser with modules where ${what} gets the ES5 page, not a blank one`,
      () => scene(`es5-old-modules-${Object.keys(TOO_OLD).indexOf(what)}`, async (pages) => {
        const room = uniqueRoom('e5m');
        const web = await wsUser('web', room);
        const context = await browser.newContext({ viewport: { width: 1180, height: 780 } });
        await age(context);
        const page = await context.newPage();
        pages.push(page);
        const errors = [];
        const scripts = [];
        page.on('pageerror', (err) => errors.push(String(err)));
        page.on('request', (r) => { if (new URL(r.url()).pathname.endsWith('.js')) scripts.push(new URL(r.url()).pathname); });
        await page.goto(`${BASE}#${room}`);
        await page.locator('#login-name').fill('fox');
        await page.locator('#login-form button[type=submit]').click();
        await waitConnected(page);
        assert.equal(await page.evaluate(() => window.chatModule), 'es5');
        assert.ok(scripts.includes('/chat/chat-es5.js'), `scripts: ${scripts}`);
        assert.ok(errors.length === 1 && /SyntaxError|too old for app.js/.test(errors[0]), `only the module's error: ${errors}`);
        await page.locator('#input').fill('from a browser stuck in 2019');
        await page.locator('#input').press('Enter');
        const m = await web.next((e) => e.op === 'msg' && e.text === 'from a browser stuck in 2019', WAIT, 'message');
        assert.equal(m.user, '~fox');
        web.send({ op: 'send', room, text: 'welcome', cid: 'w1' });
        await waitText(page, 'welcome');
        web.close();
      }));
  }

  test('a current browser runs app.js and never fetches the ES5 page', () => scene('es5-not-modern', async (pages) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    pages.push(page);
    const scripts = [];
    page.on('request', (r) => { if (new URL(r.url()).pathname.endsWith('.js')) scripts.push(new URL(r.url()).pathname); });
    await page.goto(`${BASE}#${uniqueRoom('e5n')}`);
    await page.locator('#login-name').waitFor({ timeout: WAIT });
    await page.evaluate(() => new Promise((resolve) => {
      if (document.readyState === 'complete') resolve();
      else window.addEventListener('load', resolve);
    }));
    assert.equal(await page.evaluate(() => window.chatModule), 'module');
    assert.ok(scripts.includes('/chat/legacy.js'));
    assert.ok(!scripts.includes('/chat/chat-es5.js'), `scripts: ${scripts}`);
  }));
});
