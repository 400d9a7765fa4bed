// chat-poll.js: the long-poll transport of chat-client.js (GET poll).
//
// Browsers open at most about six HTTP/1.1 connections per host, and a
// parked long-poll holds one for up to 25 s. So the tabs of one origin that
// chat under the same name share ONE poll: they elect a leader with the Web
// Locks API, the leader polls for the union of every tab's rooms (each
// room from the lowest cursor any tab has) and hands each answer to the
// other tabs over a BroadcastChannel. Every tab drops what it has already
// seen by (room, seq), so a cursor that is too low costs a few duplicates on
// the wire and never a duplicate on screen. When the leader closes, its lock
// is released and another tab takes over. Without BroadcastChannel or
// navigator.locks (plain http on a non-local host), each tab polls alone.
//
// Sends, history and typing are short requests made by each tab itself.
//
// With `sse: true` the leader reads GET events (Server-Sent Events) instead
// of polling: one EventSource for the same rooms, whose events are handed
// on exactly like poll answers (the id of each message is the full cursor
// list). A stream that fails before its first "ready" event (a proxy that
// buffers or refuses it) turns this Poller to long-poll for good, and
// onMode('longpoll') says so.
//
// Before its first poll or stream a leader asks `GET poll` without rooms:
// the answer names the user and carries the location's policy (max text,
// read-only, the rooms allowed, the room to open first; docs/protocol.md).
// Every tab gets it as an answer with no events, so a page can drop the
// rooms the site does not allow before they are asked for (a poll with one
// of them would be refused whole), and rooms the policy does not allow are
// never put in a poll.

const BEAT_MS = 15000; // the leader says it is alive at least this often

function parseCursor(s) {
  const out = new Map();
  for (const part of String(s || '').split(',')) {
    const i = part.lastIndexOf(':');
    if (i > 0) out.set(part.slice(0, i), Number(part.slice(i + 1)));
  }
  return out;
}

/**
 * Whether a location's rooms list ($chat_rooms: names, "prefix*" and "*",
 * separated by spaces; docs/protocol.md) allows room.
 */
export function roomAllowed(patterns, room) {
  for (const p of String(patterns ?? '*').split(' ')) {
    if (p === '') continue;
    if (p.endsWith('*') ? room.startsWith(p.slice(0, -1)) : p === room) return true;
  }
  return false;
}

export class HttpError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || (status === 0 ? 'network' : `http_${status}`);
  }
}

/**
 * new Poller({ base, name, timeout, fetch, share, backoff, onResponse, onStatus })
 *   onResponse({ events, cursor: Map, members })  events of this tab's rooms
 *   onStatus(ok, error, retryInMs)
 * update(cursors: Map<room, seq|null>) sets the rooms this tab wants.
 */
export class Poller {
  #o;
  #tab = Math.random().toString(36).slice(2);
  #mine = new Map(); // this tab's rooms -> last seq seen (null: last 50)
  #tabs = new Map(); // leader only: tab id -> Map of its rooms
  #running = false;
  #leading = false;
  #inflight = null; // { ctl, rooms } of the poll on the wire
  #wake = null;
  #channel = null;
  #lockCtl = null;
  #lastLeader = 0;
  #timers = [];
  #lastStatus = null;

  #hello = null; // once asked: { user, policy } (policy null from a server that has none)
  #sse = false; // reading GET events rather than polling
  #sseWorked = false; // a stream said "ready" once

  constructor(options) {
    this.#o = options;
    this.#sse = Boolean(options.sse) && typeof (options.EventSource ?? globalThis.EventSource) === 'function';
    this.key = `chat-poll|${options.base}|${options.name || ''}`;
  }

