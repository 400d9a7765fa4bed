// Hostile traffic, per-address bounds of the long-poll side (issue 12,
// point 4): one address fills its quota of parked polls and of presence
// entries (chat-fcgi --max-parked-per-addr, --max-presence-per-addr), and
// nginx's limit_conn zone (conf/chat-limits.conf) caps its connections;
// a victim at another address is still served, parked and shown online.
// Addresses: REMOTE_ADDR straight to a worker of the test's own, and the
// X-Test-Addr header that the server at PORT + 9 of tests/nginx.test.conf
// takes as the client's address (realip).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pgClient, portBase, uniqueRoom } from './lib.mjs';
import { pollOnce, sanitizerReports, startWorker, waitUntil } from './lp_lib.mjs';

const LIMITED = portBase(9);
const A = '192.0.2.50';
const B = '198.51.100.9';

async function stopClean(w) {
  const e = await w.stop();
  assert.equal(e.code, 0, w.log());
  assert.deepEqual(sanitizerReports(w.log()), []);
}

test('one address fills its parked polls and streams: its next one gets 503, another address is still served', async () => {
  const w = await startWorker(['--max-parked', '20', '--max-parked-per-addr', '3']);
  const ctl = new AbortController();
  try {
    const room = uniqueRoom('addr');
    // streams stay parked whatever happens in the room (a poll is answered by
    // its own presence event, issue 12 point 12)
    const stream = (name, addr, signal = ctl.signal) => w.request(`events?rooms=${room}:0&name=${name}`,
      { params: { REMOTE_ADDR: addr, HTTP_ACCEPT: 'text/event-stream' }, signal }).catch(() => null);
    [0, 1, 2].map((i) => stream(`a${i}`, A));
    await waitUntil(async () => (await w.health()).parked === 3, 10000, 'three parked');
    const refused = await w.request(`poll?rooms=${room}:0&name=a3&timeout=20`, { params: { REMOTE_ADDR: A } });
    assert.equal(refused.status, 503, refused.text);
    assert.equal(refused.json.code, 'unavailable');
    assert.match(refused.json.message, /your address/);
    const refusedStream = await w.request(`events?rooms=${room}:0&name=a4`,
      { params: { REMOTE_ADDR: A, HTTP_ACCEPT: 'text/event-stream' } });
    assert.equal(refusedStream.status, 503, refusedStream.text);
    // IPv6: one /64 is one address
    [1, 2, 3].map((i) => stream(`s${i}`, `2001:db8:1:2::${i}`));
    await waitUntil(async () => (await w.health()).parked === 6, 10000, 'six parked');
    const v6 = await w.request(`poll?rooms=${room}:0&name=s4&timeout=20`, { params: { REMOTE_ADDR: '2001:db8:1:2:ffff::9' } });
    assert.equal(v6.status, 503);
    // the victim at another address: parked, then served
    const victim = w.request(`poll?rooms=${room}:0&name=victim&timeout=20`, { params: { REMOTE_ADDR: B } });
    await waitUntil(async () => (await w.health()).parked === 7, 10000, 'the victim parked');
    const sent = await w.request('send', { body: { room, text: 'hi', cid: 'v1', name: 'sender' }, params: { REMOTE_ADDR: B } });
    assert.equal(sent.status, 200, sent.text);
    assert.equal((await victim).status, 200);
    // once A's streams are gone, A may park its three again, and no more:
    // every release gave back exactly what it took
    ctl.abort();
    await waitUntil(async () => (await w.health()).parked === 0, 10000, 'none parked');
    const ctl2 = new AbortController();
    [5, 6, 7].map((i) => stream(`a${i}`, A, ctl2.signal));
    await waitUntil(async () => (await w.health()).parked === 3, 10000, 'A parks three again');
    const fourth = await w.request(`poll?rooms=${room}:1&name=a8&timeout=20`, { params: { REMOTE_ADDR: A } });
    assert.equal(fourth.status, 503, fourth.text);
    assert.match(fourth.json.message, /your address/);
    ctl2.abort();
    await waitUntil(async () => (await w.health()).parked === 0, 10000, 'none parked at the end');
  } finally {
    ctl.abort();
    await stopClean(w);
  }
});

test('one address with a new guest name per poll fills its presence quota; a victim at another address is online', async () => {
  const w = await startWorker(['--max-presence-per-addr', '4']);
  const db = await pgClient();
  await db.connect();
  try {
    const room = uniqueRoom('addr');
    for (let i = 0; i < 30; i++) {
      const r = await w.request(`poll?rooms=${room}&name=flood${i}&timeout=0`, { params: { REMOTE_ADDR: A } });
      assert.equal(r.status, 200, r.text);
    }
    const v = await w.request(`poll?rooms=${room}&name=victim&timeout=0`, { params: { REMOTE_ADDR: B } });
    assert.equal(v.status, 200);
    const online = async () => (await db.query('SELECT member FROM presence WHERE room = $1', [room])).rows.map((x) => x.member);
    await waitUntil(async () => (await online()).includes('~victim'), 15000, 'the victim online');
    const flood = (await online()).filter((m) => m.startsWith('~flood'));
    console.log(`30 polls with new names from one address: ${flood.length} online (bound 4); victim online`);
    assert.equal(flood.length, 4);
    // the first four go on being refreshed by their polls
    const again = await w.request(`poll?rooms=${room}&name=flood0&timeout=0`, { params: { REMOTE_ADDR: A } });
    assert.equal(again.status, 200);
  } finally {
    await db.end();
    await stopClean(w);
  }
});

test('nginx limit_conn (chat-limits.conf): an address past its connections gets 503; another address is served', async () => {
  const room = uniqueRoom('addr');
  const ctl = new AbortController();
  const open = (name, addr) => fetch(`${LIMITED}events?rooms=${room}&name=${name}`,
    { headers: { 'x-test-addr': addr, accept: 'text/event-stream' }, signal: ctl.signal });
  try {
    const held = await Promise.all(Array.from({ length: 5 }, (_, i) => open(`c${i}`, A)));
    for (const r of held) assert.equal(r.status, 200);
    const sixth = await open('c5', A);
    assert.equal(sixth.status, 503, 'nginx refuses the sixth connection of A');
    const victim = await pollOnce(`rooms=${room}&name=victim&timeout=0`, { base: LIMITED, headers: { 'x-test-addr': B } });
    assert.equal(victim.status, 200, victim.text);
  } finally {
    ctl.abort();
  }
});
