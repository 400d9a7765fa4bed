// A Server-Sent Events reader for the black-box suites (GET events): reads
// the stream with fetch, splits it into events as a browser's EventSource
// does (id, data, comments, retry), keeps the last event id, and checks
// per-room order as it goes. Waits are for events, bounded by deadlines.
import { BASE, withTimeout } from './lib.mjs';

export class SseStream {
  constructor(query, { base = BASE, headers = {}, lastEventId } = {}) {
    this.url = `${base}events?${query}`;
    this.headers = { accept: 'text/event-stream', ...headers };
    if (lastEventId !== undefined) this.headers['last-event-id'] = lastEventId;
    this.events = []; // { id, data (parsed JSON), raw }
    this.comments = [];
    this.lastEventId = lastEventId ?? '';
    this.retry = null;
    this.msgs = new Map(); // room -> [msg]
    this.errors = [];
    this.waiters = [];
    this.ended = false;
    this.ctl = new AbortController();
  }

  // Resolves with the response once the head is in (status, headers).
  async open() {
    const res = await fetch(this.url, { headers: this.headers, signal: this.ctl.signal });
    this.status = res.status;
    this.res = res;
    if (res.status !== 200 || !/^text\/event-stream/.test(res.headers.get('content-type') || '')) {
      this.text = await res.text();
      try { this.json = JSON.parse(this.text); } catch { /* not JSON */ }
      this.ended = true;
      return this;
    }
    this.pump = this.#read(res.body.getReader()).catch(() => {}).finally(() => {
      this.ended = true;
      this.#wake();
    });
    return this;
  }

  async #read(reader) {
    const dec = new TextDecoder();
    let buf = '';
    let ev = { id: null, data: [] };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        if (line === '') {
          if (ev.id !== null) this.lastEventId = ev.id;
          if (ev.data.length) this.#event(ev.id, ev.data.join('\n'));
          ev = { id: null, data: [] };
        } else if (line.startsWith(':')) {
          this.comments.push(line.slice(1).trim());
          this.#wake();
        } else {
          const i = line.indexOf(':');
          const field = i < 0 ? line : line.slice(0, i);
          const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
          if (field === 'id') ev.id = val;
          else if (field === 'data') ev.data.push(val);
          else if (field === 'retry') this.retry = Number(val);
        }
      }
    }
  }

  #event(id, raw) {
    let data = null;
    try { data = JSON.parse(raw); } catch { this.errors.push(`not JSON: ${raw}`); }
    if (data?.op === 'msg') {
      const list = this.msgs.get(data.room) ?? [];
      if (list.length && data.seq !== list[list.length - 1].seq + 1) {
        this.errors.push(`room ${data.room}: seq ${data.seq} after ${list[list.length - 1].seq}`);
      }
      list.push(data);
      this.msgs.set(data.room, list);
    }
    this.events.push({ id, data, raw });
    this.#wake();
  }

  #wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  async waitFor(pred, ms = 10000, what = 'SSE events') {
    const deadline = Date.now() + ms;
    while (!pred(this)) {
      const left = deadline - Date.now();
      if (left <= 0 || this.ended) {
        throw new Error(`${this.ended ? 'stream ended' : 'timed out'} waiting for ${what}`);
      }
      await withTimeout(new Promise((r) => this.waiters.push(r)), left, what).catch(() => {});
    }
  }

  texts(room) {
    return (this.msgs.get(room) ?? []).map((m) => m.text);
  }

  ops(op) {
    return this.events.filter((e) => e.data?.op === op);
  }

  close() {
    this.ctl.abort();
  }
}

export async function openStream(query, opts) {
  return new SseStream(query, opts).open();
}