  get leading() { return this.#leading; }
  get mode() { return this.#sse ? 'sse' : 'longpoll'; }
  get shared() { return this.#channel !== null; }
  get policy() { return this.#hello?.policy ?? null; }

  start() {
    if (this.#running) return;
    this.#running = true;
    const canShare = this.#o.share !== false && typeof BroadcastChannel === 'function' &&
      globalThis.navigator?.locks?.request;
    if (!canShare) {
      this.#lead();
      return;
    }
    this.#channel = new BroadcastChannel(this.key);
    this.#channel.onmessage = (e) => this.#onChannel(e.data);
    this.#lastLeader = Date.now();
    this.#post({ t: 'want', tab: this.#tab, rooms: Object.fromEntries(this.#mine) });
    this.#requestLock(false);
    // A follower whose leader went silent (a frozen tab) takes the lock over.
    this.#timers.push(setInterval(() => {
      const quiet = Date.now() - this.#lastLeader;
      if (!this.#leading && quiet > BEAT_MS * 3 + (this.#o.timeout || 25) * 1000) {
        this.#lastLeader = Date.now();
        this.#requestLock(true);
      }
    }, BEAT_MS));
    this.#pagehide = () => this.#post({ t: 'bye', tab: this.#tab });
    this.#pageshow = () => this.#post({ t: 'want', tab: this.#tab, rooms: Object.fromEntries(this.#mine) });
    globalThis.addEventListener?.('pagehide', this.#pagehide);
    globalThis.addEventListener?.('pageshow', this.#pageshow);
  }

  #pagehide = null;
  #pageshow = null;

  stop() {
    if (!this.#running) return;
    this.#running = false;
    this.#leading = false;
    this.#inflight?.ctl.abort();
    this.#wake?.();
    this.#lockCtl?.abort();
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    if (this.#channel) {
      this.#post({ t: 'bye', tab: this.#tab });
      this.#channel.close();
      this.#channel = null;
      globalThis.removeEventListener?.('pagehide', this.#pagehide);
      globalThis.removeEventListener?.('pageshow', this.#pageshow);
    }
  }

  // Poll again now: after the browser came back online, say. With `restart`,
  // a poll on the wire is given up too (it may have died while the machine slept).
  kick(restart = false) {
    if (restart && this.#inflight) {
      this.#inflight.restart = true;
      this.#inflight.ctl.abort();
    }
    this.#wake?.();
  }

  update(cursors) {
    this.#mine = new Map(cursors);
    if (this.#leading) {
      this.#tabs.set(this.#tab, this.#mine);
      this.#changed();
    }
    else this.#post({ t: 'want', tab: this.#tab, rooms: Object.fromEntries(this.#mine) });
  }

  // ---- leader ---------------------------------------------------------------

  #requestLock(steal) {
    this.#lockCtl?.abort();
    const ctl = this.#lockCtl = new AbortController();
    const opts = steal ? { steal: true } : { signal: ctl.signal };
    navigator.locks.request(this.key, opts, () => (this.#running ? this.#lead() : null))
      .catch(() => {
        // Our lock was stolen by a tab that thought we were frozen: follow.
        if (this.#leading && this.#running) {
          this.#leading = false;
          this.#inflight?.ctl.abort();
          this.#wake?.();
          this.#requestLock(false);
        }
      });
  }

  async #lead() {
    this.#leading = true;
    this.#tabs = new Map([[this.#tab, this.#mine]]);
    let beat = null;
    if (this.#channel) {
      this.#post({ t: 'who' });
      beat = setInterval(() => this.#post({ t: 'beat' }), BEAT_MS);
    }
    try {
      while (this.#running && this.#leading) {
        if (this.#sse) await this.#streamLoop();
        else await this.#loop();
        if (this.#sse) break; // stopped leading; else: turned to long-poll
      }
    } finally {
      clearInterval(beat);
      this.#leading = false;
    }
  }

  // The rooms parameter: each room from the lowest cursor of any tab; a
  // room some tab has never seen goes without one (its last 50 at once).
  #rooms() {
    const want = new Map();
    const policy = this.policy;
    for (const rooms of this.#tabs.values()) {
      for (const [room, seq] of rooms) {
        if (policy && !roomAllowed(policy.rooms, room)) continue; // refused whole otherwise
        if (!want.has(room)) want.set(room, seq);
        else if (seq === null || want.get(room) === null) want.set(room, null);
        else want.set(room, Math.min(want.get(room), seq));
      }
    }
    return [...want].sort((a, b) => (a[0] < b[0] ? -1 : 1))
      .map(([room, seq]) => (seq === null ? room : `${room}:${seq}`)).join(',');
  }

  #changed() {
    if (!this.#leading) return;
    if (this.#inflight && this.#inflight.rooms !== null && this.#inflight.rooms !== this.#rooms()) {
      this.#inflight.restart = true;
      this.#inflight.ctl.abort();
    }
    this.#wake?.();
  }

  #idle(ms) {
    return new Promise((resolve) => {
      let timer = null;
      this.#wake = () => { clearTimeout(timer); this.#wake = null; resolve(); };
      if (ms) timer = setTimeout(this.#wake, ms);
    });
  }

  // GET poll without rooms: who we are and the location's policy, at once.
  // Handed to every tab like an answer. Throws an HttpError when refused.
  async #askHello(flight) {
    const url = new URL('poll', this.#o.base);
    if (this.#o.name) url.searchParams.set('name', this.#o.name);
    url.searchParams.set('timeout', '0');
    const timer = setTimeout(() => flight.ctl.abort(), 15000);
    try {
      const res = await (this.#o.fetch || fetch)(url, {
        signal: flight.ctl.signal, cache: 'no-store', credentials: 'same-origin',
        headers: { accept: 'application/json', 'x-chat-request': '1' },
      });
      const body = await res.json().catch(() => null);
      // 400: a server that wants rooms (or a guest without a name, which the
      // poll proper reports): go on without a policy
      if (res.status === 400) {
        this.#hello = { user: null, policy: null };
        return;
      }
      if (!res.ok || !body || !Array.isArray(body.events)) throw new HttpError(res.status, body);
      this.#hello = { user: body.user ?? null, policy: body.policy ?? null };
      this.#answer(body);
    } finally {
      clearTimeout(timer);
    }
  }

  // GET events: one stream for the rooms of every tab, reopened from the
  // cursors when the rooms change or it breaks (after a backoff). Returns
  // when the Poller stops leading, or turns to long-poll (#sse false).
  async #streamLoop() {
    let fails = 0;
    while (this.#running && this.#leading && this.#sse) {
      if (!this.#hello) {
        const flight = this.#inflight = { ctl: new AbortController(), rooms: null, restart: false };
        try {
          await this.#askHello(flight);
        } catch (err) {
          if (this.#inflight === flight) this.#inflight = null;
          if (flight.restart || !this.#running || !this.#leading) continue;
          fails++;
          const delay = this.#o.backoff(fails);
          this.#status(false, err instanceof HttpError ? err : new HttpError(0, null), delay);
          await this.#idle(delay);
          continue;
        }
        if (this.#inflight === flight) this.#inflight = null;
      }
      const rooms = this.#rooms();
      if (!rooms) {
        await this.#idle(0);
        continue;
      }
      const url = new URL('events', this.#o.base);
      url.searchParams.set('rooms', rooms);
      if (this.#o.name) url.searchParams.set('name', this.#o.name);
      const ES = this.#o.EventSource ?? globalThis.EventSource;
      const flight = this.#inflight = { rooms, restart: false, ready: false };
      const ended = await new Promise((resolve) => {
        let es;
        try { es = new ES(url.href); } catch { resolve('error'); return; }
        const finish = (why) => { clearTimeout(timer); es.onmessage = es.onerror = null; es.close(); resolve(why); };
        flight.ctl = { abort: () => finish('aborted') };
        // no "ready" in time: a proxy holds the stream back (buffering it)
        const timer = setTimeout(() => finish('silent'), this.#o.sseTimeout || 5000);
        es.onmessage = (e) => {
          let ev;
          try { ev = JSON.parse(e.data); } catch { return; }
          if (!ev || typeof ev !== 'object') return;
          const resp = ev.op === 'ready'
            ? { events: [], cursor: ev.cursor, members: ev.members || {}, user: ev.user, policy: ev.policy }
            : { events: [ev], cursor: e.lastEventId, members: {} };
          if (ev.op === 'ready') {
            clearTimeout(timer);
            flight.ready = true;
            this.#sseWorked = true;
            fails = 0;
            this.#status(true);
          }
          if (!flight.ready) return;
          this.#answer(resp);
        };
        // the browser would reconnect by itself (with Last-Event-ID); we
        // reopen from our cursors instead, after a backoff, so that a
        // refusal (4xx, 503) is seen and reported
        es.onerror = () => finish('error');
      });
      if (this.#inflight === flight) this.#inflight = null;
      if (ended === 'aborted' && (flight.restart || !this.#running || !this.#leading)) continue;
      if (!this.#sseWorked && this.#o.fallback !== false) {
        this.#sse = false; // never worked here: long-poll from now on
        this.#o.onMode?.('longpoll');
        return;
      }
      fails++;
      const delay = this.#o.backoff(fails);
      this.#status(false, new HttpError(0, { code: 'network', message: `event stream ${ended}` }), delay);
      await this.#idle(delay);
    }
  }

  // An answer (of a poll, or one event of a stream): every tab gets it.
  #answer(resp) {
    if (resp.policy) this.#hello = { user: resp.user, policy: resp.policy };
    const cursor = parseCursor(resp.cursor);
    for (const tabRooms of this.#tabs.values()) {
      for (const [room, seq] of cursor) {
        if (tabRooms.has(room) && (tabRooms.get(room) === null || tabRooms.get(room) < seq)) {
          tabRooms.set(room, seq);
        }
      }
    }
    this.#post({ t: 'resp', resp });
    this.#deliver(resp, cursor);
  }

  async #loop() {
    let fails = 0;
    let quick = true; // the first poll (and the first after a failure) does
    // not park: it answers at once, which tells that we are connected.
    while (this.#running && this.#leading && !this.#sse) {
      const rooms = this.#hello ? this.#rooms() : null;
      if (!this.#hello) {
        const flight = this.#inflight = { ctl: new AbortController(), rooms: null, restart: false };
        try {
          await this.#askHello(flight);
        } catch (err) {
          if (flight.restart || !this.#running || !this.#leading) continue;
          fails++;
          const delay = this.#o.backoff(fails);
          this.#status(false, err instanceof HttpError ? err : new HttpError(0, null), delay);
          await this.#idle(delay);
          continue;
        } finally {
          if (this.#inflight === flight) this.#inflight = null;
        }
        fails = 0;
        this.#status(true);
        continue;
      }
      if (!rooms) {
        await this.#idle(0);
        continue;
      }
      const timeout = quick ? 0 : this.#o.timeout || 25;
      const url = new URL('poll', this.#o.base);
      url.searchParams.set('rooms', rooms);
      if (this.#o.name) url.searchParams.set('name', this.#o.name);
      url.searchParams.set('timeout', String(timeout));
      const flight = this.#inflight = { ctl: new AbortController(), rooms, restart: false };
      const timer = setTimeout(() => flight.ctl.abort(), (timeout + 15) * 1000);
      let resp;
      try {
        const res = await (this.#o.fetch || fetch)(url, {
          signal: flight.ctl.signal, cache: 'no-store', credentials: 'same-origin',
          headers: { accept: 'application/json', 'x-chat-request': '1' },
        });
        const body = await res.json().catch(() => null);
        if (!res.ok || !body || !Array.isArray(body.events)) throw new HttpError(res.status, body);
        resp = body;
      } catch (err) {
        if (flight.restart || !this.#running || !this.#leading) continue;
        // refused whole (403: the site's rooms changed under us): read the
        // policy again before the next poll
        if (err instanceof HttpError && err.status === 403) this.#hello = null;
        fails++;
        quick = true;
        const delay = this.#o.backoff(fails);
        this.#status(false, err instanceof HttpError ? err : new HttpError(0, null), delay);
        await this.#idle(delay);
        continue;
      } finally {
        clearTimeout(timer);
        if (this.#inflight === flight) this.#inflight = null;
      }
      fails = 0;
      quick = false;
      this.#status(true);
      // Every tab gets this answer, so every tab's cursor moves with it.
      this.#answer(resp);
    }
  }

  #status(ok, error = null, retryIn = null) {
    this.#lastStatus = { t: 'status', ok, code: error?.code, status: error?.status,
      message: error?.message, retryIn };
    this.#post(this.#lastStatus);
    this.#o.onStatus(ok, error, retryIn);
  }

  // ---- every tab ------------------------------------------------------------

  #deliver(resp, cursor = parseCursor(resp.cursor)) {
    const mineOnly = (room) => this.#mine.has(room);
    const members = {};
    for (const [room, m] of Object.entries(resp.members || {})) if (mineOnly(room)) members[room] = m;
    const cur = new Map([...cursor].filter(([room]) => mineOnly(room)));
    const horizon = {};
    for (const [room, h] of Object.entries(resp.horizon || {})) if (mineOnly(room)) horizon[room] = h;
    this.#o.onResponse({
      events: resp.events.filter((e) => mineOnly(e.room)),
      cursor: cur,
      members,
      horizon,
      user: resp.user,
      policy: resp.policy,
    });
  }

  #post(msg) {
    try { this.#channel?.postMessage(msg); } catch { /* closed */ }
  }

  #onChannel(msg) {
    if (!msg || typeof msg !== 'object' || !this.#running) return;
    if (this.#leading) {
      if (msg.t === 'want') {
        this.#tabs.set(msg.tab, new Map(Object.entries(msg.rooms || {})));
        if (this.#lastStatus) this.#post(this.#lastStatus);
        if (this.policy) this.#post({ t: 'resp', resp: { events: [], cursor: '', members: {}, ...this.#hello } });
        this.#changed();
      } else if (msg.t === 'bye') {
        this.#tabs.delete(msg.tab);
        this.#changed();
      }
      return;
    }
    this.#lastLeader = Date.now();
    if (msg.t === 'resp') {
      const cursor = parseCursor(msg.resp.cursor);
      for (const [room, seq] of cursor) {
        if (this.#mine.has(room) && (this.#mine.get(room) === null || this.#mine.get(room) < seq)) {
          this.#mine.set(room, seq);
        }
      }
      this.#deliver(msg.resp, cursor);
    } else if (msg.t === 'status') {
      this.#o.onStatus(msg.ok, msg.ok ? null : Object.assign(new HttpError(msg.status || 0,
        { code: msg.code, message: msg.message })), msg.retryIn);
    } else if (msg.t === 'who') {
      this.#post({ t: 'want', tab: this.#tab, rooms: Object.fromEntries(this.#mine) });
    }
  }
}
