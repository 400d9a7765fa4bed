// The clients of `make multihost`: senders that retry with the same cid
// until acked, receivers that resume by cursor, on both transports, all
// through the load balancer. They behave as web/chat-client.js does, with
// shorter timers so that a dead host is noticed within seconds (the
// browser client pings after 30 s of silence and gives up 10 s later).
// Every ack and every received message is recorded with its time, for the
// checks and the table of faults.mjs. Retry pauses are client backoff, not
// synchronization: nothing here waits for time to pass to see a result.
import WebSocket from 'ws';

export const BASE = process.env.MH_URL || 'http://127.0.0.1/chat/';
const WS_URL = BASE.replace(/^http/, 'ws') + 'ws';
const REPLY_MS = 5000; // an ack (or pong) later than this: the socket is dead
const backoff = (n) => Math.min(2000, 100 * 2 ** Math.min(n, 5)) * (0.5 + Math.random() / 2);
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

// One WebSocket: resolves 'open' after hello, or rejects within REPLY_MS.
class Socket {
  constructor(name, onEvent, onClose) {
    this.ws = new WebSocket(`${WS_URL}?name=${name}`, { handshakeTimeout: REPLY_MS });
    this.replies = new Map(); // ref -> resolve
    this.ref = 0;
    this.closed = false;
    this.ws.on('message', (data) => {
      const ev = JSON.parse(data.toString('utf8'));
      if (ev.ref !== undefined && this.replies.has(ev.ref)) {
        const r = this.replies.get(ev.ref);
        this.replies.delete(ev.ref);
        r(ev);
      } else onEvent(ev);
    });
    const close = () => {
      if (this.closed) return;
      this.closed = true;
      for (const r of this.replies.values()) r({ op: 'error', code: 'closed' });
      this.replies.clear();
      onClose();
    };
    this.ws.on('close', close);
    this.ws.on('error', close);
    this.open = new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.kill(); reject(new Error('no hello')); }, REPLY_MS);
      const check = (data) => {
        if (JSON.parse(data.toString('utf8')).op === 'hello') { clearTimeout(t); resolve(); }
      };
      this.ws.once('message', check);
      this.ws.once('close', () => { clearTimeout(t); reject(new Error('closed before hello')); });
      this.ws.once('error', () => {});
    });
  }

  // A request whose reply carries ref; resolves with the reply, or with
  // {code:'timeout'} / {code:'closed'} (and then the socket is dropped).
  request(obj) {
    if (this.closed) return Promise.resolve({ op: 'error', code: 'closed' });
    const ref = ++this.ref;
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.replies.delete(ref);
        this.kill();
        resolve({ op: 'error', code: 'timeout' });
      }, REPLY_MS);
      this.replies.set(ref, (ev) => { clearTimeout(t); resolve(ev); });
      try { this.ws.send(JSON.stringify({ ...obj, ref })); } catch { /* close follows */ }
    });
  }

  kill() {
    try { this.ws.terminate(); } catch { /* gone */ }
  }
}

// A sender: one message at a time, every `every` ms, rooms in turn; each
// message is retried with its cid until acked. Records per message the
// first try, the ack, the attempts.
export class Sender {
  constructor(name, transport, rooms, log, every = 250) {
    Object.assign(this, { name, transport, rooms, log, every });
    this.user = `~${name}`;
    this.sent = []; // {room, cid, text, t0, tAck, seq, tries}
    this.stopped = false;
    this.sock = null;
    this.stats = { unavailable: 0, reconnects: 0, errors: 0, codes: {} };
  }

  async run() {
    for (let n = 1; !this.stopped; n++) {
      const room = this.rooms[n % this.rooms.length];
      const cid = `${this.name}-${n}`;
      const m = { room, cid, text: `${cid} via ${this.transport}`, t0: Date.now(), tries: 0 };
      this.sent.push(m);
      await this.deliver(m);
      if (!this.stopped) await pause(this.every);
    }
    this.sock?.kill();
  }

  async deliver(m) {
    for (let fail = 0; ; fail++) {
      if (this.stopped && m.tAck === undefined && fail > 0) return;
      m.tries++;
      const r = this.transport === 'ws' ? await this.sendWs(m) : await this.sendHttp(m);
      if (r.op === 'ack') {
        if (r.cid !== m.cid || r.room !== m.room) this.log(`${this.name}: ack for ${r.cid} answered ${m.cid}`);
        m.tAck = Date.now();
        m.seq = r.seq;
        return;
      }
      if (r.code === 'unavailable') this.stats.unavailable++;
      else this.stats.errors++;
      this.stats.codes[r.code] = (this.stats.codes[r.code] || 0) + 1;
      await pause(backoff(fail));
    }
  }

