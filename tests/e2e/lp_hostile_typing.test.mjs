// Hostile traffic, typing amplification (issue 12, point 2): one address
// sends typing with a new guest name on every request (POST /chat/typing)
// or on every WebSocket connection. The throttle keys guests by the
// address nginx gives as well as the name (core/chat_typing.h): the room's
// members receive at most CHAT_TYPING_PER_ADDR (2) events a second from
// that address per process, not one per request, while a victim's own
// typing (a signed-in user at the same address, a guest at another
// address) still reaches them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { Client, http, portBase, uniqueRoom, withTimeout } from './lib.mjs';
import { Poller, sanitizerReports, startWorker } from './lp_lib.mjs';

const PER_ADDR = 2; // CHAT_TYPING_PER_ADDR
const AUTH = portBase(1);
const basic = (u) => ({ headers: { authorization: 'Basic ' + Buffer.from(`${u}:secret`).toString('base64') } });
const tag = `${process.pid % 1000}${Math.floor(Math.random() * 1000)}`;

async function watcher(room, name) {
  const c = await Client.connect(`name=${name}`);
  await c.op('hello');
  c.send({ op: 'join', room, ref: 'j' });
  await c.next((e) => e.op === 'joined' && e.room === room, 10000, 'joined');
  return c;
}

const typings = (c, pred) => c.events.filter((e) => e.op === 'typing' && pred(e.user));

// Requests flood for ms with `width` in flight, each with a new name.
async function floodHttp(room, ms, width = 16) {
  let n = 0;
  const until = Date.now() + ms;
  await Promise.all(Array.from({ length: width }, async () => {
    while (Date.now() < until) {
      const i = n++;
      await http('typing', { method: 'POST', body: { room, name: `at${tag}x${i}` } }).catch(() => {});
    }
  }));
  return n;
}

test('typing with a new guest name per request: watchers get a few a second, not one per request; victims still reach them', async () => {
  const room = uniqueRoom('typ');
  const ws = await Promise.all([1, 2, 3].map((i) => watcher(room, `w${tag}n${i}`)));
  const poller = new Poller([room], { name: `pw${tag}`, timeout: 5 }).start();
  // a guest at another address, through a worker of the test's own
  const other = await startWorker([]);
  try {
    await poller.waitFor((p) => p.polls > 0, 10000, 'first poll');
    const t0 = Date.now();
    const sent = await floodHttp(room, 4000);
    const secs = (Date.now() - t0) / 1000;
    // the victims type after the flood, still inside the attacker's next intervals
    const alice = await fetch(`${AUTH}typing`, {
      method: 'POST', headers: { 'content-type': 'application/json', ...basic('alice').headers },
      body: JSON.stringify({ room }),
    });
    assert.equal(alice.status, 204);
    const v = await other.request('typing', { body: { room, name: 'victim' }, params: { REMOTE_ADDR: '198.51.100.7' } });
    assert.equal(v.status, 204, v.text);
    for (const c of ws) {
      await c.next((e) => e.op === 'typing' && e.user === 'alice', 10000, 'alice typing');
      await c.next((e) => e.op === 'typing' && e.user === '~victim', 10000, 'victim typing');
    }
    await poller.waitFor((p) => p.events.some((e) => e.op === 'typing' && e.user === '~victim'), 10000, 'victim typing (poll)');
    const got = ws.map((c) => typings(c, (u) => u.startsWith(`~at${tag}x`)).length);
    const bound = PER_ADDR * (Math.ceil(secs) + 1);
    console.log(`typing flood: ${sent} requests in ${secs.toFixed(1)} s; each watcher received ${got.join(', ')} (bound ${bound})`);
    for (const g of got) assert.ok(g >= 1 && g <= bound, `a watcher received ${g} of ${sent} (bound ${bound})`);
    const polled = poller.events.filter((e) => e.op === 'typing' && e.user.startsWith(`~at${tag}x`)).length;
    assert.ok(polled <= bound, `the poller received ${polled}`);
  } finally {
    await poller.stop();
    for (const c of ws) c.close();
    const e = await other.stop();
    assert.equal(e.code, 0, other.log());
    assert.deepEqual(sanitizerReports(other.log()), []);
  }
});

test('IPv6: typing with a new name and a new address of one /64 per request is throttled as one address; the next /64 still types', async () => {
  const room = uniqueRoom('typ6');
  const w = await watcher(room, `w6${tag}`);
  const worker = await startWorker([]);
  try {
    const t0 = Date.now();
    let sent = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (Date.now() - t0 < 2000) {
        const i = ++sent;
        // an address of 2001:db8:6:1::/64 written as nginx would, new each time
        const addr = `2001:db8:6:1:${(i & 0xffff).toString(16)}:${(i >> 16).toString(16)}::${(i % 7) + 1}`;
        const r = await worker.request('typing', { body: { room, name: `a6${tag}x${i}` }, params: { REMOTE_ADDR: addr } });
        assert.ok(r.status === 204 || r.status === 429, r.text); // 429: the /64's rate bucket
      }
    }));
    const secs = (Date.now() - t0) / 1000;
    const v = await worker.request('typing', { body: { room, name: 'victim6' }, params: { REMOTE_ADDR: '2001:db8:6:2::1' } });
    assert.equal(v.status, 204, v.text);
    await w.next((e) => e.op === 'typing' && e.user === '~victim6', 10000, 'victim typing');
    const got = typings(w, (u) => u.startsWith(`~a6${tag}x`)).length;
    const bound = PER_ADDR * (Math.ceil(secs) + 1);
    console.log(`IPv6 typing flood: ${sent} requests from one /64 in ${secs.toFixed(1)} s; the watcher received ${got} (bound ${bound})`);
    assert.ok(got >= 1 && got <= bound, `the watcher received ${got} of ${sent} (bound ${bound})`);
  } finally {
    w.close();
    const e = await worker.stop();
    assert.equal(e.code, 0, worker.log());
    assert.deepEqual(sanitizerReports(worker.log()), []);
  }
});

test('typing from many WebSocket guests of one address: throttled by address too', async () => {
  const room = uniqueRoom('typw');
  const w = await watcher(room, `ww${tag}`);
  const attackers = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const c = await Client.connect(`name=aw${tag}x${i}`);
    await c.op('hello');
    return c;
  }));
  try {
    const t0 = Date.now();
    let sent = 0;
    while (Date.now() - t0 < 3000) {
      for (const c of attackers) { c.send({ op: 'typing', room }); sent++; }
      await new Promise((r) => setTimeout(r, 20)); // pacing of the attack, not a synchronization
    }
    const secs = (Date.now() - t0) / 1000;
    // a signed-in victim at the same address still gets through
    const alice = await Client.connect('', basic('alice'), portBase(1, 'ws'));
    await alice.op('hello');
    alice.send({ op: 'typing', room });
    await w.next((e) => e.op === 'typing' && e.user === 'alice', 10000, 'alice typing');
    alice.close();
    const got = typings(w, (u) => u.startsWith(`~aw${tag}x`)).length;
    // one throttle per chat-ws worker process: the stack runs nproc of them
    const bound = PER_ADDR * (Math.ceil(secs) + 1) * os.availableParallelism();
    console.log(`WebSocket typing flood: ${sent} frames from 20 guests in ${secs.toFixed(1)} s; the watcher received ${got} (bound ${bound})`);
    assert.ok(got >= 1 && got <= bound, `watcher received ${got} of ${sent}`);
  } finally {
    w.close();
    for (const c of attackers) c.close();
  }
});
