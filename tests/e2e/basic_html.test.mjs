// The chat without JavaScript (basic/): Chromium with JavaScript off reads
// a room and posts to it while a WebSocket user sees the post; w3m shows
// the room; HTML in texts and names stays text; cross-site posts are refused.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { BASE, Client, uniqueRoom } from './lib.mjs';
import { send } from './lp_lib.mjs';
import { SKIP, WAIT, launch, scene } from './browser_lib.mjs';

const run = promisify(execFile);

async function history(room) {
  const r = await fetch(`${BASE}history?room=${room}&limit=200`, { headers: { 'x-chat-request': '1' } });
  return (await r.json()).messages;
}

async function wsMember(room) {
  const c = await Client.connect('name=watcher');
  await c.op('hello');
  c.send({ op: 'join', room, since: 0 });
  await c.op('joined');
  return c;
}

// The form of a room page: its token and cookie, as a browser would hold them.
async function formOf(room) {
  const res = await fetch(`${BASE}basic/room?r=${room}`);
  const html = await res.text();
  const cookie = (res.headers.get('set-cookie') || '').split(';')[0];
  const token = html.match(/name="token" value="([0-9a-f]+)"/)[1];
  const cid = html.match(/name="cid" value="([0-9a-f]+)"/)[1];
  return { cookie, token, cid, html };
}

function postForm(fields, headers = {}) {
  return fetch(`${BASE}basic/post`, {
    method: 'POST', redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields).toString(),
  });
}

