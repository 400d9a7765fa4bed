// Limits and failures of the WebSocket daemon: each bound crossed, the
// database going away mid-chat, slow consumers, heartbeats, shutdown.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Client, uniqueRoom, stack, waitUntil, withTimeout } from './lib.mjs';
import { Raw } from './ws_raw.mjs';
import { startDaemon } from './daemon.mjs';

// One try to connect: the Raw connection, or null when refused (503),
// after closing it. A refused connection left open would hold a slot of
// its own for a while (the daemon reads it to its end), and a client that
// retries at once with such ones open never finds a slot: the ws library
// keeps a refused socket open when 'unexpected-response' is handled.
async function tryConnect(d, name) {
  const r = await Raw.open({ path: d.path });
  const h = await r.handshake({ path: `/chat/ws?name=${name}` });
  if (h.status === 101) return r;
  assert.equal(h.status, 503);
  await r.readToEnd();
  r.end();
  return null;
}

async function direct(d, name) {
  const c = await Client.connect('', {}, `${d.url}?name=${name}`);
  await c.op('hello');
  return c;
}

describe('bounds of one daemon', () => {
  test('past --max-conns: 503 before the upgrade, and room again once one leaves', async () => {
    const d = await startDaemon(['--max-conns', '3']);
    const cs = [await direct(d, 'a'), await direct(d, 'b'), await direct(d, 'c')];
    const r = await Raw.open({ path: d.path });
    const h = await r.handshake();
    assert.equal(h.status, 503);
    assert.match(await r.readToEnd(), /unavailable/);
    cs[0].close();
    await cs[0].waitClose();
    // the slot is free once the daemon has read the end of that connection
    // (our side closes first): a client that retries on 503, letting each
    // refused connection go before the next, gets in
    const c4 = await waitUntil(() => tryConnect(d, 'd'), 10000, 'a free slot');
    assert.equal(JSON.parse((await c4.frame()).payload).op, 'hello');
    c4.end();
    cs.slice(1).forEach((c) => c.close());
    await d.stop();
  });

  test('a half-open handshake is dropped at the deadline; real clients are served meanwhile', async () => {
    const d = await startDaemon(['--handshake-timeout', '500']);
    const slow = await Raw.open({ path: d.path });
    slow.write('GET /chat/ws HTTP/1.1\r\nHost: x\r\n'); // never finishes
    const c = await direct(d, 'real');
    c.send({ op: 'ping', ref: 1 });
    assert.equal((await c.op('pong')).ref, 1);
    const t0 = Date.now();
    await slow.readToEnd(5000);
    assert.ok(slow.ended);
    assert.ok(Date.now() - t0 < 3000);
    c.close();
    await d.stop();
  });

  test('heartbeat: a peer that never answers pings is closed after 2 missed pongs', async () => {
    const d = await startDaemon(['--heartbeat', '1']);
    const r = await Raw.open({ path: d.path });
    assert.equal((await r.handshake({ path: '/chat/ws?name=deaf' })).status, 101);
    const hello = JSON.parse((await r.frame()).payload);
    assert.equal(hello.heartbeat, 1);
    let pings = 0, f;
    while ((f = await r.frame(6000)) && f.opcode === 0x9) pings++;
    assert.equal(pings, 2);
    assert.equal(f.opcode, 0x8);
    assert.equal(f.payload.readUInt16BE(0), 1001);
    // a peer that answers (the ws library does) stays through 4 pings
    const ok = await direct(d, 'alive');
    let seen = 0;
    await withTimeout(new Promise((res) => ok.ws.on('ping', () => { if (++seen === 4) res(); })),
      10000, '4 pings');
    assert.equal(ok.closed, null);
    ok.close();
    await d.stop();
  });

  test('a slow consumer is closed with 1008; the others get everything', async () => {
    const d = await startDaemon(['--outbox', '65536']);
    const room = uniqueRoom('slow');
    const slow = await Raw.open({ path: d.path });
    assert.equal((await slow.handshake({ path: '/chat/ws?name=slow' })).status, 101);
    slow.text(JSON.stringify({ op: 'join', room }));
    while (JSON.parse((await slow.data()).payload).op !== 'joined');
    slow.sock.pause(); // stops reading: the kernel buffers fill, then the outbox
    const fast = await direct(d, 'fast');
    fast.send({ op: 'join', room });
    await fast.op('joined');
    const sender = await direct(d, 'sender');
    const text = 'y'.repeat(3000);
    let n = 0;
    // until the daemon gives up on the slow one (bounded: 4000 x 3 KB)
    for (; n < 4000 && !/slow consumer/.test(d.log()); n++) {
      sender.send({ op: 'send', room, text, cid: `s${n}` });
      const e = await sender.next((x) => x.op === 'ack' || x.op === 'error', 10000, 'ack');
      if (e.op === 'error') { assert.equal(e.code, 'rate_limited'); n--; await new Promise((r) => setTimeout(r, 100)); }
    }
    assert.match(d.log(), /slow consumer/);
    for (let i = 1; i <= n; i++) assert.equal((await fast.next((e) => e.op === 'msg', 10000)).seq, i);
    slow.sock.resume();
    let f;
    while ((f = await slow.frame(10000)) && f.opcode !== 0x8);
    assert.ok(f, 'a close frame arrives');
    assert.equal(f.payload.readUInt16BE(0), 1008);
    fast.close(); sender.close();
    await d.stop();
  });

  test('SIGHUP reopens the log file, so logrotate can move it', async () => {
    const { VAR } = await import('./lib.mjs');
    const fs = await import('node:fs/promises');
    const file = `${VAR}/log/test-hup-${process.pid}.log`;
    const d = await startDaemon(['--log', file]);
    await direct(d, 'before').then((c) => c.close());
    await fs.rename(file, `${file}.1`);
    process.kill(d.pid, 'SIGHUP');
    // the daemon says so in the new file
    await withTimeout((async () => {
      for (;;) {
        const text = await fs.readFile(file, 'utf8').catch(() => '');
        if (text.includes('log reopened')) return;
        await new Promise((r) => setTimeout(r, 50));
      }
    })(), 5000, 'a new log file');
    const old = await fs.readFile(`${file}.1`, 'utf8');
    assert.match(old, /serving/);
    await d.stop();
    await fs.rm(file, { force: true });
    await fs.rm(`${file}.1`, { force: true });
  });

  test('SIGTERM: clients are closed with 1001 and the daemon exits', async () => {
    const d = await startDaemon([]);
    const c = await direct(d, 'bye');
    const t0 = Date.now();
    const exit = await d.stop();
    const closed = await c.waitClose();
    assert.equal(closed.code, 1001);
    assert.equal(exit.code, 0);
    assert.ok(Date.now() - t0 < 5000);
  });
});

