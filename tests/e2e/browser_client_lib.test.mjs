// chat-client.js on its own, in the browser, against a scripted server (a
// fake WebSocket and a fake fetch given as options): the library's promises
// held exactly, whatever the timing of a real stack would happen to be.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE } from './lib.mjs';
import { SKIP, launch } from './browser_lib.mjs';

// Installed in the page: a WebSocket double that the test script drives.
function installFakes() {
  class FakeWS {
    static all = [];
    static refuse = false; // the next connections fail before opening
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.waiters = [];
      FakeWS.all.push(this);
      setTimeout(() => {
        if (FakeWS.refuse) { this.readyState = 3; this.onclose?.({ code: 1006 }); return; }
        this.readyState = 1;
        this.push({ op: 'hello', user: '~tess', heartbeat: 30 });
      }, 0);
    }
    send(s) {
      this.sent.push(JSON.parse(s));
      for (const w of this.waiters.splice(0)) w();
    }
    push(ev) { this.onmessage?.({ data: JSON.stringify(ev) }); }
    drop(code = 1006) { this.readyState = 3; this.onclose?.({ code }); }
    close() { this.readyState = 3; }
    // The next request of this op the client sends (resolves with it).
    async next(op, from = 0) {
      for (;;) {
        const found = this.sent.slice(from).find((r) => r.op === op);
        if (found) return found;
        await new Promise((r) => this.waiters.push(r));
      }
    }
  }
  window.FakeWS = FakeWS;
  window.lastWs = async () => {
    while (!FakeWS.all.length || FakeWS.all.at(-1).readyState !== 1) await new Promise((r) => setTimeout(r, 5));
    return FakeWS.all.at(-1);
  };
  window.msg = (seq, text, cid, user = '~una') => ({
    op: 'msg', room: 'lobby', seq, user, text, ts: '2026-11-28T10:00:00.000Z', cid,
  });
}