describe('basic HTML mode', () => {
  test('Chromium with JavaScript off reads a room, posts, and a WebSocket user sees it', { skip: SKIP }, async () => {
    const browser = await launch();
    const room = uniqueRoom('basic');
    await send(room, 'first, from long-poll', { name: 'lp' });
    const ws = await wsMember(room);
    try {
      await scene('basic-nojs', async (pages) => {
        const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 800 } });
        const page = await context.newPage();
        pages.push(page);
        await page.goto(BASE);
        // the page's <noscript> leads to the basic chat
        await page.getByRole('link', { name: 'the basic chat' }).click();
        await page.locator('h1', { hasText: 'Chat rooms' }).waitFor({ timeout: WAIT });
        await page.locator('input[name=r]').fill(room);
        await page.getByRole('button', { name: 'Open' }).click();
        await page.locator('h1', { hasText: `#${room}` }).waitFor({ timeout: WAIT });
        assert.equal(await page.locator('ol.messages li').count(), 1);
        assert.match(await page.locator('ol.messages li').first().innerText(), /~lp[\s\S]*first, from long-poll/);
        await page.locator('input[name=name]').fill('nojs');
        await page.locator('textarea[name=text]').fill('hello without JavaScript\nsecond line');
        await page.getByRole('button', { name: 'Send' }).click();
        // 303 back to the room, the post shown after the first message
        await page.locator('ol.messages li', { hasText: 'hello without JavaScript' }).waitFor({ timeout: WAIT });
        assert.match(page.url(), new RegExp(`/chat/basic/room\\?r=${room}$`));
        const ev = await ws.next((e) => e.op === 'msg' && e.user === '~nojs', WAIT, 'the post over WebSocket');
        assert.equal(ev.text, 'hello without JavaScript\nsecond line');
        assert.equal(ev.seq, 2);
        // the WebSocket user answers; Refresh shows it, in the server's order
        ws.send({ op: 'send', room, text: 'seen it', cid: 'w1' });
        await ws.op('ack');
        await page.getByRole('link', { name: 'Refresh', exact: true }).click();
        await page.locator('ol.messages li', { hasText: 'seen it' }).waitFor({ timeout: WAIT });
        const shown = await page.locator('ol.messages li').evaluateAll((ls) => ls.map((l) => Number(l.id.slice(1))));
        assert.deepEqual(shown, (await history(room)).map((m) => m.seq));
        // the guest name is remembered, and the poster is online
        assert.equal(await page.locator('input[name=name]').inputValue(), 'nojs');
        assert.match(await page.locator('p.online').innerText(), /~nojs/);
        // sending the same form twice (back and resubmit) stores it once
        assert.equal((await history(room)).filter((m) => m.user === '~nojs').length, 1);
      });
    } finally {
      ws.close();
      await browser.close();
    }
  });

  test('older pages: 50 messages a page, then a link to the ones before', async () => {
    const room = uniqueRoom('bpage');
    for (let i = 1; i <= 55; i++) await send(room, `n${i}`, { name: `s${i % 5}` });
    const first = await (await fetch(`${BASE}basic/room?r=${room}`)).text();
    assert.ok(first.includes('>n55<') || first.includes('n55</li>'), 'the latest');
    assert.ok(!first.includes('<br>n5</li>'));
    const older = first.match(/href="(room\?r=[^"]+&amp;before=(\d+))"/);
    assert.ok(older, 'a link to older messages');
    assert.equal(older[2], '6');
    const page2 = await (await fetch(`${BASE}basic/${older[1].replace(/&amp;/g, '&')}`)).text();
    assert.deepEqual([...page2.matchAll(/<li id="m(\d+)"/g)].map((m) => Number(m[1])), [1, 2, 3, 4, 5]);
  });

  test('w3m shows the room', { skip: existsSync('/usr/bin/w3m') ? false : 'w3m is missing (make deps installs it)' }, async () => {
    const room = uniqueRoom('bw3m');
    await send(room, 'readable in a text browser', { name: 'textfan' });
    const { stdout } = await run('w3m', ['-dump', '-cols', '80', `${BASE}basic/room?r=${room}`], { timeout: 20000 });
    assert.match(stdout, new RegExp(`#${room}`));
    assert.match(stdout, /~textfan/);
    assert.match(stdout, /readable in a text browser/);
    assert.match(stdout, /Your name:/);
    assert.match(stdout, /Refresh/);
  });

  test('HTML in texts and names is shown as text; bad names and rooms get a clear error', async () => {
    const room = uniqueRoom('bxss');
    const evil = '<script>alert(1)</script><img src=x onerror="alert(2)"> & \'q\'';
    await send(room, evil, { name: 'mallory' });
    const html = await (await fetch(`${BASE}basic/room?r=${room}`)).text();
    assert.ok(!html.includes('<script>alert'), 'no script tag');
    assert.ok(!html.includes('<img src=x'), 'no img tag');
    assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt; &amp; &#39;q&#39;'));
    const f = await formOf(room);
    const r = await postForm({ room, token: f.token, cid: f.cid, name: '<b>bad</b>', text: 'x' }, { cookie: f.cookie });
    assert.equal(r.status, 400);
    const page = await r.text();
    assert.match(page, /A name is 1-32/);
    assert.ok(!page.includes('<b>bad'));
    const bad = await fetch(`${BASE}basic/room?r=${encodeURIComponent('<script>')}`);
    assert.equal(bad.status, 400);
    assert.ok(!(await bad.text()).includes('<script>'));
    const long = await postForm({ room, token: f.token, cid: f.cid, name: 'ok', text: 'x'.repeat(5000) }, { cookie: f.cookie });
    assert.equal(long.status, 413);
    assert.equal((await history(room)).length, 1, 'nothing stored by the refused posts');
  });

  test('cross-site posts are refused: another Origin, no cookie, a token of another cookie', async () => {
    const room = uniqueRoom('bcsrf');
    const f = await formOf(room);
    const g = await formOf(room);
    assert.notEqual(f.token, g.token);
    const fields = { room, token: f.token, cid: f.cid, name: 'eve', text: 'forged' };
    const cases = [
      [{ cookie: f.cookie, origin: 'http://evil.example' }, 'another Origin'],
      [{ cookie: f.cookie, referer: 'http://evil.example/page' }, 'another Referer'],
      [{}, 'no cookie'],
      [{ cookie: g.cookie }, "another browser's cookie"],
    ];
    for (const [headers, what] of cases) {
      const r = await postForm(fields, headers);
      assert.equal(r.status, 403, what);
      assert.match(await r.text(), /did not come from this chat/);
    }
    assert.deepEqual(await history(room), [], 'nothing stored');
    const ok = await postForm(fields, { cookie: f.cookie, origin: new URL(BASE).origin });
    assert.equal(ok.status, 303);
    assert.equal(ok.headers.get('location'), `/chat/basic/room?r=${room}`);
    assert.deepEqual((await history(room)).map((m) => [m.user, m.text]), [['~eve', 'forged']]);
  });
});
