// Long-poll helpers of the black-box suites: a poller that keeps its
// cursor like the browser client does, and a sender that retries with the
// same cid. No sleeps for synchronization: waits are for events, bounded by
// deadlines that fail the test.
import { BASE, http, withTimeout } from './lib.mjs';

export { BASE };

export function cursorString(cursors) {
  return [...cursors].map(([room, seq]) => (seq === undefined ? room : `${room}:${seq}`)).join(',');
}

export function parseCursor(s) {
  const m = new Map();
  for (const part of s.split(',')) {
    const i = part.lastIndexOf(':');
    m.set(part.slice(0, i), Number(part.slice(i + 1)));
  }
  return m;
}

// GET poll once; resolves with { status, json, ms }.
export async function pollOnce(query, { base = BASE, signal, headers } = {}) {
  const t0 = Date.now();
  const res = await fetch(`${base}poll?${query}`, { signal, headers });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, text, json, ms: Date.now() - t0 };
}

// A long-poll client: polls its rooms in a loop from its cursor, keeps
// every event, checks per-room order as it goes.
export class Poller {
  constructor(rooms, { name, base = BASE, timeout, headers, since } = {}) {
    this.base = base;
    this.name = name;
    this.timeout = timeout;
    this.headers = headers;
    this.cursors = new Map(rooms.map((r) => [r, since === undefined ? undefined : since]));
    this.events = [];
    this.msgs = new Map(rooms.map((r) => [r, []]));
    this.errors = [];
    this.waiters = [];
    this.stopped = false;
    this.polls = 0;
    this.controller = null;
  }

  query() {
    const q = new URLSearchParams({ rooms: cursorString(this.cursors) });
    if (this.name) q.set('name', this.name);
    if (this.timeout !== undefined) q.set('timeout', String(this.timeout));
    return q.toString();
  }

  // One poll: applies its events and cursor; returns the answer.
  async once() {
    this.controller = new AbortController();
    const r = await pollOnce(this.query(), {
      base: this.base, signal: this.controller.signal, headers: this.headers,
    });
    this.polls++;
    if (r.status !== 200) throw Object.assign(new Error(`poll ${r.status}: ${r.text}`), { r });
    this.apply(r.json);
    return r;
  }

  apply(json) {
    for (const ev of json.events) {
      if (ev.op === 'msg') {
        const list = this.msgs.get(ev.room);
        const last = list.length ? list[list.length - 1].seq : this.cursors.get(ev.room);
        if (last !== undefined && ev.seq !== last + 1 && list.length) {
          this.errors.push(`room ${ev.room}: seq ${ev.seq} after ${last}`);
        }
        list.push(ev);
      }
      this.events.push(ev);
    }
    for (const [room, seq] of parseCursor(json.cursor)) this.cursors.set(room, seq);
    for (const w of this.waiters.splice(0)) w();
  }

  // Polls until stop(); errors (database away: 503) are retried.
  start() {
    this.loop = (async () => {
      let backoff = 50;
      while (!this.stopped) {
        try {
          await this.once();
          backoff = 50;
        } catch (e) {
          if (this.stopped) break;
          this.lastError = e;
          await new Promise((r) => setTimeout(r, backoff));
          backoff = Math.min(backoff * 2, 1000);
        }
      }
    })();
    return this;
  }

  async stop() {
    this.stopped = true;
    this.controller?.abort();
    await this.loop?.catch(() => {});
  }

  async waitFor(pred, ms = 10000, what = 'poll events') {
    const deadline = Date.now() + ms;
    while (!pred(this)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out waiting for ${what} (last error: ${this.lastError?.message})`);
      }
      await withTimeout(new Promise((r) => this.waiters.push(r)), left, what).catch(() => {});
    }
  }

  texts(room) {
    return this.msgs.get(room).map((m) => m.text);
  }
}

// POST send; with retry=true repeats on 503 (database away) with the same
// cid, as the client does.
export async function send(room, text, { name, cid, base = BASE, headers, retryMs = 0 } = {}) {
  const body = { room, text };
  if (name) body.name = name;
  if (cid) body.cid = cid;
  const deadline = Date.now() + retryMs;
  let backoff = 50;
  for (;;) {
    const r = await request(base, 'send', { method: 'POST', body, headers })
      .catch((e) => ({ status: 0, e }));
    if (r.status !== 503 && r.status !== 0) return r;
    if (Date.now() > deadline) return r;
    await new Promise((res) => setTimeout(res, backoff));
    backoff = Math.min(backoff * 2, 500);
  }
}

// Any request to another server (the policy servers of nginx.test.conf).
export async function request(base, path, { method = 'GET', body, headers = {}, type } = {}) {
  const h = { ...headers };
  if (body !== undefined) h['content-type'] = type || 'application/json';
  const res = await fetch(base + path, {
    method, headers: h,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, text, json };
}

export async function parkedCount() {
  const r = await http('health');
  return r.json?.backends?.fcgi?.parked;
}
