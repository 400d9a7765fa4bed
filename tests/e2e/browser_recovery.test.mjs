// The browser client when things break: the WebSocket daemon is killed
// mid-chat (the stack's supervisor restarts it) and the pages go on with
// nothing lost or doubled; several tabs share one long-poll.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { VAR, uniqueRoom, http, Client } from './lib.mjs';
import {
  SKIP, WAIT, launch, openUser, waitConnected, say, shown, waitText, screenshot, scene,
} from './browser_lib.mjs';

const run = promisify(execFile);
const reEscape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// Every process of this stack's WebSocket daemon (its command line names the
// stack's socket), killed at once with no chance to say goodbye.
async function killWsDaemon() {
  const pattern = `chat-ws --db .*${reEscape(`${VAR}/run/ws.sock`)}`;
  await run('pkill', ['-KILL', '-f', pattern]);
}

async function wsPid() {
  const r = await http('health/details');
  return r.json?.backends?.ws?.pid ?? null;
}

async function recordStates(page) {
  await page.evaluate(() => {
    window.__states = [];
    window.chat.on('state', (s) => window.__states.push(`${s.state}/${s.transport}`));
  });
}

// Waits until the page shows exactly these texts (in any order) with nothing
// pending, then returns what it shows.
async function waitAll(page, texts) {
  await page.waitForFunction((want) => {
    const got = [...document.querySelectorAll('#log ol.messages:not(.outbox) li.msg .text')].map((e) => e.textContent);
    return want.every((t) => got.includes(t)) && !document.querySelector('#log .outbox li');
  }, texts, { timeout: WAIT });
  return shown(page);
}

describe('browser client recovery', { skip: SKIP }, () => {
  let browser;
  before(async () => { browser = await launch(); });
  after(async () => { await browser?.close(); });

  test('the WebSocket daemon is killed and restarted mid-chat: nothing lost, nothing doubled',
    () => scene('daemon-restart', async (pages) => {
      const room = uniqueRoom('k');
      const alice = await openUser(browser, 'alice', { room });
      const bob = await openUser(browser, 'bob', { room });
      pages.push(alice.page, bob.page);
      await say(alice.page, 'before 1');
      await waitText(bob.page, 'before 1');
      await say(bob.page, 'before 2');
      await waitText(alice.page, 'before 2');
      for (const u of [alice, bob]) await recordStates(u.page);
      const oldPid = await wsPid();
      assert.ok(oldPid, 'the health check names the daemon');

      await killWsDaemon();
      // Both keep typing through the outage, without waiting for anything.
      await say(alice.page, 'during 1');
      await say(bob.page, 'during 2');
      await say(alice.page, 'during 3');

      const expected = ['before 1', 'before 2', 'during 1', 'during 2', 'during 3'];
      for (const u of [alice, bob]) await waitAll(u.page, expected);
      // Each page noticed the drop and said so.
      for (const u of [alice, bob]) {
        const states = await u.page.evaluate(() => window.__states);
        assert.ok(states.some((s) => !s.startsWith('connected')), `no reconnect shown: ${states}`);
      }

      // The supervisor restarted the daemon; the pages go back to WebSocket by themselves.
      for (const u of [alice, bob]) await waitConnected(u.page, 'websocket');
      assert.notEqual(await wsPid(), oldPid, 'a new daemon answers');
      await say(bob.page, 'after');
      await say(alice.page, 'after 2');
      const all = [...expected, 'after', 'after 2'];
      const a = await waitAll(alice.page, all);
      const b = await waitAll(bob.page, all);

      // Exactly once each, gap-free, the same order on both pages.
      assert.deepEqual(a.map((m) => m.seq), Array.from({ length: all.length }, (_, i) => i + 1));
      assert.deepEqual([...a.map((m) => m.text)].sort(), [...all].sort());
      assert.deepEqual(a.map((m) => [m.seq, m.user, m.text]), b.map((m) => [m.seq, m.user, m.text]));
      assert.deepEqual(a.filter((m) => m.user === '~alice').map((m) => m.state), ['sent', 'sent', 'sent', 'sent']);
      await screenshot(alice.page, 'daemon-restart-alice');

      // And the server holds each message once (a fresh reader's view).
      const reader = await Client.connect('name=auditor');
      reader.send({ op: 'history', room, limit: 50, ref: 1 });
      const h = await reader.op('history');
      reader.close();
      assert.deepEqual(h.messages.map((m) => m.text), a.map((m) => m.text));
      assert.deepEqual([...alice.errors, ...bob.errors], []);
    }));

  test('tabs of one user share a single long-poll, and the next tab takes over when it closes',
    () => scene('shared-poll', async (pages) => {
      const room = uniqueRoom('t');
      const kim = await openUser(browser, 'kim', { room, noWebSocket: true });
      pages.push(kim.page);
      const leo = await openUser(browser, 'leo', { room });
      pages.push(leo.page);
      await waitConnected(kim.page, 'longpoll');

      // A second tab of the same person (same browser profile: the name is remembered).
      const tab2 = await kim.context.newPage();
      const polls = { tab1: 0, tab2: 0 };
      kim.page.on('request', (r) => { if (r.url().includes('/chat/poll')) polls.tab1++; });
      tab2.on('request', (r) => { if (r.url().includes('/chat/poll')) polls.tab2++; });
      await tab2.goto(kim.page.url());
      await waitConnected(tab2, 'longpoll');
      assert.match(await tab2.locator('#conn').innerText(), /Long-poll/);

      await say(leo.page, 'to both tabs');
      await waitText(kim.page, 'to both tabs');
      await waitText(tab2, 'to both tabs');
      await say(tab2, 'from the second tab');
      await waitText(leo.page, 'from the second tab');
      await waitText(kim.page, 'from the second tab');
      assert.equal(polls.tab2, 0, 'the second tab rides on the first tab\'s poll');
      assert.ok(polls.tab1 > 0);
      await screenshot(tab2, 'shared-poll-tab2');

      // The polling tab closes: the other takes over and misses nothing.
      await kim.page.close();
      await say(leo.page, 'after the first tab closed');
      await waitText(tab2, 'after the first tab closed');
      assert.ok(polls.tab2 > 0, 'the second tab polls now');
      const seen = await shown(tab2);
      assert.deepEqual(seen.map((m) => m.text), ['to both tabs', 'from the second tab', 'after the first tab closed']);
      assert.deepEqual(seen.map((m) => m.seq), [1, 2, 3]);
      assert.deepEqual(kim.errors, []);
    }));
});
