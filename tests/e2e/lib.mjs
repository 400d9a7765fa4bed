// Shared helpers of the black-box suites: where the stack under test is,
// and small promise-based clients. No sleeps: every wait is for an event,
// bounded by a deadline that fails the test.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import WebSocket from 'ws';

export const BASE = process.env.CHAT_URL || 'http://127.0.0.1:8080/chat/';
export const WS_BASE = BASE.replace(/^http/, 'ws');
export const VAR = process.env.CHAT_VAR || new URL('../../var', import.meta.url).pathname;
export const ROOT = process.env.CHAT_ROOT || new URL('../..', import.meta.url).pathname;
export const BIN = process.env.CHAT_BIN || new URL('../../build/release', import.meta.url).pathname;

// The chat prefix of the test server at PORT + offset (tests/nginx.test.conf):
// 1 = authenticated users only, 2 = restricted policy.
export function portBase(offset, scheme = 'http') {
  const u = new URL(BASE);
  u.port = String(Number(u.port) + offset);
  return u.toString().replace(/^http/, scheme);
}
export const DATABASE_URL = process.env.DATABASE_URL || `host=${VAR}/pg/sock user=chat dbname=chat`;
// The private cluster's socket folder and data folder: under VAR, or (as
// root, when the postgres user cannot reach VAR, e.g. under /root) in a
// folder of its own that the stack names in DATABASE_URL's host.
export const PG_SOCK = (DATABASE_URL.match(/(?:^|\s)host=(\S+)/) || [])[1] || `${VAR}/pg/sock`;
export const PG_DATA = PG_SOCK.replace(/\/sock$/, '/data');

const run = promisify(execFile);

// A node-postgres client for the stack's database (DATABASE_URL is a libpq
// keyword/value conninfo); dbname overrides the database.
export async function pgClient(dbname) {
  const { default: pg } = await import('pg');
  const cfg = Object.fromEntries([...DATABASE_URL.matchAll(/(\w+)=(\S+)/g)].map(([, k, v]) => [k, v]));
  return new pg.Client({
    host: cfg.host, port: cfg.port ? Number(cfg.port) : undefined,
    user: cfg.user, database: dbname ?? cfg.dbname, password: cfg.password,
  });
}

// Runs scripts/stack.sh with the stack's VAR (pg-stop, pg-start, ...).
// DATABASE_URL is left out: the script then acts on VAR's own private cluster.
export async function stack(cmd) {
  const { DATABASE_URL: _omit, ...env } = process.env;
  return run(`${ROOT}/scripts/stack.sh`, [cmd], { env: { ...env, VAR } });
}

// A unique room name per test so that tests never see each other's traffic.
let roomCounter = 0;
export function uniqueRoom(prefix = 't') {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${roomCounter++}`;
}

export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// A WebSocket client that queues every JSON event it receives, so a test
// can wait for the next event matching a predicate.
export class Client {
  constructor(ws) {
    this.ws = ws;
    this.events = [];
    this.waiters = [];
    this.closed = null;
    ws.on('message', (data, isBinary) => {
      const ev = isBinary ? { binary: data } : JSON.parse(data.toString('utf8'));
      this.events.push(ev);
      this.#wake();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.#wake();
    });
  }

  // base: another server's ws:// prefix (see portBase), or a full ws+unix URL
  static async connect(query = '', opts = {}, base = WS_BASE) {
    const url = base.startsWith('ws+unix:') ? base : base + 'ws' + (query ? `?${query}` : '');
    const ws = new WebSocket(url, opts);
    const c = new Client(ws);
    await withTimeout(new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    }), 10000, 'websocket open');
    return c;
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }

  #wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  // Resolves with (and removes) the first queued event matching pred.
  async next(pred = () => true, ms = 10000, what = 'event') {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.events.findIndex(pred);
      if (i >= 0) return this.events.splice(i, 1)[0];
      if (this.closed) throw new Error(`closed (${this.closed.code}) while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await withTimeout(new Promise((r) => this.waiters.push(r)), left, what).catch(() => {});
    }
  }

  op(name, ms) {
    return this.next((e) => e.op === name, ms, `op ${name}`);
  }

  async waitClose(ms = 10000) {
    const deadline = Date.now() + ms;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for close');
      await withTimeout(new Promise((r) => this.waiters.push(r)), left, 'close').catch(() => {});
    }
    return this.closed;
  }

  close() {
    this.ws.close();
  }
}

// fetch with JSON body helpers
export async function http(path, { method = 'GET', body, headers = {} } = {}) {
  const res = await fetch(BASE + path, {
    method,
    // X-Chat-Request: what the shipped clients send (a cross-site page cannot)
    headers: { 'x-chat-request': '1', ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, text, json };
}

// Waits until check() (sync or async) gives a truthy value, and returns it;
// looks every 10 ms; throws after ms.
export async function waitUntil(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10)); // between two looks at the condition
  }
}

// A guest on WebSocket, greeted.
export async function wsUser(name) {
  const c = await Client.connect(`name=${name}`);
  await c.op('hello');
  return c;
}

// Sends over WebSocket; a rate_limited answer is retried with the same cid
// after the pause the browser client makes.
export async function wsSend(c, room, text, cid) {
  for (let attempt = 0; ; attempt++) {
    c.send({ op: 'send', room, text, cid, ref: cid });
    const ack = await c.next((e) => (e.op === 'ack' || e.op === 'error') && e.ref === cid, 10000, `ack ${cid}`);
    if (ack.op === 'error' && ack.code === 'rate_limited' && attempt < 50) {
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    if (ack.op !== 'ack') throw new Error(`send refused: ${JSON.stringify(ack)}`);
    return ack;
  }
}