describe('chat-client.js against a scripted server', { skip: SKIP }, () => {
  let browser;
  let page;
  before(async () => {
    browser = await launch();
    page = await browser.newPage();
    await page.goto(`${BASE}favicon.svg`); // any document of the chat's origin
    await page.evaluate(installFakes);
  });
  after(async () => { await browser?.close(); });

  test('a dropped connection: joins resume by seq, the unacked send goes again with its cid, no duplicates',
    async () => {
      const r = await page.evaluate(async () => {
        const { ChatClient } = await import('/chat/chat-client.js');
        FakeWS.all = [];
        const chat = new ChatClient({ WebSocket: FakeWS, transports: ['websocket'], backoffMin: 10 });
        const got = { messages: [], acks: [], states: [] };
        chat.on('message', (m) => got.messages.push([m.seq, m.text, m.mine]));
        chat.on('ack', (a) => got.acks.push([a.cid, a.seq]));
        chat.on('state', (s) => got.states.push(s.state));
        chat.connect().join('lobby');

        let ws = await lastWs();
        const join1 = await ws.next('join');
        ws.push({ op: 'joined', room: 'lobby', seq: 2, members: ['~tess'], count: 1, ref: join1.ref });
        ws.push(msg(1, 'one'));
        ws.push(msg(2, 'two'));
        const cid = chat.send('lobby', 'mine');
        const send1 = await ws.next('send');
        ws.drop(); // before the ack

        ws = await lastWs();
        // The first join on the new connection meets a server without its database.
        const join2 = await ws.next('join');
        ws.push({ op: 'error', code: 'unavailable', message: 'db down', ref: join2.ref });
        const send2 = await ws.next('send');
        const join3 = await ws.next('join', ws.sent.indexOf(join2) + 1);
        ws.push({ op: 'joined', room: 'lobby', seq: 4, members: ['~tess'], count: 1, ref: join3.ref });
        ws.push(msg(2, 'two')); // replayed: already delivered
        ws.push(msg(3, 'three'));
        ws.push({ op: 'ack', room: 'lobby', cid: send2.cid, seq: 4, ts: '2026-11-28T10:00:01.000Z', ref: send2.ref });
        ws.push(msg(4, 'mine', send2.cid, '~tess'));
        ws.push(msg(3, 'three')); // and a stray duplicate
        await new Promise((res) => setTimeout(res, 50));
        chat.close();
        return { got, cid, send1, send2, join1, join2, join3, outbox: chat.outbox.size };
      });
      assert.deepEqual(r.got.messages, [[1, 'one', false], [2, 'two', false], [3, 'three', false], [4, 'mine', true]]);
      assert.equal(r.join1.since, undefined, 'a first join asks for the latest');
      assert.equal(r.join2.since, 2, 'resumes after the last seq delivered');
      assert.equal(r.join3.since, 2, 'the join refused as unavailable is tried again');
      assert.equal(r.send1.cid, r.cid);
      assert.equal(r.send2.cid, r.cid, 'the unacked message goes again with the same cid');
      assert.equal(r.send2.text, 'mine');
      assert.deepEqual(r.got.acks, [[r.cid, 4]]);
      assert.equal(r.outbox, 0);
      assert.deepEqual(r.got.states, ['connecting', 'connected', 'reconnecting', 'connected', 'closed']);
    });

  test('WebSocket refused: long-poll at once, WebSocket again later, resuming from the seq long-poll reached',
    async () => {
      const r = await page.evaluate(async () => {
        const { ChatClient } = await import('/chat/chat-client.js');
        FakeWS.all = [];
        FakeWS.refuse = true;
        const polls = [];
        const posts = [];
        let hellos = 0;
        let parked = null;
        const json = (body, status = 200) => new Response(JSON.stringify(body),
          { status, headers: { 'content-type': 'application/json' } });
        const fetch = async (url, init) => {
          const u = new URL(url);
          if (u.pathname.endsWith('/poll') && !u.searchParams.has('rooms')) { // who we are, the policy
            hellos++;
            return json({ events: [], cursor: '', user: '~tess',
              policy: { max_text: 4096, readonly: false, rooms: '*', first_room: 'lobby' } });
          }
          if (u.pathname.endsWith('/poll')) {
            polls.push(u.searchParams.get('rooms'));
            if (polls.length === 1) {
              return json({ events: [msg(7, 'seven'), msg(8, 'eight')], cursor: 'lobby:8',
                members: { lobby: { members: ['~tess', '~una'], count: 2 } } });
            }
            if (polls.length === 2) return json({ events: [msg(9, 'nine')], cursor: 'lobby:9' });
            return new Promise((_, reject) => {
              parked = init.signal;
              init.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
            });
          }
          if (u.pathname.endsWith('/send')) {
            const body = JSON.parse(init.body);
            posts.push(body);
            if (posts.length === 1) return json({ op: 'error', code: 'unavailable', message: 'later' }, 503);
            return json({ op: 'ack', room: body.room, cid: body.cid, seq: 10, ts: '2026-11-28T10:00:02.000Z' });
          }
          return json({ op: 'error', code: 'bad_request' }, 400);
        };
        const chat = new ChatClient({
          WebSocket: FakeWS, fetch, name: 'tess', probeMin: 100, probeMax: 200, backoffMin: 10, sharePoll: false,
          transports: ['websocket', 'longpoll'], // long-poll through the fake fetch
        });
        const got = { messages: [], acks: [], states: [], presence: [] };
        chat.on('message', (m) => got.messages.push(m.seq));
        chat.on('ack', (a) => got.acks.push(a.seq));
        chat.on('state', (s) => got.states.push(`${s.state}/${s.transport}`));
        chat.on('presence', (p) => got.presence.push(p.count));
        chat.connect().join('lobby');
        const cid = chat.send('lobby', 'over http');
        while (got.acks.length === 0 || !parked) await new Promise((res) => setTimeout(res, 5));
        FakeWS.refuse = false; // the daemon is back: the next probe gets through
        const ws = await lastWs();
        const join = await ws.next('join');
        const aborted = parked.aborted;
        chat.close();
        return { got, polls, posts, cid, join, aborted, transport: got.states.at(-2), hellos, user: chat.user };
      });
      assert.equal(r.hellos, 1, 'the policy is asked once, before the first poll');
      assert.equal(r.user, '~tess');
      assert.deepEqual(r.polls.slice(0, 3), ['lobby', 'lobby:8', 'lobby:9']);
      assert.deepEqual(r.got.messages, [7, 8, 9]);
      assert.deepEqual(r.got.presence.slice(0, 1), [2]);
      assert.equal(r.posts.length, 2, 'a send answered "unavailable" is tried again');
      assert.equal(r.posts[0].cid, r.cid);
      assert.equal(r.posts[1].cid, r.cid);
      assert.equal(r.posts[0].name, 'tess');
      assert.deepEqual(r.got.acks, [10]);
      assert.equal(r.join.since, 9, 'back on WebSocket, the room resumes after seq 9');
      assert.ok(r.aborted, 'the parked poll is given up');
      assert.equal(r.got.states[0], 'connecting/null');
      assert.ok(r.got.states.includes('connected/longpoll'));
      assert.equal(r.transport, 'connected/websocket');
    });
});
