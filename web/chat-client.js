// chat-client.js: the chat's client library. One event API whatever the
// transport: WebSocket when it works, Server-Sent Events, then long-poll
// (both in chat-poll.js) when it is missing or fails to connect, WebSocket
// again later; the transport that worked is remembered (localStorage) and
// tried first next time. Reconnects with
// exponential backoff and jitter, resumes every room from the last seq it
// delivered, re-sends unacknowledged messages with the same cid (the server
// acks a repeated cid once), and drops duplicates by (room, seq): whatever
// happens to the connection, each message is delivered exactly once and in
// order. Plain ES module, no dependencies, no build step; docs/client.md.
//
//   import { ChatClient } from '/chat/chat-client.js';
//   const chat = new ChatClient({ name: 'bob' });
//   chat.on('message', (m) => console.log(m.room, m.seq, m.user, m.text));
//   chat.connect().join('lobby');
//   chat.send('lobby', 'hi');
import { Poller, HttpError, roomAllowed } from './chat-poll.js';

export const ROOM_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
export const NAME_RE = /^[A-Za-z0-9_.-]{1,32}$/;

const DEFAULTS = {
  transports: ['websocket', 'sse', 'longpoll'],
  sseTimeout: 5000, // ms for an event stream to say "ready" before long-poll
  remember: true, // keep the transport that worked in localStorage
  pollTimeout: 25, // seconds a long-poll may park
  connectTimeout: 8000, // ms for a WebSocket to open and say hello
  fallbackAfter: 2500, // ms without hello before long-poll starts alongside
  requestTimeout: 15000, // ms for a reply (ack, history, members)
  backoffMin: 500,
  backoffMax: 30000,
  probeMin: 3000, // first retry of WebSocket after falling back to long-poll
  probeMax: 120000,
  typingEvery: 3000, // at most one typing notice per room per this many ms
  sharePoll: true,
  maxSendRetries: 8, // "unavailable"/"rate_limited" answers before a send fails
  membersEvery: 5000, // ms: at most one members request per room this often
};

const RETRYABLE = new Set(['unavailable', 'rate_limited', 'network', 'timeout', 'http_502', 'http_504', 'http_500']);

function makeCid() {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(36).padStart(2, '0')).join('').slice(0, 20);
}

export class ChatClient {
  #handlers = new Map();
  #o;
  #state = 'idle';
  #transport = null;
  #ws = null; // the open WebSocket (after hello)
  #wsTry = null; // a WebSocket being opened
  #poller = null;
  #timers = new Map(); // name -> timeout id
  #fails = 0; // consecutive failed connection attempts
  #probes = 0; // WebSocket retries while on long-poll
  #refs = new Map(); // ref -> { resolve, reject, timer, cid }
  #nextRef = 1;
  #lastRx = 0;
  #heartbeat = 30000; // ms between server pings (from hello)
  #pingAt = 0;
  #tick = 0;
  #httpSending = false;
  #typingAt = new Map();
  #acked = new Map(); // `${room}\n${cid}` -> seq, the last 500 acks
  #listeners = [];
  #focus = undefined; // the room whose member list is shown (undefined: every room)
  #membersAt = new Map(); // room -> when members was last asked
  #membersStale = new Set(); // rooms whose list a count-only presence made stale

  /**
   * @param {object} options
   *   url: base URL of the chat (default: the folder this file is served from)
   *   name: guest name (ignored when nginx authenticates the user)
   *   transports: ['websocket', 'sse', 'longpoll'] (order is preference)
   *   plus the timing knobs in DEFAULTS
   */
  constructor(options = {}) {
    const given = Object.entries(options).filter(([, v]) => v !== undefined);
    this.#o = { ...DEFAULTS, ...Object.fromEntries(given) };
    const base = new URL(options.url ?? new URL('.', import.meta.url), globalThis.location?.href);
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    this.base = base.href;
    this.name = options.name ?? null;
    this.user = null; // who the server says we are, e.g. "alice" or "~bob"
    this.role = 'user'; // 'moderator' on a $chat_role moderator location
    // the location's policy, once the server told it (hello, or the first
    // poll): { max_text, readonly, rooms, first_room }; null until then
    this.policy = null;
    this.rooms = new Map(); // room -> { seq, members: Set, count, synced }
    this.outbox = new Map(); // cid -> { room, text, cid, status, tries }
  }

