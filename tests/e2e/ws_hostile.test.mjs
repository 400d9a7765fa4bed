// Hostile traffic against chat-ws (issue 12): each test reproduces an
// attack on a daemon of its own and shows a victim still served.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { BASE, Client, DATABASE_URL, pgClient, uniqueRoom } from './lib.mjs';
import { Raw } from './ws_raw.mjs';
import { startDaemon } from './daemon.mjs';

// A client straight on the daemon's socket, with the headers nginx would set.
async function direct(d, name, headers = {}) {
  const c = await Client.connect('', { headers }, `${d.url}?name=${name}`);
  await c.op('hello');
  return c;
}

// kB of a process from /proc/PID/status: VmRSS now, VmHWM its peak
function mem(pid, field) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  return Number(m[1]);
}

// Waits until cond() holds, polling on the event loop (deadline, no sleep).
async function until(cond, ms, what) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Fills room with n messages of size bytes; waits for every ack.
async function fill(c, room, n, size) {
  const text = 'h'.repeat(size);
  for (let i = 0; i < n; i += 20) {
    const batch = Math.min(20, n - i);
    for (let j = 0; j < batch; j++) c.send({ op: 'send', room, text, cid: `f${i + j}` });
    for (let j = 0; j < batch; j++) {
      const e = await c.next((x) => x.op === 'ack' || x.op === 'error', 10000, 'ack');
      assert.equal(e.op, 'ack', JSON.stringify(e));
    }
  }
}

