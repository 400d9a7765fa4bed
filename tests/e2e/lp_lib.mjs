// Long-poll helpers of the black-box suites: a poller that keeps its
// cursor like the browser client does, and a sender that retries with the
// same cid. No sleeps for synchronization: waits are for events, bounded by
// deadlines that fail the test.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { rm } from 'node:fs/promises';
import { BASE, BIN, DATABASE_URL, VAR, http, waitUntil, withTimeout } from './lib.mjs';

export { waitUntil };

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
  // X-Chat-Request: what the shipped clients send (a cross-site page cannot)
  const res = await fetch(`${base}poll?${query}`, { signal, headers: { 'x-chat-request': '1', ...headers } });
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

// POST send; repeats with the same cid, as the client does, on 503
// (database away) for up to retryMs and on 429 (rate_limited: the worker
// allows 10 sends a second per client) for up to limitedMs. A 429 stores
// nothing, so repeating it is always safe.
export async function send(room, text, {
  name, cid, base = BASE, headers, retryMs = 0, limitedMs = 10000,
} = {}) {
  const body = { room, text };
  if (name) body.name = name;
  if (cid) body.cid = cid;
  const t0 = Date.now();
  let backoff = 50;
  for (;;) {
    const r = await request(base, 'send', { method: 'POST', body, headers })
      .catch((e) => ({ status: 0, e }));
    const limit = r.status === 429 ? limitedMs : r.status === 503 || r.status === 0 ? retryMs : -1;
    if (Date.now() - t0 >= limit) return r;
    await new Promise((res) => setTimeout(res, backoff)); // backoff, as the client does
    backoff = Math.min(backoff * 2, 500);
  }
}

// Any request to another server (the policy servers of nginx.test.conf).
export async function request(base, path, { method = 'GET', body, headers = {}, type } = {}) {
  const h = { 'x-chat-request': '1', ...headers };
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
  const r = await http('health/details');
  return r.json?.backends?.fcgi?.parked;
}

// ---- FastCGI straight to a worker (no nginx) --------------------------------
// A tiny FastCGI client (one request per connection, as nginx's
// fastcgi_keep_conn off): lets a test talk to a chat-fcgi of its own, and
// set what nginx would (REMOTE_ADDR, CHAT_USER, ...).

const FCGI = { BEGIN: 1, END: 3, PARAMS: 4, STDIN: 5, STDOUT: 6, STDERR: 7 };

function record(type, content = Buffer.alloc(0), id = 1) {
  const pad = (8 - (content.length % 8)) % 8;
  const h = Buffer.alloc(8);
  h.writeUInt8(1, 0);
  h.writeUInt8(type, 1);
  h.writeUInt16BE(id, 2);
  h.writeUInt16BE(content.length, 4);
  h.writeUInt8(pad, 6);
  return Buffer.concat([h, content, Buffer.alloc(pad)]);
}

function nvLength(n) {
  if (n < 128) return Buffer.from([n]);
  const b = Buffer.alloc(4);
  b.writeUInt32BE((n | 0x80000000) >>> 0);
  return b;
}

function encodeParams(params) {
  const parts = [];
  for (const [k, v] of Object.entries(params)) {
    const kb = Buffer.from(k);
    const vb = Buffer.from(String(v));
    parts.push(nvLength(kb.length), nvLength(vb.length), kb, vb);
  }
  return Buffer.concat(parts);
}

function chunks(type, buf) {
  const out = [];
  for (let i = 0; i < buf.length; i += 65528) out.push(record(type, buf.subarray(i, i + 65528)));
  out.push(record(type));
  return out;
}

// Parses the CGI-style answer ("Status: 200 OK\r\nheaders\r\n\r\nbody").
function parseAnswer(raw) {
  const text = raw.toString('utf8');
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  const body = end < 0 ? '' : text.slice(end + 4);
  const headers = new Map();
  for (const line of head.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) headers.set(line.slice(0, i).toLowerCase(), line.slice(i + 1).trim());
  }
  let json = null;
  try { json = JSON.parse(body); } catch { /* not JSON */ }
  return { status: Number((headers.get('status') || '200').split(' ')[0]), headers, text: body, json };
}

