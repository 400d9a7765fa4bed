// Hostile traffic, cross-site requests (issue 12, point 6): with alice's
// credentials cached in her browser, another site's page loads
// /chat/poll?rooms=X in an <img> (no Origin, Sec-Fetch-Site: cross-site,
// no X-Chat-Request header), opens /chat/events, posts with its own Origin,
// or shows the basic HTML page. None of it may make alice a member of X nor
// take from her rate bucket; her own client (which sends X-Chat-Request,
// and the site's Origin where the browser sends one) is still served.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { pgClient, portBase, uniqueRoom } from './lib.mjs';
import { waitUntil } from './lp_lib.mjs';

const AUTH = portBase(1);
const SITE = new URL(AUTH).origin;
const cred = (u) => ({ authorization: 'Basic ' + Buffer.from(`${u}:secret`).toString('base64') });
const IMG = { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'image' };
const OWN = { 'x-chat-request': '1', 'sec-fetch-site': 'same-origin' };
const OWN_AS = (u) => ({ ...cred(u), ...OWN });

// GET; a stream (GET events answered 200) is closed once its head is in.
async function get(path, headers) {
  const ctl = new AbortController();
  const r = await fetch(AUTH + path, { headers, signal: ctl.signal });
  if ((r.headers.get('content-type') || '').startsWith('text/event-stream')) {
    ctl.abort();
    return { status: r.status, text: '(a stream)', json: null };
  }
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, text, json };
}

async function online(db, room) {
  const r = await db.query('SELECT DISTINCT member FROM presence WHERE room = $1 ORDER BY 1', [room]);
  return r.rows.map((x) => x.member);
}

test('a cross-site <img> poll makes nobody a member and takes nothing from the bucket; her own polls still work', async () => {
  const db = await pgClient();
  await db.connect();
  try {
    const room = uniqueRoom('xs');
    // 150 <img> loads: more than the request burst (100) of her bucket
    const imgs = await Promise.all(Array.from({ length: 150 }, () =>
      get(`poll?rooms=${room}&timeout=0`, { ...cred('alice'), ...IMG })));
    for (const r of imgs) {
      assert.equal(r.status, 403, r.text);
      assert.equal(r.json.code, 'forbidden');
    }
    // a browser too old for Sec-Fetch-*: no header, no Origin: still refused
    const old = await get(`poll?rooms=${room}&timeout=0`, cred('alice'));
    assert.equal(old.status, 403, old.text);
    // a page of another origin that could send the header (it cannot without
    // a preflight nginx does not answer, but a foreign Origin alone is enough)
    const foreign = await get(`poll?rooms=${room}&timeout=0`,
      { ...cred('alice'), 'x-chat-request': '1', origin: 'http://evil.example' });
    assert.equal(foreign.status, 403, foreign.text);
    const scheme = await get(`poll?rooms=${room}&timeout=0`,
      { ...cred('alice'), 'x-chat-request': '1', origin: SITE.replace('http:', 'https:') });
    assert.equal(scheme.status, 403, 'another scheme is another origin');
    // DNS rebinding: a page of evil.example, a name pointed at this server,
    // sends a Host and an Origin that agree, but a name nginx was never given
    const port = new URL(AUTH).port;
    const rebound = await new Promise((resolve, reject) => {
      const req = http.request(`${AUTH}poll?rooms=${room}&timeout=0`, {
        headers: { ...cred('alice'), ...OWN, host: `evil.example:${port}`, origin: `http://evil.example:${port}` },
      }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
      req.on('error', reject);
      req.end();
    });
    assert.equal(rebound, 403, 'a Host nobody configured is not the site');
    // her own client: 10 polls in a row, every one served (the bucket is full)
    for (let i = 0; i < 10; i++) {
      const own = await get(`poll?rooms=${room}&timeout=0`, { ...cred('bob'), ...OWN, origin: SITE });
      assert.equal(own.status, 200, own.text);
    }
    for (let i = 0; i < 10; i++) {
      const own = await get(`poll?rooms=other-${room}&timeout=0`, { ...cred('alice'), ...OWN });
      assert.equal(own.status, 200, `alice's own poll ${i}: ${own.text}`);
    }
    // bob polled the room from his own page: he comes online there; alice never does
    await waitUntil(async () => (await online(db, room)).includes('bob'), 15000, 'bob online');
    assert.deepEqual(await online(db, room), ['bob']);
  } finally {
    await db.end();
  }
});

test('events, history and the POSTs refuse another site too; the site itself is served', async () => {
  const room = uniqueRoom('xs');
  const img = await get(`events?rooms=${room}`, { ...cred('alice'), ...IMG, accept: 'text/event-stream' });
  assert.equal(img.status, 403, img.text);
  const es = await get(`events?rooms=${room}`,
    { ...cred('alice'), accept: 'text/event-stream', origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' });
  assert.equal(es.status, 403, es.text);
  const mine = await get(`events?rooms=${room}`,
    { ...cred('alice'), accept: 'text/event-stream', 'sec-fetch-site': 'same-origin' });
  assert.equal(mine.status, 200);
  assert.equal((await get(`history?room=${room}`, { ...cred('alice'), ...IMG })).status, 403);
  assert.equal((await get(`history?room=${room}`, OWN_AS('alice'))).status, 200);
  // history, search and bans without X-Chat-Request, as an <img> or a link of
  // a browser that sends no Sec-Fetch-Site: refused, they read as alice
  for (const path of [`history?room=${room}`, `search?room=${room}&q=x`, 'bans']) {
    const noHeader = await get(path, cred('alice'));
    assert.equal(noHeader.status, 403, `${path}: ${noHeader.text}`);
    assert.match(noHeader.json.message, /X-Chat-Request/);
  }
  assert.equal((await get(`search?room=${room}&q=x`, OWN_AS('alice'))).status, 200);
  for (const path of ['send', 'typing']) {
    const body = JSON.stringify({ room, text: 'x', cid: 'c1' });
    const bad = await fetch(AUTH + path, {
      method: 'POST', body,
      headers: { ...cred('alice'), 'content-type': 'application/json', origin: 'http://evil.example' },
    });
    assert.equal(bad.status, 403, `${path} from another origin`);
    const ok = await fetch(AUTH + path, {
      method: 'POST', body, headers: { ...cred('alice'), 'content-type': 'application/json', origin: SITE },
    });
    assert.ok(ok.status === 200 || ok.status === 204, `${path} from the site: ${ok.status}`);
  }
});

test('the basic HTML page seen from another site does not make her online', async () => {
  const db = await pgClient();
  await db.connect();
  try {
    const room = uniqueRoom('xs');
    const cross = await get(`basic/room?r=${room}`, { ...cred('alice'), 'sec-fetch-site': 'cross-site', 'sec-fetch-dest': 'image' });
    assert.equal(cross.status, 200); // a page to read, as for anybody
    const own = await get(`basic/room?r=${room}`, { ...cred('bob'), 'sec-fetch-site': 'same-origin' });
    assert.equal(own.status, 200);
    await waitUntil(async () => (await online(db, room)).includes('bob'), 15000, 'bob online');
    assert.deepEqual(await online(db, room), ['bob']);
  } finally {
    await db.end();
  }
});
