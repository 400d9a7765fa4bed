// A raw WebSocket peer for the RFC 6455 tests: writes any bytes (masked or
// not, fragmented, malformed) and reads the server's frames as they are.
import net from 'node:net';
import crypto from 'node:crypto';
import { withTimeout } from './lib.mjs';

export const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export function acceptFor(key) {
  return crypto.createHash('sha1').update(key + GUID).digest('base64');
}

// opts: {path} (unix socket) or {host, port}
export class Raw {
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.ended = false;
    this.waiters = [];
    sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.#wake(); });
    sock.on('end', () => { this.ended = true; this.#wake(); });
    sock.on('close', () => { this.ended = true; this.#wake(); });
    sock.on('error', () => { this.ended = true; this.#wake(); });
  }

  static async open(target) {
    const sock = net.connect(target);
    await withTimeout(new Promise((res, rej) => { sock.once('connect', res); sock.once('error', rej); }),
      5000, 'tcp connect');
    sock.setNoDelay(true);
    return new Raw(sock);
  }

  #wake() { for (const w of this.waiters.splice(0)) w(); }

  async #more(ms, what) {
    if (this.ended) throw new Error(`connection ended while waiting for ${what}`);
    await withTimeout(new Promise((r) => this.waiters.push(r)), ms, what);
  }

  write(b) { this.sock.write(b); }

  // Sends a handshake; resolves with {status, headers, head}.
  async handshake({ path = '/chat/ws', host = 'localhost', key = crypto.randomBytes(16).toString('base64'),
    version = '13', extra = {}, raw = null } = {}) {
    if (raw === null) {
      const lines = [`GET ${path} HTTP/1.1`, `Host: ${host}`, 'Upgrade: websocket', 'Connection: Upgrade',
        `Sec-WebSocket-Key: ${key}`];
      if (version !== null) lines.push(`Sec-WebSocket-Version: ${version}`);
      for (const [k, v] of Object.entries(extra)) lines.push(`${k}: ${v}`);
      raw = lines.join('\r\n') + '\r\n\r\n';
    }
    this.write(raw);
    return this.readHead(key);
  }

  async readHead(key, ms = 5000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.buf.indexOf('\r\n\r\n');
      if (i >= 0) {
        const head = this.buf.subarray(0, i).toString('latin1');
        this.buf = this.buf.subarray(i + 4);
        const [status, ...rest] = head.split('\r\n');
        const headers = {};
        for (const l of rest) {
          const c = l.indexOf(':');
          headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
        }
        const code = Number(status.split(' ')[1]);
        if (code === 101 && key) this.accepted = headers['sec-websocket-accept'] === acceptFor(key);
        return { status: code, headers, head };
      }
      await this.#more(deadline - Date.now(), 'response head');
    }
  }

  // The rest of an HTTP response body (until the server closes).
  async readToEnd(ms = 5000) {
    const deadline = Date.now() + ms;
    while (!this.ended) await this.#more(deadline - Date.now(), 'end of response');
    return this.buf.toString('utf8');
  }

  // Client frame: masked unless mask === false.
  static frame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true, rsv = 0, len = null } = {}) {
    payload = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
    const n = len ?? payload.length;
    let hdr;
    if (n < 126) { hdr = Buffer.alloc(2); hdr[1] = n; } else if (n < 65536) {
      hdr = Buffer.alloc(4); hdr[1] = 126; hdr.writeUInt16BE(n, 2);
    } else { hdr = Buffer.alloc(10); hdr[1] = 127; hdr.writeBigUInt64BE(BigInt(n), 2); }
    hdr[0] = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
    if (!mask) return Buffer.concat([hdr, payload]);
    hdr[1] |= 0x80;
    const key = crypto.randomBytes(4);
    const body = Buffer.from(payload);
    for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
    return Buffer.concat([hdr, key, body]);
  }

  send(opcode, payload, opts) { this.write(Raw.frame(opcode, payload, opts)); }
  text(s, opts) { this.send(0x1, Buffer.from(s), opts); }
  close(code, reason = '') {
    const p = code === undefined ? Buffer.alloc(0) : Buffer.concat([Buffer.from([code >> 8, code & 255]), Buffer.from(reason)]);
    this.send(0x8, p);
  }

  // Next server frame: {fin, rsv, opcode, masked, payload}; null when the
  // connection ended before a whole frame.
  async frame(ms = 5000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const f = this.#parse();
      if (f) return f;
      if (this.ended) return null;
      await this.#more(deadline - Date.now(), 'server frame');
    }
  }

  #parse() {
    const b = this.buf;
    if (b.length < 2) return null;
    let n = b[1] & 0x7f, off = 2;
    if (n === 126) { if (b.length < 4) return null; n = b.readUInt16BE(2); off = 4; }
    else if (n === 127) { if (b.length < 10) return null; n = Number(b.readBigUInt64BE(2)); off = 10; }
    const masked = !!(b[1] & 0x80);
    if (masked) off += 4;
    if (b.length < off + n) return null;
    const f = { fin: !!(b[0] & 0x80), rsv: (b[0] >> 4) & 7, opcode: b[0] & 0xf, masked,
      payload: b.subarray(off, off + n) };
    this.buf = b.subarray(off + n);
    return f;
  }

  // Next non-ping/pong data or close frame, answering nothing.
  async data(ms = 5000) {
    for (;;) {
      const f = await this.frame(ms);
      if (!f || (f.opcode !== 0x9 && f.opcode !== 0xa)) return f;
    }
  }

  // Expect the server's close: returns its code (1005 when none), and
  // waits until the TCP connection ends.
  async expectClose(ms = 5000) {
    const f = await this.data(ms);
    if (!f) throw new Error('connection ended without a close frame');
    if (f.opcode !== 0x8) throw new Error(`expected close, got opcode ${f.opcode}: ${f.payload}`);
    const code = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005;
    if (!this.sock.destroyed) this.close(code === 1005 ? undefined : 1000);
    const deadline = Date.now() + ms;
    while (!this.ended) await this.#more(deadline - Date.now(), 'TCP close after close frame');
    return code;
  }

  end() { this.sock.destroy(); }
}
