// Hostile traffic, guest names per address (issue 12, point 4): a guest
// names itself, so before --max-guests-per-addr one address could use a new
// name on every request (500 a second at the default rates). Each new name
// bought a fresh pair of rate buckets (capped in sum by the address's
// bucket, --guest-addr-factor) and a fresh entry of the rate table that
// every client shares: rotating names makes the table forget other clients'
// buckets. Now the names new to the table at one address are --max-guests-
// per-addr a minute (burst as many): past it 429, while the address's
// known names and every other address are still served.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uniqueRoom } from './lib.mjs';
import { sanitizerReports, startWorker } from './lp_lib.mjs';

const A = '192.0.2.90';
const B = '198.51.100.90';

async function stopClean(w) {
  const e = await w.stop();
  assert.equal(e.code, 0, w.log());
  assert.deepEqual(sanitizerReports(w.log()), []);
}

// n polls (timeout=0) from addr, each with a new name prefix+i; statuses
async function newNames(w, room, addr, prefix, n) {
  const out = [];
  for (let i = 0; i < n; i += 25) {
    const batch = await Promise.all(Array.from({ length: Math.min(25, n - i) }, (_, k) =>
      w.request(`poll?rooms=${room}:0&name=${prefix}${i + k}&timeout=0`, { params: { REMOTE_ADDR: addr } })));
    out.push(...batch);
  }
  return out;
}

test('one address with a new guest name per request: past --max-guests-per-addr 429; its known names and another address are served', async () => {
  const w = await startWorker(['--max-guests-per-addr', '20']);
  try {
    const room = uniqueRoom('guests');
    const t0 = Date.now();
    const flood = await newNames(w, room, A, 'flood', 200);
    const secs = (Date.now() - t0) / 1000;
    const served = flood.filter((r) => r.status === 200).length;
    const refused = flood.filter((r) => r.status === 429);
    console.log(`200 new guest names from one address in ${secs.toFixed(2)} s: ${served} served, ${refused.length} refused`);
    // 20 at once, and 20 a minute after that
    assert.ok(served >= 20 && served <= 20 + Math.ceil(secs / 3), `${served} served in ${secs} s`);
    assert.equal(served + refused.length, 200);
    assert.equal(refused[0].json.code, 'rate_limited');
    assert.match(refused[0].json.message, /guest names from your address/);
    // a send and typing under a new name are refused the same way
    const send = await w.request('send', { body: { room, text: 'x', cid: 'n1', name: 'fresh' }, params: { REMOTE_ADDR: A } });
    assert.equal(send.status, 429, send.text);
    const typing = await w.request('typing', { body: { room, name: 'fresh2' }, params: { REMOTE_ADDR: A } });
    assert.equal(typing.status, 429, typing.text);
    // the names the address already uses go on: a guest behind it keeps talking
    const known = flood.findIndex((r) => r.status === 200);
    const mine = await w.request('send', { body: { room, text: 'still me', cid: 'k1', name: `flood${known}` }, params: { REMOTE_ADDR: A } });
    assert.equal(mine.status, 200, mine.text);
    // the victim at another address, with a name of its own, and new names there
    const victim = await w.request(`poll?rooms=${room}&name=victim&timeout=0`, { params: { REMOTE_ADDR: B } });
    assert.equal(victim.status, 200, victim.text);
    assert.ok(victim.json.events.some((e) => e.op === 'msg' && e.text === 'still me'));
    const others = await newNames(w, room, B, 'other', 19); // with victim: B's 20
    assert.deepEqual([...new Set(others.map((r) => r.status))], [200]);
    // IPv6: new addresses of one /64 are one address; the next /64 is another
    const six = await Promise.all(Array.from({ length: 30 }, (_, i) =>
      w.request(`poll?rooms=${room}:0&name=six${i}&timeout=0`, { params: { REMOTE_ADDR: `2001:db8:90:1:${i.toString(16)}::1` } })));
    const sixServed = six.filter((r) => r.status === 200).length;
    assert.ok(sixServed >= 20 && sixServed < 30, `${sixServed} of 30 served in one /64`);
    const next64 = await w.request(`poll?rooms=${room}:0&name=six99&timeout=0`, { params: { REMOTE_ADDR: '2001:db8:90:2::1' } });
    assert.equal(next64.status, 200);
  } finally {
    await stopClean(w);
  }
});

test('the default is 100 new guest names a minute per address', async () => {
  const w = await startWorker([]);
  try {
    const room = uniqueRoom('guests');
    const t0 = Date.now();
    const r = await newNames(w, room, A, 'd', 130);
    const secs = (Date.now() - t0) / 1000;
    const served = r.filter((x) => x.status === 200).length;
    assert.ok(served >= 100 && served <= 100 + Math.ceil(secs * 100 / 60), `${served} of 130 served in ${secs} s`);
    assert.equal((await w.request(`poll?rooms=${room}:0&name=d0&timeout=0`, { params: { REMOTE_ADDR: B } })).status, 200);
  } finally {
    await stopClean(w);
  }
});

test('name rotation no longer makes the rate table forget another address\'s buckets', async () => {
  // a table of 64 entries (8 sets of 8); one send per 10 s, burst 1. B's
  // sender spends its send; A then polls with 300 new names. With the bound
  // off, A's names fill every set and B's spent bucket is forgotten: B may
  // send again at once (its limit failed open). With it, A brings 5 names
  // and B's bucket is still spent.
  const run = async (guests) => {
    const w = await startWorker(['--rate-table', '64', '--send-rate', '0.1', '--send-burst', '1',
      '--max-guests-per-addr', String(guests)]);
    try {
      const room = uniqueRoom('forget');
      const sendB = (cid) => w.request('send', { body: { room, text: cid, cid, name: 'spammer' }, params: { REMOTE_ADDR: B } });
      assert.equal((await sendB('b1')).status, 200);
      assert.equal((await sendB('b2')).status, 429);
      const flood = await newNames(w, room, A, 'rot', 300);
      const served = flood.filter((r) => r.status === 200).length;
      return { served, again: (await sendB('b3')).status };
    } finally {
      await stopClean(w);
    }
  };
  const off = await run(0);
  const on = await run(5);
  console.log(`300 new names from A: bound off ${off.served} served, B's next send ${off.again}; ` +
    `--max-guests-per-addr 5: ${on.served} served, B's next send ${on.again}`);
  assert.equal(off.served, 300);
  assert.equal(off.again, 200, 'without the bound the churn forgets B (the reason for it)');
  assert.ok(on.served >= 5 && on.served < 10, `${on.served} served`); // 5, and 5 a minute
  assert.equal(on.again, 429, 'B\'s spent bucket is remembered');
});