describe('hostile traffic on chat-ws', () => {
  test('history requests never read: the daemon stops reading, memory stays bounded, the room goes on', async () => {
    const d = await startDaemon(['--send-rate', '1000', '--req-rate', '1000']);
    const big = { 'X-Chat-Max-Text': '8192' };
    const room = uniqueRoom('hist');
    const sender = await direct(d, 'filler', big);
    await fill(sender, room, 200, 8000);
    const victim = await direct(d, 'victim', big);
    victim.send({ op: 'join', room });
    await victim.op('joined');
    const before = mem(d.pid, 'VmRSS');

    // the attack: 100 pages of 200 x 8 KB asked in one write, never read
    const evil = await Raw.open({ path: d.path });
    assert.equal((await evil.handshake({ path: '/chat/ws?name=evil', extra: big })).status, 101);
    evil.sock.pause();
    const reqs = [];
    for (let i = 0; i < 100; i++) {
      reqs.push(Raw.frame(0x1, Buffer.from(JSON.stringify({ op: 'history', room, limit: 200, ref: i }))));
    }
    evil.write(Buffer.concat(reqs));
    await until(() => /stops reading/.test(d.log()), 20000, 'the daemon to stop reading the attacker');

    // the victim is served live, and its own history comes back (the
    // reader connection is FIFO: every page the attacker got is out by then)
    sender.send({ op: 'send', room, text: 'still here', cid: 'live' });
    assert.equal((await victim.next((e) => e.op === 'msg' && e.cid === 'live', 10000, 'live msg')).text, 'still here');
    victim.send({ op: 'history', room, limit: 10, ref: 'v' });
    assert.equal((await victim.next((e) => e.op === 'history', 10000, 'history')).messages.length, 10);
    const peak = mem(d.pid, 'VmHWM');
    // before the fix one such connection took a worker from 5 to 165 MiB
    // after: about 5 MiB (25 under ASan, whose quarantine keeps what was
    // freed); with no bound on requests at the database, 52 MiB and more
    assert.ok(peak - before < 40 * 1024, `worker peak RSS grew ${peak - before} kB (from ${before} kB)`);
    // a page is cut to half the outbox (64 of these, and the short one); the reader pages on
    // from the oldest it got, down to the first message
    let seen = 0, pages = 0, oldest = 0;
    for (;;) {
      victim.send({ op: 'history', room, limit: 200, ...(oldest ? { before: oldest } : {}) });
      const page = await victim.next((e) => e.op === 'history', 10000, 'a page');
      pages++;
      assert.ok(page.messages.length > 0 && page.messages.length <= 65, `${page.messages.length} messages`);
      seen += page.messages.filter((m) => m.seq <= 200).length;
      oldest = page.messages[0].seq;
      if (oldest === 1) break;
      assert.equal(page.horizon, undefined);
    }
    assert.equal(seen, 200);
    assert.ok(pages >= 4, `${pages} pages`);
    console.log(`history attack: RSS ${before} kB before, peak ${peak} kB (+${peak - before} kB)`);

    evil.end();
    sender.close();
    victim.close();
    await d.stop();
  });

  test('two workers: a full worker leaves new connections to the other, so both limits are usable', async () => {
    const N = 20;
    const d = await startDaemon(['--workers', '2', '--max-conns', String(N)]);
    await until(() => (d.log().match(/ready: listening, reading and writing/g) || []).length >= 2, 15000,
      'both workers ready');
    // one address opens nearly both workers' worth of connections
    const cs = [];
    for (let i = 0; i < 2 * N - 2; i++) cs.push(await direct(d, `many${i}`));
    // before, every one of them went to one worker: past N they got 503
    const victim = await direct(d, 'victim');
    victim.send({ op: 'ping', ref: 'v' });
    assert.equal((await victim.op('pong')).ref, 'v');
    // and past both limits: a clean 503
    const more = [await direct(d, 'last')];
    let refused = 0;
    for (let i = 0; i < 3; i++) {
      const r = await Raw.open({ path: d.path });
      const h = await r.handshake({ path: '/chat/ws?name=over' });
      if (h.status === 503) refused++;
      else more.push(r);
      r.end();
    }
    assert.equal(refused, 3, `${refused} of 3 refused past 2 x ${N}`);
    for (const c of [...cs, victim, ...more]) c.close?.();
    await d.stop();
  });

  test('Origin: another scheme and DNS rebinding are refused behind nginx; the real site still connects', async () => {
    const port = Number(new URL(BASE).port);
    const via = async (host, origin, extra = {}) => {
      const r = await Raw.open({ host: '127.0.0.1', port });
      const h = await r.handshake({ host, path: '/chat/ws?name=o', extra: { Origin: origin, ...extra } });
      let hello = null;
      if (h.status === 101) hello = JSON.parse((await r.data()).payload);
      r.end();
      return { status: h.status, hello };
    };
    const site = `127.0.0.1:${port}`;
    // another scheme on the same host and port: an https or foo page
    assert.equal((await via(site, `https://${site}`)).status, 403);
    assert.equal((await via(site, `foo://${site}`)).status, 403);
    // DNS rebinding: the attacker's name points at us; Host and Origin agree
    assert.equal((await via(`evil.example:${port}`, `http://evil.example:${port}`)).status, 403);
    assert.equal((await via('evil.example', 'http://evil.example')).status, 403);
    // a client cannot name the site itself: nginx sets these headers
    assert.equal((await via(`evil.example:${port}`, `http://evil.example:${port}`,
      { 'X-Chat-Server-Name': 'evil.example', 'X-Chat-Server-Addr': 'evil.example', 'X-Chat-Origins': `http://evil.example:${port}` })).status, 403);
    // the victim: the real page, by address and by server_name
    const real = await via(site, `http://${site}`);
    assert.equal(real.status, 101);
    assert.equal(real.hello.op, 'hello');
    assert.equal((await via(`localhost:${port}`, `http://localhost:${port}`)).status, 101);
    // no Origin (not a browser): as before
    const r = await Raw.open({ host: '127.0.0.1', port });
    assert.equal((await r.handshake({ host: 'evil.example', path: '/chat/ws?name=o' })).status, 101);
    r.end();
  });

  test('Origin: server_name wildcards, $chat_scheme and the server address, as nginx sends them', async () => {
    const d = await startDaemon([]);
    const check = async (host, origin, site) => {
      const r = await Raw.open({ path: d.path });
      const h = await r.handshake({ host, path: '/chat/ws?name=o', extra: { Origin: origin, ...site } });
      r.end();
      return h.status;
    };
    const wild = { 'X-Chat-Scheme': 'https', 'X-Chat-Server-Name': '*.example.org', 'X-Chat-Server-Addr': '192.0.2.1' };
    assert.equal(await check('chat.example.org', 'https://chat.example.org', wild), 101);
    assert.equal(await check('example.org', 'https://example.org', wild), 403); // *. is below only
    assert.equal(await check('chat.example.org', 'http://chat.example.org', wild), 403);
    assert.equal(await check('evilexample.org', 'https://evilexample.org', wild), 403);
    const dot = { ...wild, 'X-Chat-Server-Name': '.example.org' };
    assert.equal(await check('example.org', 'https://example.org', dot), 101);
    assert.equal(await check('a.b.example.org', 'https://a.b.example.org:443', dot), 101);
    assert.equal(await check('192.0.2.1', 'https://192.0.2.1', wild), 101);
    assert.equal(await check('[2001:db8::1]:8443', 'https://[2001:db8::1]:8443', { ...wild, 'X-Chat-Server-Addr': '2001:db8::1' }), 101);
    const catchAll = { 'X-Chat-Scheme': 'http', 'X-Chat-Server-Name': '_', 'X-Chat-Server-Addr': '192.0.2.1' };
    assert.equal(await check('chat.example.org', 'http://chat.example.org', catchAll), 403);
    assert.equal(await check('chat.example.org', 'http://chat.example.org',
      { ...catchAll, 'X-Chat-Origins': 'http://chat.example.org' }), 101);
    await d.stop();
  });

  test('one address fills its connection quota (--max-conns-per-addr); another address is still served', async () => {
    const d = await startDaemon(['--max-conns-per-addr', '5', '--max-conns', '50']);
    const evilAddr = (i) => ({ 'X-Chat-Addr': '192.0.2.66', 'X-Forwarded-For': `10.0.0.${i}` });
    const mine = [];
    for (let i = 0; i < 5; i++) mine.push(await direct(d, `evil${i}`, evilAddr(i)));
    // its own X-Forwarded-For changes nothing: the address is nginx's
    for (let i = 5; i < 8; i++) {
      await assert.rejects(direct(d, `evil${i}`, evilAddr(i)), /HTTP 429/);
    }
    const victim = await direct(d, 'victim', { 'X-Chat-Addr': '198.51.100.7' });
    victim.send({ op: 'ping', ref: 'v' });
    assert.equal((await victim.op('pong')).ref, 'v');
    // a slot of the address comes back once one of its connections is gone
    mine[0].close();
    await mine[0].waitClose();
    await until(async () => {
      try { mine[0] = await direct(d, 'evil-again', evilAddr(9)); return true; } catch (e) {
        if (!/429/.test(e.message)) throw e;
        return false;
      }
    }, 5000, 'a freed slot');
    for (const c of [...mine, victim]) c.close();
    await d.stop();
    // the default: a quarter of --max-conns
    const d2 = await startDaemon(['--max-conns', '8']);
    const two = [await direct(d2, 'q0', evilAddr(0)), await direct(d2, 'q1', evilAddr(1))];
    await assert.rejects(direct(d2, 'q2', evilAddr(2)), /HTTP 429/);
    const other = await direct(d2, 'other', { 'X-Chat-Addr': '198.51.100.7' });
    for (const c of [...two, other]) c.close();
    await d2.stop();
  });

  test('IPv6: the addresses of one /64 share the connection quota; the next /64 is served', async () => {
    const d = await startDaemon(['--max-conns-per-addr', '3', '--max-conns', '50']);
    const v6 = (i) => ({ 'X-Chat-Addr': `2001:db8:5:1:${i.toString(16)}::${(i + 1).toString(16)}` });
    const mine = [];
    for (let i = 0; i < 3; i++) mine.push(await direct(d, `six${i}`, v6(i)));
    for (let i = 3; i < 6; i++) await assert.rejects(direct(d, `six${i}`, v6(i)), /HTTP 429/);
    // an IPv4 client written as ::ffff:a.b.c.d is that IPv4 client
    const v4 = [await direct(d, 'm0', { 'X-Chat-Addr': '192.0.2.70' }), await direct(d, 'm1', { 'X-Chat-Addr': '::ffff:192.0.2.70' }),
      await direct(d, 'm2', { 'X-Chat-Addr': '192.0.2.70' })];
    await assert.rejects(direct(d, 'm3', { 'X-Chat-Addr': '::ffff:c000:246' }), /HTTP 429/);
    const victim = await direct(d, 'victim6', { 'X-Chat-Addr': '2001:db8:5:2::1' });
    victim.send({ op: 'ping', ref: 'v6' });
    assert.equal((await victim.op('pong')).ref, 'v6');
    // a slot comes back to the /64 when any of its connections goes
    mine[1].close();
    await mine[1].waitClose();
    await until(async () => {
      try { mine[1] = await direct(d, 'six-again', v6(40)); return true; } catch (e) {
        if (!/429/.test(e.message)) throw e;
        return false;
      }
    }, 5000, 'a freed slot of the /64');
    for (const c of [...mine, ...v4, victim]) c.close();
    await d.stop();
  });

  test('a large Cookie and many headers that nginx lets through reach the WebSocket', async () => {
    const port = Number(new URL(BASE).port);
    const extra = { Origin: `http://127.0.0.1:${port}`, Cookie: `session=${'c'.repeat(7900)}` };
    for (let i = 0; i < 60; i++) extra[`X-Extra-${i}`] = `v${i}`;
    extra['X-Big-1'] = 'b'.repeat(7000);
    extra['X-Big-2'] = 'b'.repeat(7000);
    const r = await Raw.open({ host: '127.0.0.1', port });
    const h = await r.handshake({ host: `127.0.0.1:${port}`, path: '/chat/ws?name=cookie', extra });
    // before: 431 from chat-ws (8 KiB, 64 fields), a silent fall back to long-poll
    assert.equal(h.status, 101);
    assert.equal(JSON.parse((await r.data()).payload).op, 'hello');
    r.end();
    // past what nginx takes, nginx itself answers, for every location alike
    const r2 = await Raw.open({ host: '127.0.0.1', port });
    const h2 = await r2.handshake({ host: `127.0.0.1:${port}`, path: '/chat/ws?name=cookie',
      extra: { ...extra, 'X-Big-3': 'b'.repeat(7000), 'X-Big-4': 'b'.repeat(7000) } });
    assert.equal(h2.status, 400);
    r2.end();
  });

  test('a message over --max-message: the client sees 1009 (lingering close, no reset), in chat and echo mode', async () => {
    // 262144 is also the chat default: echo mode used to put 16 MiB in its place
    for (const [max, mode] of [['4096', []], ['4096', ['--echo']], ['262144', ['--echo']]]) {
      const d = await startDaemon(['--max-message', max, ...mode]);
      for (let i = 0; i < 5; i++) {
        const c = await Client.connect('', {}, `${d.url}?name=big${i}`);
        c.ws.on('error', () => {});
        c.ws.send('x'.repeat(4 * 1024 * 1024)); // still being sent when the daemon gives up
        const closed = await c.waitClose(10000);
        assert.equal(closed.code, 1009, `${mode.join(' ') || 'chat'} run ${i}: ${JSON.stringify(closed)}`);
      }
      // the victim: a message within the bound is served (echoed, or answered)
      const v = await Client.connect('', {}, `${d.url}?name=victim`);
      if (mode.length) {
        v.ws.send(JSON.stringify({ op: 'e', t: 'y'.repeat(3000) }));
        assert.equal((await v.next(() => true, 5000, 'echo')).t.length, 3000);
      } else {
        await v.op('hello');
        v.send({ op: 'ping', ref: 'v', pad: 'y'.repeat(3000) });
        const e = await v.next((x) => x.ref === 'v', 5000, 'an answer');
        assert.ok(e.op === 'pong' || e.op === 'error', JSON.stringify(e));
        assert.equal(v.closed, null);
      }
      v.close();
      await d.stop();
    }
  });

  test('a fragmented message held half-sent is closed at --message-timeout, unsolicited pongs or not', async () => {
    const d = await startDaemon(['--message-timeout', '1', '--heartbeat', '1', '--req-rate', '10000']);
    const evil = await Raw.open({ path: d.path });
    assert.equal((await evil.handshake({ path: '/chat/ws?name=half' })).status, 101);
    assert.equal(JSON.parse((await evil.data()).payload).op, 'hello');
    evil.send(0x1, Buffer.from('{"op":"ping",'), { fin: false });
    const pongs = setInterval(() => evil.send(0xA, Buffer.from('p')), 100);
    // a victim streams whole messages, one after another, for longer than
    // the timeout, some of them fragmented: never closed
    const v = await direct(d, 'victim');
    const t0 = Date.now();
    let f, n = 0;
    const stream = (async () => {
      for (; Date.now() - t0 < 2500; n++) {
        if (n % 2) {
          v.ws.send('{"op":"ping",', { fin: false });
          v.ws.send(`"ref":${n}}`, { fin: true });
        } else {
          v.send({ op: 'ping', ref: n });
        }
        assert.equal((await v.op('pong')).ref, n);
      }
    })();
    try {
      while ((f = await evil.frame(6000)) && f.opcode !== 0x8 && Date.now() - t0 < 8000);
    } finally {
      clearInterval(pongs);
    }
    assert.equal(f?.opcode, 0x8, 'a close frame');
    assert.equal(f.payload.readUInt16BE(0), 1008);
    assert.match(f.payload.subarray(2).toString(), /not finished/);
    assert.ok(Date.now() - t0 < 4000, `closed after ${Date.now() - t0} ms`);
    await stream;
    assert.ok(n > 3);
    assert.equal(v.closed, null);
    v.close();
    evil.end();
    await d.stop();
  });

  test('joined and members include this process\'s own members at once, not after the next flush', async () => {
    const d = await startDaemon([]);
    for (let i = 0; i < 3; i++) {
      const room = uniqueRoom('now');
      const a = await direct(d, `first${i}`);
      a.send({ op: 'join', room });
      await a.op('joined');
      const b = await direct(d, `second${i}`);
      b.send({ op: 'join', room });
      const jb = await b.op('joined');
      assert.deepEqual([...jb.members].sort(), [`~first${i}`, `~second${i}`]);
      assert.equal(jb.count, 2);
      const c = await direct(d, `asker${i}`);
      c.send({ op: 'members', room, ref: 'm' });
      const m = await c.op('members');
      assert.deepEqual([...m.members].sort(), [`~first${i}`, `~second${i}`]);
      assert.equal(m.count, 2);
      for (const x of [a, b, c]) x.close();
    }
    await d.stop();
  });

  test('members under presence churn: one query per room answers the crowd', async () => {
    // chat_members() calls of this daemon's sessions only, counted by PostgreSQL
    const track = DATABASE_URL.includes('://')
      ? `${DATABASE_URL}${DATABASE_URL.includes('?') ? '&' : '?'}options=-c%20track_functions%3Dall`
      : `${DATABASE_URL} options='-c track_functions=all'`;
    const db = await pgClient();
    await db.connect();
    const calls = async () => Number((await db.query(
      "SELECT coalesce(sum(calls), 0) AS n FROM pg_stat_user_functions WHERE funcname = 'chat_members'")).rows[0].n);
    const d = await startDaemon(['--db', track]);
    const other = await startDaemon([]); // another node, where the attacker churns
    const room = uniqueRoom('churn');
    const members = [];
    let asked = 0, answered = 0;
    for (let i = 0; i < 40; i++) {
      const c = await direct(d, `m${i}`);
      c.send({ op: 'join', room });
      await c.op('joined');
      // as the shipped client did: every presence event, ask the list
      c.ws.on('message', (data) => {
        const e = JSON.parse(data.toString());
        if (e.op === 'presence') { asked++; c.send({ op: 'members', room }); }
        if (e.op === 'members') answered++;
      });
      members.push(c);
    }
    const before = await calls();
    // the attacker: a new name in the room every 50 ms for 4 s
    const t0 = Date.now();
    for (let i = 0; Date.now() - t0 < 4000; i++) {
      const x = await direct(other, `churn${i}`);
      x.send({ op: 'join', room });
      await x.op('joined');
      x.close();
      await new Promise((r) => setTimeout(r, 50));
    }
    await until(() => asked > 0 && answered === asked, 10000, 'every members request answered');
    // the victim: a member still gets a current list
    members[0].send({ op: 'members', room, ref: 'v' });
    const v = await members[0].next((e) => e.op === 'members' && e.ref === 'v', 5000, 'members');
    assert.ok(v.members.includes('~m39') && v.count >= 40, JSON.stringify(v).slice(0, 200));
    for (const c of members) c.close();
    await d.stop(); // its sessions end: their function counts are flushed
    await other.stop();
    let queries;
    await until(async () => { await db.query('SELECT pg_stat_clear_snapshot()'); queries = (await calls()) - before; return queries > 0; },
      15000, 'function statistics');
    console.log(`members under churn: ${asked} requests, ${queries} chat_members() queries`);
    await db.end();
    assert.ok(asked >= 40, `${asked} members requests`);
    assert.ok(queries * 5 <= asked, `${queries} queries for ${asked} requests`);
  });
});