describe('the database goes away', () => {
  test('PostgreSQL stop/start mid-chat: connections stay, sends say unavailable, nothing acked is lost', async () => {
    const room = uniqueRoom('pg');
    const rx = await Client.connect('name=rx');
    await rx.op('hello');
    rx.send({ op: 'join', room });
    await rx.op('joined');
    const tx = await Client.connect('name=tx');
    await tx.op('hello');
    const acked = new Map();
    let unavailable = 0;
    async function sendUntilAcked(i) {
      for (;;) {
        tx.send({ op: 'send', room, text: `m${i}`, cid: `m${i}`, ref: i });
        const e = await tx.next((x) => x.ref === i, 30000, `reply ${i}`);
        if (e.op === 'ack') { acked.set(i, e.seq); return; }
        assert.ok(['unavailable', 'rate_limited'].includes(e.code), e.code);
        if (e.code === 'unavailable') unavailable++;
        await new Promise((r) => setTimeout(r, 200)); // client retry backoff
      }
    }
    for (let i = 0; i < 5; i++) await sendUntilAcked(i);
    await stack('pg-stop');
    // while it is down: the send is refused, the connection stays
    tx.send({ op: 'send', room, text: 'during', cid: 'during', ref: 'during' });
    const e = await tx.next((x) => x.ref === 'during', 10000);
    assert.equal(e.code, 'unavailable');
    assert.equal(rx.closed, null);
    await stack('pg-start');
    for (let i = 5; i < 15; i++) await sendUntilAcked(i);
    const seqs = [];
    while (seqs.length < acked.size) seqs.push((await rx.next((x) => x.op === 'msg', 30000, 'msg')).seq);
    assert.deepEqual(seqs, [...acked.values()].sort((a, b) => a - b));
    assert.deepEqual(seqs, Array.from({ length: 15 }, (_, i) => i + 1));
    assert.equal(rx.closed, null, 'the receiver stayed connected');
    rx.close(); tx.close();
  });
});
