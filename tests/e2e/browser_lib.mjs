// Helpers of the browser suites: Debian's chromium driven by playwright-core,
// headless, one browser context per user (own storage, own connections).
import { existsSync, mkdirSync } from 'node:fs';
import { BASE, ROOT } from './lib.mjs';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
export const SKIP = HAVE_CHROMIUM ? false : `${CHROMIUM} is missing (make deps installs Debian's chromium)`;
export const ARTIFACTS = `${ROOT}/tests/artifacts`;
export const WAIT = 20000; // ms: the longest any page state may take to show

export async function launch() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// A person at the chat: their own browser context (storage, cookies and
// connections of their own). Page errors are collected so a test can assert
// that nothing went wrong (and that no injected script ran).
// base: the chat's URL on another test server (portBase(n)); BASE by default.
// noWebSocket: a browser without WebSocket, and without EventSource too
// (long-poll) unless sse is set (then it chats over Server-Sent Events).
export async function openUser(browser, name, { room = 'lobby', noWebSocket = false, sse = false, viewport, base = BASE } = {}) {
  const context = await browser.newContext({ viewport: viewport || { width: 1180, height: 780 } });
  if (noWebSocket) {
    await context.addInitScript(() => { delete window.WebSocket; });
  }
  if (noWebSocket && !sse) {
    await context.addInitScript(() => { delete window.EventSource; });
  }
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  page.on('dialog', (d) => { errors.push(`dialog: ${d.message()}`); d.dismiss().catch(() => {}); });
  await page.goto(`${base}#${room}`);
  await page.locator('#login-name').fill(name);
  await page.locator('#login-form button[type=submit]').click();
  await waitConnected(page);
  await page.waitForFunction(() => document.querySelector('#log .log-top .loading') === null,
    null, { timeout: WAIT });
  return { context, page, errors, name, user: `~${name}` };
}

export async function waitConnected(page, transport) {
  await page.waitForFunction((t) => {
    const c = document.getElementById('conn');
    return c.dataset.state === 'connected' && (!t || c.dataset.transport === t);
  }, transport, { timeout: WAIT });
}

export async function connState(page) {
  return page.evaluate(() => ({ ...document.getElementById('conn').dataset,
    text: document.getElementById('conn-text').textContent }));
}

// Types a message the way a person does: into the box, then Enter.
export async function say(page, text) {
  const box = page.locator('#input');
  await box.fill(text);
  await box.press('Enter');
}

// The confirmed messages of the room on screen, in order.
export async function shown(page) {
  return page.evaluate(() => [...document.querySelectorAll('#log ol.messages:not(.outbox) li.msg')]
    .map((li) => ({ seq: Number(li.dataset.seq), user: li.dataset.user,
      text: li.querySelector('.text').textContent, state: li.dataset.state || '' })));
}

// Waits until a message with this text is on screen (sent, not pending).
export async function waitText(page, text, timeout = WAIT) {
  await page.waitForFunction((t) => [...document.querySelectorAll('#log ol.messages:not(.outbox) li.msg .text')]
    .some((el) => el.textContent === t), text, { timeout });
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}/${name}.png` });
}

// Runs one test's scene: the pages it opens (pushed into `pages`) are
// screenshot into tests/artifacts/ when it fails, and closed either way.
export async function scene(name, fn) {
  const pages = [];
  try {
    await fn(pages);
  } catch (err) {
    for (const [i, p] of pages.entries()) await screenshot(p, `FAILED-${name}-${i}`).catch(() => {});
    throw err;
  } finally {
    for (const p of pages) await p.context().close().catch(() => {});
  }
}

// Posts `n` messages "line 1".."line n" to a room in order, through the
// WebSocket door, a few per connection (sends are rate limited per connection).
export async function seed(room, n, text = (i) => `line ${i}`) {
  const { Client } = await import('./lib.mjs');
  for (let from = 1; from <= n; from += 25) {
    const bot = await Client.connect(`name=seeder${from}`);
    const to = Math.min(n, from + 24);
    for (let i = from; i <= to; i++) bot.send({ op: 'send', room, text: text(i), cid: `seed-${i}`, ref: i });
    for (let i = from; i <= to; i++) {
      const ev = await bot.next((e) => e.op === 'ack' || e.op === 'error', 10000, 'seed ack');
      if (ev.op !== 'ack') throw new Error(`seeding failed: ${JSON.stringify(ev)}`);
    }
    bot.close();
  }
}