  get state() { return this.#state; } // idle connecting connected reconnecting offline closed
  get transport() { return this.#transport; } // 'websocket' | 'sse' | 'longpoll' | null

  // ---- events -----------------------------------------------------------------

  /** Subscribe to an event; returns a function that unsubscribes. */
  on(type, fn) {
    if (!this.#handlers.has(type)) this.#handlers.set(type, new Set());
    this.#handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) { this.#handlers.get(type)?.delete(fn); }

  #emit(type, detail) {
    for (const fn of [...(this.#handlers.get(type) || [])]) {
      try { fn(detail); } catch (err) { queueMicrotask(() => { throw err; }); }
    }
  }

  // ---- public API ---------------------------------------------------------------

  connect() {
    if (this.#state !== 'idle' && this.#state !== 'closed') return this;
    this.#listen(globalThis, 'online', () => this.reconnectNow());
    this.#listen(globalThis.document, 'visibilitychange', () => {
      if (globalThis.document.visibilityState !== 'visible') return;
      for (const room of this.#membersStale) this.#refreshMembers(room);
      if (this.#ws) this.#ping();
      else this.reconnectNow();
    });
    this.#setState('connecting');
    this.#timers.set('watchdog', setInterval(() => this.#checkAlive(), 5000));
    this.#tick = Date.now();
    // what worked last time goes first: a page behind a proxy that blocks
    // WebSocket does not wait for it again (it is probed in the background)
    const known = this.#remembered();
    if (this.#wsAllowed() && known !== 'sse' && known !== 'longpoll') this.#openWs(false);
    else if (this.#wsAllowed() && this.#pollAllowed()) this.#wsFailed(false);
    else if (this.#pollAllowed()) this.#startPoll();
    else this.#openWs(false);
    return this;
  }

  close() {
    this.#setState('closed');
    for (const [name, t] of this.#timers) (name === 'watchdog' ? clearInterval : clearTimeout)(t);
    this.#timers.clear();
    for (const [target, type, fn] of this.#listeners) target.removeEventListener(type, fn);
    this.#listeners = [];
    this.#dropWs(1000);
    this.#stopPoll();
    this.#transport = null;
  }

  /** Retry at once (e.g. on a user's click) instead of waiting for the backoff. */
  reconnectNow() {
    if (this.#state !== 'reconnecting' && this.#state !== 'offline') return;
    this.#fails = 0;
    if (this.#overHttp() && this.#poller) {
      this.#poller.kick();
      if (this.#wsAllowed()) this.#schedule('probe', 0, () => this.#openWs(true));
    } else if (this.#wsAllowed()) {
      this.#clearTimer('reconnect');
      if (!this.#wsTry) this.#openWs(false);
    }
  }

  /** Subscribe to a room; resumes after its last delivered seq (or `since`). */
  join(room, { since } = {}) {
    if (!ROOM_RE.test(room)) throw new TypeError(`bad room name: ${room}`);
    if (!this.rooms.has(room)) {
      this.rooms.set(room, { seq: since ?? null, members: new Set(), count: 0, synced: false });
    }
    if (this.#ws) this.#wsJoin(room);
    else this.#poller?.update(this.#cursors());
    return this;
  }

  leave(room) {
    if (!this.rooms.delete(room)) return this;
    if (this.#ws) this.#wsSend({ op: 'leave', room });
    else this.#poller?.update(this.#cursors());
    return this;
  }

  /** Queue a message; returns its cid. It stays in `outbox` until 'ack' or 'failed'. */
  send(room, text, { cid = makeCid() } = {}) {
    if (!ROOM_RE.test(room)) throw new TypeError(`bad room name: ${room}`);
    if (typeof text !== 'string' || text.length === 0) throw new TypeError('empty message');
    this.outbox.set(cid, { room, text, cid, status: 'pending', tries: 0 });
    this.#typingAt.delete(room); // typing again after this is news again
    this.#pump();
    return cid;
  }

  /** Send a failed message again, with the same cid. */
  retry(cid) {
    const item = this.outbox.get(cid);
    if (!item || item.status !== 'failed') return false;
    item.status = 'pending';
    item.tries = 0;
    this.#pump();
    return true;
  }

  /** Forget a failed or pending message. */
  discard(cid) { return this.outbox.delete(cid); }

  /** Messages before seq `before` (latest when omitted), ascending. */
  // history and search: the messages, ascending; .horizon is set when
  // nothing older is left (retention removed what was below it).
  async history(room, { before, limit = 50 } = {}) {
    return this.#page({ op: 'history', room, before, limit });
  }

  /** Full-text search of a room (web-search syntax): a page like history, newest page first. */
  async search(room, q, { before, limit = 50 } = {}) {
    return this.#page({ op: 'search', room, q, before, limit });
  }

  async #page(req) {
    let ev;
    if (this.#ws) {
      ev = await this.#request(req);
    } else {
      const { op, ...q } = req;
      if (q.before === undefined) delete q.before;
      if (this.name) q.name = this.name;
      ev = await this.#http('GET', op, q);
    }
    const msgs = ev.messages || [];
    if (typeof ev.horizon === 'number') msgs.horizon = ev.horizon;
    return msgs;
  }

  /** Edit our own message (within the site's window): resolves with the change's ack. */
  edit(room, seq, text) { return this.#moderate({ op: 'edit', room, seq, text, cid: makeCid() }); }

  /** Delete our own message, or anyone's as a moderator: the change's ack. */
  delete(room, seq) { return this.#moderate({ op: 'delete', room, seq, cid: makeCid() }); }

  /** Moderators: ban user (or ~guest) for seconds (undefined: until lifted). */
  ban(user, { seconds, reason } = {}) { return this.#moderate({ op: 'ban', user, for: seconds, reason }); }

  // A change or a moderator's op: rejects with err.code (forbidden,
  // too_late, not_found, ...) when refused. A retry after a lost answer
  // reuses the cid, so it is never applied twice.
  async #moderate(req) {
    if (this.#ws) return this.#request(req);
    const { op, ...body } = req;
    if (this.name && op !== 'ban') body.name = this.name;
    try {
      return await this.#http('POST', op, body);
    } catch (err) {
      throw Object.assign(new Error(err.message || err.code), { code: err.code, status: err.status });
    }
  }

  /** Tell the room we are typing (throttled). */
  typing(room) {
    const now = Date.now();
    if (now - (this.#typingAt.get(room) || 0) < this.#o.typingEvery) return;
    this.#typingAt.set(room, now);
    if (this.#ws) this.#wsSend({ op: 'typing', room });
    else if (this.#overHttp()) {
      this.#http('POST', 'typing', { room, name: this.name ?? undefined }).catch(() => {});
    }
  }

  /** Whether the location lets this client use room (true until the policy is known). */
  allowed(room) { return !this.policy || roomAllowed(this.policy.rooms, room); }

  /**
   * The room whose member list the page shows (null: none). When a busy
   * room's presence carries only a count, the list is asked again for this
   * room only, at most once per membersEvery, and not while the page is
   * hidden. Without a call, every room's list is kept (the same pace).
   */
  focus(room) {
    this.#focus = room;
    if (room && this.#membersStale.has(room)) this.#refreshMembers(room);
  }

  /** Who is in the room, as last reported by the server. */
  members(room) {
    const r = this.rooms.get(room);
    return r ? { members: [...r.members].sort(), count: r.count } : { members: [], count: 0 };
  }

  // ---- state and timers -----------------------------------------------------------

  #setState(state, extra = {}) {
    const changed = state !== this.#state || extra.transport !== undefined;
    this.#state = state;
    if (changed || extra.retryIn !== undefined) {
      this.#emit('state', { state, transport: this.#transport, user: this.user, ...extra });
    }
  }

  #schedule(name, ms, fn) {
    this.#clearTimer(name);
    this.#timers.set(name, setTimeout(() => { this.#timers.delete(name); fn(); }, ms));
  }

  #clearTimer(name) {
    clearTimeout(this.#timers.get(name));
    this.#timers.delete(name);
  }

  #listen(target, type, fn) {
    if (!target?.addEventListener) return;
    target.addEventListener(type, fn);
    this.#listeners.push([target, type, fn]);
  }

  // Exponential backoff with jitter: attempt 1 waits ~min, each next twice as long.
  #backoff(attempt, min = this.#o.backoffMin, max = this.#o.backoffMax) {
    const ceiling = Math.min(max, min * 2 ** Math.max(0, attempt - 1));
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  }

  #lostState() {
    const offline = globalThis.navigator?.onLine === false || this.#fails >= 4;
    return offline ? 'offline' : 'reconnecting';
  }

  #cursors() {
    return new Map([...this.rooms].map(([room, r]) => [room, r.seq]));
  }

  #wsAllowed() {
    return this.#o.transports.includes('websocket') &&
      typeof (this.#o.WebSocket ?? globalThis.WebSocket) === 'function';
  }

  #pollAllowed() { return this.#o.transports.includes('longpoll') || this.#sseAllowed(); }

  #sseAllowed() {
    return this.#o.transports.includes('sse') &&
      typeof (this.#o.EventSource ?? globalThis.EventSource) === 'function';
  }

  // Sends, typing and history go over HTTP (SSE and long-poll alike).
  #overHttp() { return this.#transport === 'sse' || this.#transport === 'longpoll'; }

  // ---- what worked last time (localStorage, per chat URL) -----------------

  #rememberKey() { return `chat-transport|${this.base}`; }

  #remembered() {
    if (!this.#o.remember) return null;
    try { return globalThis.localStorage?.getItem(this.#rememberKey()) ?? null; } catch { return null; }
  }

  #remember(transport) {
    if (!this.#o.remember) return;
    try { globalThis.localStorage?.setItem(this.#rememberKey(), transport); } catch { /* private mode */ }
  }

  // ---- WebSocket ---------------------------------------------------------------------

  #wsUrl() {
    const u = new URL('ws', this.base);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    if (this.name) u.searchParams.set('name', this.name);
    return u.href;
  }

  #openWs(probe) {
    if (this.#wsTry || this.#ws || this.#state === 'closed') return;
    const WS = this.#o.WebSocket ?? globalThis.WebSocket;
    let ws;
    try {
      ws = new WS(this.#wsUrl());
    } catch {
      this.#wsFailed(probe);
      return;
    }
    const attempt = { ws, ready: false, dropped: false };
    this.#wsTry = attempt;
    const timer = setTimeout(() => { attempt.dropped = true; ws.close(); this.#wsEnded(attempt, probe, 0); },
      this.#o.connectTimeout);
    // A proxy that accepts the upgrade and then passes nothing keeps the
    // socket open and silent: chat over long-poll meanwhile, and still take
    // the WebSocket if its hello comes before connectTimeout.
    const hedge = setTimeout(() => {
      if (!attempt.ready && !attempt.dropped && this.#wsTry === attempt && this.#pollAllowed()) this.#startPoll();
    }, Math.min(this.#o.fallbackAfter, this.#o.connectTimeout));
    ws.onmessage = (e) => {
      if (attempt.dropped) return;
      let ev;
      try { ev = JSON.parse(e.data); } catch { return; }
      if (!ev || typeof ev !== 'object') return;
      this.#lastRx = Date.now();
      if (attempt.ready) {
        this.#onEvent(ev, 'websocket');
      } else if (ev.op === 'hello') {
        attempt.ready = true;
        clearTimeout(timer);
        clearTimeout(hedge);
        this.#wsReady(attempt, ev);
      }
    };
    ws.onclose = (e) => {
      clearTimeout(timer);
      clearTimeout(hedge);
      if (!attempt.dropped) this.#wsEnded(attempt, probe, e.code);
    };
  }

  #wsEnded(attempt, probe, code) {
    if (this.#wsTry === attempt) this.#wsTry = null;
    attempt.ws.onmessage = attempt.ws.onclose = null;
    if (attempt.ready) this.#wsLost(code);
    else this.#wsFailed(probe);
  }

  // A WebSocket that never said hello: fall back to long-poll, or back off.
  #wsFailed(probe) {
    if (this.#state === 'closed') return;
    if (this.#pollAllowed()) {
      if (!this.#poller) this.#startPoll();
      this.#probes++;
      this.#schedule('probe', this.#backoff(this.#probes, this.#o.probeMin, this.#o.probeMax),
        () => this.#openWs(true));
      return;
    }
    this.#fails++;
    const delay = this.#backoff(this.#fails);
    this.#transport = 'websocket'; // what it keeps trying
    this.#setState(this.#lostState(), { retryIn: delay });
    this.#schedule('reconnect', delay, () => this.#openWs(false));
  }

  // What the server says first (hello, or a poll's "user" and "policy"):
  // 'hello' { user, role, policy } when something changed, then an error
  // for each room the page still has that the policy does not allow.
  #setHello(user, role, policy) {
    const changed = user !== this.user || role !== this.role ||
      JSON.stringify(policy) !== JSON.stringify(this.policy);
    this.user = user;
    this.role = role;
    this.policy = policy;
    if (!changed) return;
    this.#emit('hello', { user, role, policy });
    for (const room of [...this.rooms.keys()]) {
      if (this.allowed(room)) continue;
      this.rooms.delete(room);
      this.#emit('error', { code: 'forbidden', message: 'room not allowed here', room, op: 'join' });
    }
  }

  #wsReady(attempt, hello) {
    // first, so that the page leaves and joins rooms before the joins go
    this.#setHello(hello.user ?? this.user, hello.role === 'moderator' ? 'moderator' : 'user',
      hello.policy && typeof hello.policy === 'object' ? hello.policy : this.policy);
    this.#ws = attempt.ws;
    this.#wsTry = null;
    this.#clearTimer('probe');
    this.#clearTimer('reconnect');
    this.#stopPoll();
    this.#heartbeat = (Number(hello.heartbeat) || 30) * 1000;
    this.#fails = 0;
    this.#probes = 0;
    this.#pingAt = 0;
    this.#transport = 'websocket';
    this.#remember('websocket');
    for (const r of this.rooms.values()) r.synced = false;
    for (const room of this.rooms.keys()) this.#wsJoin(room);
    this.#setState('connected', { transport: 'websocket' });
    this.#pump();
  }

  // An open WebSocket closed: reconnect (1008 "too slow" and 1001 "going away"
  // at once, with a little jitter so a restarted daemon is not stampeded).
  #wsLost(code) {
    this.#ws = null;
    this.#failRequests('connection lost');
    if (this.#state === 'closed') return;
    const quick = code === 1008 || code === 1001 || this.#fails === 0;
    this.#fails++;
    const delay = quick ? Math.round(Math.random() * 500) : this.#backoff(this.#fails);
    this.#setState(this.#lostState(), { retryIn: delay });
    this.#schedule('reconnect', delay, () => this.#openWs(false));
  }

  #dropWs(code) {
    for (const attempt of [this.#wsTry].filter(Boolean)) {
      attempt.dropped = true;
      attempt.ws.onmessage = attempt.ws.onclose = null;
      try { attempt.ws.close(code); } catch { /* ignore */ }
    }
    this.#wsTry = null;
    if (this.#ws) {
      const ws = this.#ws;
      this.#ws = null;
      ws.onmessage = ws.onclose = null;
      try { ws.close(code); } catch { /* ignore */ }
      this.#failRequests('connection closed');
    }
  }

  #wsSend(obj) {
    if (!this.#ws || this.#ws.readyState !== 1) return false;
    this.#ws.send(JSON.stringify(obj));
    return true;
  }

  // A join the server could not serve yet ("unavailable": a daemon that just
  // started and has no database connection yet) is tried again on the same
  // connection; one it refuses ("forbidden") is reported.
  #wsJoin(room, attempt = 0) {
    const ws = this.#ws;
    const r = this.rooms.get(room);
    const req = { op: 'join', room };
    if (r.seq !== null) req.since = r.seq;
    this.#request(req).catch((err) => {
      if (this.#ws !== ws || !this.rooms.has(room) || err.code === 'network') return;
      if (RETRYABLE.has(err.code)) {
        this.#schedule(`join:${room}`, this.#backoff(attempt + 1, 250, 5000), () => {
          if (this.#ws === ws && this.rooms.has(room)) this.#wsJoin(room, attempt + 1);
        });
        return;
      }
      this.#emit('error', { code: err.code, message: err.message, room, op: 'join' });
    });
  }

  #request(obj) {
    return new Promise((resolve, reject) => {
      const ref = this.#nextRef++;
      const timer = setTimeout(() => {
        this.#refs.delete(ref);
        reject(Object.assign(new Error('no reply'), { code: 'timeout' }));
      }, this.#o.requestTimeout);
      this.#refs.set(ref, { resolve, reject, timer });
      if (!this.#wsSend({ ...obj, ref })) {
        clearTimeout(timer);
        this.#refs.delete(ref);
        reject(Object.assign(new Error('not connected'), { code: 'network' }));
      }
    });
  }

  #failRequests(why) {
    for (const [ref, p] of this.#refs) {
      clearTimeout(p.timer);
      p.reject(Object.assign(new Error(why), { code: 'network' }));
      this.#refs.delete(ref);
    }
  }

  // Liveness, every 5 s: ping after a quiet heartbeat and give up on a
  // socket whose pong does not come. A timer that fired far too late means
  // the machine slept: check the connection at once (a parked long-poll
  // from before the sleep is started afresh).
  #checkAlive() {
    const now = Date.now();
    const woke = now - this.#tick > 20000;
    this.#tick = now;
    if (this.#ws) {
      if (this.#pingAt && now - this.#pingAt > 10000) {
        this.#pingAt = 0;
        const ws = this.#ws;
        this.#ws = null;
        ws.onmessage = ws.onclose = null;
        try { ws.close(); } catch { /* ignore */ }
        this.#wsLost(1006);
      } else if (woke || now - this.#lastRx > this.#heartbeat + 5000) {
        this.#ping();
      }
    } else if (woke) {
      this.#poller?.kick(true);
      this.reconnectNow();
    }
  }

  #ping() {
    if (this.#pingAt || !this.#ws) return;
    this.#pingAt = Date.now();
    this.#request({ op: 'ping' }).then(() => { this.#pingAt = 0; }, () => {});
  }

  // ---- long-poll -------------------------------------------------------------------

  #startPoll() {
    if (this.#poller || this.#state === 'closed') return;
    // SSE unless it is off, missing, or failed here before (remembered)
    const sse = this.#sseAllowed() &&
      (this.#remembered() !== 'longpoll' || !this.#o.transports.includes('longpoll'));
    this.#transport = sse ? 'sse' : 'longpoll';
    for (const r of this.rooms.values()) r.synced = false;
    this.#setState(this.#state === 'connecting' ? 'connecting' : this.#lostState(), { transport: this.#transport });
    const poller = this.#poller = new Poller({
      base: this.base,
      name: this.name,
      timeout: this.#o.pollTimeout,
      fetch: this.#o.fetch,
      share: this.#o.sharePoll,
      sse,
      sseTimeout: this.#o.sseTimeout,
      EventSource: this.#o.EventSource,
      fallback: this.#o.transports.includes('longpoll'),
      backoff: (n) => this.#backoff(n),
      onResponse: (resp) => this.#onPoll(resp),
      onStatus: (ok, err, retryIn) => this.#onPollStatus(ok, err, retryIn),
      onMode: (mode) => {
        if (this.#poller !== poller) return;
        this.#transport = mode; // the stream never worked here: long-poll
        this.#remember(mode);
        this.#setState(this.#state, { transport: mode });
      },
    });
    this.#poller.update(this.#cursors());
    this.#poller.start();
  }

  #stopPoll() {
    this.#poller?.stop();
    this.#poller = null;
  }

  #onPollStatus(ok, err, retryIn) {
    if (!this.#poller) return;
    if (ok) {
      const was = this.#state;
      this.#fails = 0;
      if (was !== 'connected') this.#remember(this.#transport);
      this.#setState('connected', was === 'connected' ? {} : { transport: this.#transport });
      if (was !== 'connected') this.#pump();
      return;
    }
    this.#fails++;
    if (err?.status === 401 || err?.status === 403 || err?.status === 400) {
      this.#emit('error', { code: err.code, message: err.message, status: err.status });
    }
    this.#setState(this.#lostState(), { retryIn });
  }

  #onPoll(resp) {
    if (!this.#poller) return;
    if (resp.user || resp.policy) {
      this.#setHello(resp.user || this.user, this.role,
        resp.policy && typeof resp.policy === 'object' ? resp.policy : this.policy);
    }
    for (const [room, m] of Object.entries(resp.members)) {
      this.#applyMembers(room, m.members, m.count, true);
    }
    for (const [room, h] of Object.entries(resp.horizon || {})) this.#horizon(room, h);
    for (const ev of resp.events) this.#onEvent(ev, this.#transport);
    for (const [room, seq] of resp.cursor) {
      const r = this.rooms.get(room);
      if (!r) continue;
      if (r.seq === null) r.seq = seq; // an empty room, or one we just met
      if (!r.synced) {
        r.synced = true;
        this.#emit('joined', { room, seq, members: [...r.members].sort(), count: r.count });
      }
    }
  }

  // ---- events from either transport ------------------------------------------------

  #onEvent(ev, via) {
    const pending = ev.ref !== undefined ? this.#refs.get(ev.ref) : undefined;
    if (pending) {
      this.#refs.delete(ev.ref);
      clearTimeout(pending.timer);
      if (ev.op === 'error') pending.reject(Object.assign(new Error(ev.message || ev.code), { code: ev.code }));
      else pending.resolve(ev);
    }
    switch (ev.op) {
      case 'msg': this.#deliver(ev); break;
      case 'ack': this.#onAck(ev); break;
      case 'reset': {
        // The database went back in time (restored, or a standby that
        // lacked the newest messages took over): what was delivered past
        // ev.seq is not the room's any more. The room continues from
        // ev.seq; the page drops what it shows past it ('reset' event), and
        // the messages that now follow ev.seq arrive as usual, once each.
        const r = this.rooms.get(ev.room);
        if (!r || typeof ev.seq !== 'number') break;
        // 0: everything shown is dropped and the room read afresh (the
        // last messages, as a join without a cursor; older ones by history)
        if (ev.seq === 0) r.seq = null;
        else if (r.seq === null || ev.seq < r.seq) r.seq = ev.seq;
        this.#emit('reset', { room: ev.room, seq: ev.seq });
        break;
      }
      case 'joined': {
        const r = this.rooms.get(ev.room);
        if (!r) break;
        if (r.seq === null && ev.seq === 0) r.seq = 0;
        if (typeof ev.horizon === 'number') this.#horizon(ev.room, ev.horizon);
        r.synced = true;
        this.#membersStale.delete(ev.room);
        this.#applyMembers(ev.room, ev.members, ev.count, false);
        this.#emit('joined', { room: ev.room, seq: ev.seq, members: ev.members || [], count: ev.count });
        this.#emitPresence(ev.room, [], []);
        break;
      }
      case 'presence': {
        const r = this.rooms.get(ev.room);
        if (!r) break;
        if (!Array.isArray(ev.online) && !Array.isArray(ev.offline) && via === 'websocket') {
          // a busy second: only the count. The list is asked again, but
          // not on every such event (docs/client.md, "Presence")
          if (typeof ev.count === 'number') r.count = ev.count;
          this.#membersStale.add(ev.room);
          this.#refreshMembers(ev.room);
          this.#emitPresence(ev.room, [], []);
          break;
        }
        for (const u of ev.online || []) r.members.add(u);
        for (const u of ev.offline || []) r.members.delete(u);
        if (typeof ev.count === 'number') r.count = ev.count;
        this.#emitPresence(ev.room, ev.online || [], ev.offline || []);
        break;
      }
      case 'members':
        this.#membersStale.delete(ev.room);
        this.#applyMembers(ev.room, ev.members, ev.count, true);
        break;
      case 'typing':
        if (this.rooms.has(ev.room) && ev.user !== this.user) {
          this.#emit('typing', { room: ev.room, user: ev.user });
        }
        break;
      case 'error':
        if (!pending) this.#onError(ev);
        break;
      case 'pong': this.#pingAt = 0; break;
      default: break;
    }
  }

  // Asks members of a room whose list is stale: only the focused room (or
  // every room without focus()), while the page is visible, at most once
  // per membersEvery (a later call is made at the end of the interval).
  #refreshMembers(room) {
    if (!this.#membersStale.has(room) || !this.rooms.has(room) || !this.#ws) return;
    if (this.#focus !== undefined && this.#focus !== room) return;
    if (globalThis.document?.visibilityState === 'hidden') return;
    const wait = (this.#membersAt.get(room) ?? -Infinity) + this.#o.membersEvery - Date.now();
    if (wait > 0) {
      if (!this.#timers.has(`members:${room}`)) this.#schedule(`members:${room}`, wait, () => this.#refreshMembers(room));
      return;
    }
    this.#membersAt.set(room, Date.now());
    this.#membersStale.delete(room);
    this.#request({ op: 'members', room }).catch(() => {});
  }

  #applyMembers(room, members, count, emit) {
    const r = this.rooms.get(room);
    if (!r || !Array.isArray(members)) return;
    r.members = new Set(members);
    r.count = typeof count === 'number' ? count : members.length;
    if (emit) this.#emitPresence(room, [], []);
  }

  #emitPresence(room, online, offline) {
    const r = this.rooms.get(room);
    this.#emit('presence', { room, members: [...r.members].sort(), count: r.count, online, offline });
  }

  // Retention removed the room's messages up to h (docs/moderation.md): a
  // cursor below it jumps there, and that is not a gap: 'horizon' says
  // older messages were removed.
  #horizon(room, h) {
    const r = this.rooms.get(room);
    if (!r || typeof h !== 'number' || (r.seq !== null && r.seq >= h)) return;
    const after = r.seq;
    r.seq = h;
    if (after !== null) this.#emit('horizon', { room, horizon: h, after });
  }

  // Exactly once, in order: a message at or below the room's seq was seen.
  #deliver(m) {
    const r = this.rooms.get(m.room);
    if (!r || typeof m.seq !== 'number') return;
    if (r.seq !== null && m.seq <= r.seq) return;
    if (r.seq !== null && m.seq > r.seq + 1) {
      // More was missed than the server replays (500): the page can fetch
      // (after, before) with history().
      this.#emit('gap', { room: m.room, after: r.seq, before: m.seq });
    }
    r.seq = m.seq;
    const key = `${m.room}\n${m.cid}`;
    const item = m.cid ? this.outbox.get(m.cid) : undefined;
    let mine = this.user !== null && m.user === this.user;
    if (m.cid && (this.#acked.get(key) === m.seq || (item && item.room === m.room))) {
      mine = true;
      if (this.user === null) this.user = m.user; // learnt from our own message
    }
    if (mine && item && item.room === m.room) this.#onAck({ room: m.room, cid: m.cid, seq: m.seq, ts: m.ts });
    this.#emit('message', {
      room: m.room, seq: m.seq, user: m.user, text: m.text, ts: m.ts, cid: m.cid, mine,
      edit: m.edit, delete: m.delete, edited: m.edited, deleted: m.deleted,
    });
  }

  // ---- sending ---------------------------------------------------------------------

  #onAck(a) {
    const key = `${a.room}\n${a.cid}`;
    this.#acked.set(key, a.seq);
    if (this.#acked.size > 500) this.#acked.delete(this.#acked.keys().next().value);
    const item = this.outbox.get(a.cid);
    if (!item || item.room !== a.room || item.status === 'failed') return;
    this.outbox.delete(a.cid);
    clearTimeout(item.timer);
    this.#emit('ack', { room: a.room, cid: a.cid, seq: a.seq, ts: a.ts, text: item.text });
  }

  #onError(ev) {
    this.#emit('error', { code: ev.code, message: ev.message });
  }

  // The outbox in order: over WebSocket all at once (one connection keeps
  // the order); over HTTP one request at a time, for the same reason.
  #pump() {
    if (this.#state !== 'connected') return;
    if (this.#ws) {
      for (const item of this.outbox.values()) {
        if (item.status === 'pending') this.#wsSendItem(item);
      }
    } else if (this.#overHttp() && !this.#httpSending) {
      const item = [...this.outbox.values()].find((i) => i.status === 'pending');
      if (item) this.#httpSendItem(item);
    }
  }

  #wsSendItem(item) {
    item.status = 'sending';
    this.#request({ op: 'send', room: item.room, text: item.text, cid: item.cid })
      .then((ack) => this.#onAck(ack), (err) => this.#sendFailed(item, err));
  }

  async #httpSendItem(item) {
    item.status = 'sending';
    this.#httpSending = true;
    let ack = null;
    let error = null;
    try {
      ack = await this.#http('POST', 'send', { room: item.room, text: item.text, cid: item.cid, name: this.name ?? undefined });
    } catch (err) {
      error = err;
    }
    this.#httpSending = false;
    if (ack) this.#onAck(ack);
    else this.#sendFailed(item, error);
    this.#pump();
  }

  #sendFailed(item, err) {
    if (this.outbox.get(item.cid) !== item || item.status !== 'sending') return;
    const code = err?.code || 'network';
    if (code === 'network' || code === 'timeout') {
      // The connection went (or the answer did not come): the next
      // connection sends it again with the same cid.
      item.status = 'pending';
      if (code === 'timeout') this.#pump();
      else if (this.#overHttp()) {
        item.status = 'waiting';
        this.#schedule(`send:${item.cid}`, this.#backoff(++item.tries), () => {
          if (item.status === 'waiting') { item.status = 'pending'; this.#pump(); }
        });
      }
      return;
    }
    if (RETRYABLE.has(code) && ++item.tries <= this.#o.maxSendRetries) {
      item.status = 'waiting';
      this.#emit('error', { code, message: err.message, room: item.room, cid: item.cid, retrying: true });
      this.#schedule(`send:${item.cid}`, this.#backoff(item.tries, 1000), () => {
        if (item.status === 'waiting') { item.status = 'pending'; this.#pump(); }
      });
      return;
    }
    item.status = 'failed';
    this.#emit('failed', { room: item.room, cid: item.cid, text: item.text, code, message: err?.message || code });
  }

  // ---- HTTP ------------------------------------------------------------------------

  async #http(method, path, data) {
    const url = new URL(path, this.base);
    const init = { method, cache: 'no-store', credentials: 'same-origin', headers: { accept: 'application/json', 'x-chat-request': '1' } };
    if (method === 'GET') {
      for (const [k, v] of Object.entries(data)) if (v !== undefined) url.searchParams.set(k, String(v));
    } else {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(data);
    }
    const ctl = new AbortController();
    init.signal = ctl.signal;
    const timer = setTimeout(() => ctl.abort(), this.#o.requestTimeout);
    let res;
    try {
      res = await (this.#o.fetch || fetch)(url, init);
    } catch {
      throw new HttpError(0, { code: ctl.signal.aborted ? 'timeout' : 'network', message: 'network error' });
    } finally {
      clearTimeout(timer);
    }
    if (res.status === 204) return {};
    const body = await res.json().catch(() => null);
    if (!res.ok || !body) throw new HttpError(res.status, body);
    return body;
  }
}