  async sendWs(m) {
    if (!this.sock || this.sock.closed) {
      this.stats.reconnects++;
      this.sock = new Socket(this.name, () => {}, () => {});
      try { await this.sock.open; } catch { return { op: 'error', code: 'connect' }; }
    }
    return this.sock.request({ op: 'send', room: m.room, text: m.text, cid: m.cid });
  }

  async sendHttp(m) {
    try {
      const res = await fetch(BASE + 'send', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ room: m.room, text: m.text, cid: m.cid, name: this.name }),
        signal: AbortSignal.timeout(REPLY_MS),
      });
      const text = await res.text();
      try { return JSON.parse(text); } catch { return { op: 'error', code: `http_${res.status}` }; }
    } catch {
      return { op: 'error', code: 'network' };
    }
  }
}

// A receiver of every room, from seq 0, resuming by cursor. transport:
// 'ws', 'lp', or 'switch' (alternates every `switchMs`). Any message that
// is not exactly cursor + 1 is recorded as a violation.
export class Receiver {
  constructor(name, transport, rooms, log, switchMs = 4000) {
    Object.assign(this, { name, transport, rooms, log, switchMs });
    this.cursor = new Map(rooms.map((r) => [r, 0]));
    this.got = new Map(rooms.map((r) => [r, []])); // room -> [{seq, cid, t}]
    this.violations = [];
    this.stopped = false;
    this.stats = { reconnects: 0, polls: 0, errors: 0 };
    this.mode = transport === 'lp' ? 'lp' : 'ws';
  }

  onMsg(ev) {
    const last = this.cursor.get(ev.room);
    if (last === undefined) return;
    if (ev.seq !== last + 1) {
      this.violations.push(`${this.name}: room ${ev.room} seq ${ev.seq} after ${last} ` +
        `(${ev.seq <= last ? 'duplicate' : 'gap'}, ${this.mode})`);
      if (ev.seq <= last) return;
    }
    this.cursor.set(ev.room, ev.seq);
    this.got.get(ev.room).push({ seq: ev.seq, cid: ev.cid, user: ev.user, t: Date.now() });
  }

  async run() {
    let fail = 0;
    while (!this.stopped) {
      const until = this.transport === 'switch' ? Date.now() + this.switchMs : Infinity;
      const ok = this.mode === 'ws' ? await this.runWs(until) : await this.runLp(until);
      if (this.transport === 'switch') this.mode = this.mode === 'ws' ? 'lp' : 'ws';
      if (ok) fail = 0;
      else { this.stats.errors++; await pause(backoff(fail++)); }
    }
  }

  // Until `until`, stop, or a dead socket (a ping unanswered in 5 s).
  async runWs(until) {
    this.stats.reconnects++;
    let sock;
    let dead = false;
    sock = new Socket(this.name, (ev) => { if (ev.op === 'msg') this.onMsg(ev); }, () => { dead = true; });
    try { await sock.open; } catch { return false; }
    for (const room of this.rooms) {
      const r = await sock.request({ op: 'join', room, since: this.cursor.get(room) });
      if (r.op !== 'joined') { sock.kill(); return false; }
    }
    while (!dead && !this.stopped && Date.now() < until) {
      await pause(2000); // the ping interval
      if (dead || this.stopped) break;
      const p = await sock.request({ op: 'ping' });
      if (p.op !== 'pong') dead = true;
    }
    sock.kill();
    return !dead || this.stopped;
  }

  async runLp(until) {
    while (!this.stopped && Date.now() < until) {
      const rooms = [...this.cursor].map(([r, s]) => `${r}:${s}`).join(',');
      const wait = this.transport === 'switch' ? 1 : 5;
      this.stats.polls++;
      let json;
      try {
        const res = await fetch(`${BASE}poll?rooms=${rooms}&name=${this.name}&timeout=${wait}`, {
          headers: { 'x-chat-request': '1' }, // as the shipped client (cross-site polls are refused)
          signal: AbortSignal.timeout(wait * 1000 + REPLY_MS),
        });
        if (res.status !== 200) { await res.text(); return false; }
        json = await res.json();
      } catch {
        return false;
      }
      for (const ev of json.events) if (ev.op === 'msg') this.onMsg(ev);
    }
    return true;
  }
}