// One request to the FastCGI socket at path. target: 'poll?rooms=a:0',
// 'send', ... (under /chat/). params: more FastCGI parameters (REMOTE_ADDR,
// CHAT_USER, ...). Resolves with { status, headers (a Map), text, json };
// rejects if the worker closes without an answer. signal aborts (closes);
// onStdout(bytes) is called on each STDOUT record (a stream's head, its events).
export function fcgi(path, target, { method, body, params = {}, signal, type, onStdout } = {}) {
  const [uri, query = ''] = target.split('?');
  const data = body === undefined ? Buffer.alloc(0)
    : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const all = {
    REQUEST_METHOD: method || (body === undefined ? 'GET' : 'POST'),
    DOCUMENT_URI: `/chat/${uri}`, SCRIPT_NAME: `/chat/${uri}`, REQUEST_URI: `/chat/${target}`,
    QUERY_STRING: query, SERVER_PROTOCOL: 'HTTP/1.1', REMOTE_ADDR: '127.0.0.1',
    HTTP_X_CHAT_REQUEST: '1',
    CONTENT_LENGTH: String(data.length),
    ...(body !== undefined ? { CONTENT_TYPE: type || 'application/json' } : {}),
    ...params,
  };
  return new Promise((resolve, reject) => {
    const sock = net.connect(path);
    let buf = Buffer.alloc(0);
    const out = [];
    let ended = false;
    const onAbort = () => { sock.destroy(); reject(new Error('aborted')); };
    signal?.addEventListener('abort', onAbort, { once: true });
    sock.on('connect', () => {
      const begin = Buffer.alloc(8);
      begin.writeUInt16BE(1, 0); // FCGI_RESPONDER, flags 0: close after the answer
      sock.write(Buffer.concat([record(FCGI.BEGIN, begin), ...chunks(FCGI.PARAMS, encodeParams(all)),
        ...chunks(FCGI.STDIN, data)]));
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 8) {
        const len = buf.readUInt16BE(4);
        const total = 8 + len + buf.readUInt8(6);
        if (buf.length < total) break;
        const type = buf.readUInt8(1);
        if (type === FCGI.STDOUT) { out.push(buf.subarray(8, 8 + len)); onStdout?.(buf.subarray(8, 8 + len)); }
        if (type === FCGI.END) ended = true;
        buf = buf.subarray(total);
      }
    });
    sock.on('error', (e) => { signal?.removeEventListener('abort', onAbort); reject(e); });
    sock.on('close', () => {
      signal?.removeEventListener('abort', onAbort);
      if (ended) resolve(parseAnswer(Buffer.concat(out)));
      else reject(new Error(`worker closed ${path} without an answer`));
    });
  });
}

// Retries check() (which resolves truthy when the condition holds) until
// it holds or ms pass; resolves with its value.

export function sanitizerReports(log) {
  return log.split('\n').filter((l) => /AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer/.test(l));
}

// A chat-fcgi of the test's own on a unix socket next to the stack's
// (CHAT_BIN, CHAT_VAR, DATABASE_URL), with extra options. socket: 'listen'
// (--listen PATH), 'spawn-fcgi' (spawn-fcgi -n: the socket is its fd 0) or
// 'none' (neither: fd 0 is /dev/null).
let workerCounter = 0;
export async function startWorker(args = [], { socket = 'listen' } = {}) {
  const path = `${VAR}/run/lp-test-${process.pid}-${workerCounter++}.sock`;
  const argv = ['--db', DATABASE_URL, '--threads', '2', ...args];
  const stdio = ['ignore', 'ignore', 'pipe'];
  const proc = socket === 'spawn-fcgi'
    ? spawn('spawn-fcgi', ['-n', '-s', path, '-M', '0600', '--', `${BIN}/chat-fcgi`, ...argv], { stdio })
    : spawn(`${BIN}/chat-fcgi`, [...(socket === 'listen' ? ['--listen', path] : []), ...argv], { stdio });
  let log = '';
  let ready;
  const up = new Promise((res) => { ready = res; });
  proc.stderr.on('data', (d) => {
    log += d.toString();
    if (log.includes('rate limits per client')) ready(); // logged once its threads run
  });
  const exited = new Promise((res) => proc.once('exit', (code, sig) => res({ code, sig, at: Date.now() })));
  const reap = () => proc.kill('SIGKILL'); // a failed test must not leave it behind
  process.once('exit', reap);
  exited.then(() => process.off('exit', reap));
  await withTimeout(Promise.race([up, exited.then((e) => {
    throw new Error(`chat-fcgi exited ${JSON.stringify(e)}: ${log}`);
  })]), 20000, 'test worker start');
  const w = {
    path,
    pid: proc.pid,
    exited,
    log: () => log,
    request: (target, opts) => fcgi(path, target, opts),
    async health() {
      return (await fcgi(path, 'health/details', { params: { CHAT_ADMIN: 'on' } })).json.backends.fcgi;
    },
    // SIGTERM; resolves with { code, sig, ms } once it has exited.
    async stop(ms = 10000) {
      const t0 = Date.now();
      proc.kill('SIGTERM');
      const e = await withTimeout(exited, ms, 'test worker exit');
      await rm(path, { force: true });
      return { ...e, ms: e.at - t0 };
    },
  };
  return w;
}
