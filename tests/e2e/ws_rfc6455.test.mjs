// RFC 6455 conformance of the daemon's codec, byte by byte: in echo mode
// (what Autobahn|Testsuite's sections 1-7 and 10 check), and the chat-mode
// rules through nginx.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { BASE, portBase } from './lib.mjs';
import { Raw } from './ws_raw.mjs';
import { startDaemon } from './daemon.mjs';

const TEXT = 0x1, BIN = 0x2, CONT = 0x0, CLOSE = 0x8, PING = 0x9, PONG = 0xa;
let echo;

before(async () => { echo = await startDaemon(['--echo']); });
after(async () => {
  const exit = await echo.stop();
  assert.equal(exit.code, 0, 'echo daemon exits cleanly on SIGTERM');
});

async function open() {
  const r = await Raw.open({ path: echo.path });
  const h = await r.handshake();
  assert.equal(h.status, 101);
  return r;
}

describe('handshake', () => {
  test('101 with the right Sec-WebSocket-Accept; no extension is negotiated', async () => {
    const r = await Raw.open({ path: echo.path });
    const h = await r.handshake({ key: 'dGhlIHNhbXBsZSBub25jZQ==',
      extra: { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' } });
    assert.equal(h.status, 101);
    assert.equal(h.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    assert.equal(h.headers['upgrade'].toLowerCase(), 'websocket');
    assert.equal(h.headers['sec-websocket-extensions'], undefined);
    r.end();
  });

  for (const [name, opts, status] of [
    ['version 8', { version: '8' }, 426],
    ['no version', { version: null }, 426],
    ['a key of 15 bytes', { key: crypto.randomBytes(15).toString('base64') }, 400],
    ['a key that is not base64', { key: '!!!!!!!!!!!!!!!!!!!!!!==' }, 400],
    ['POST', { raw: 'POST /chat/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n' }, 400],
    ['HTTP/1.0', { raw: 'GET /chat/ws HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n' }, 400],
    ['Connection without upgrade', { raw: 'GET /chat/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n' }, 400],
    ['a plain GET', { raw: 'GET /chat/ws HTTP/1.1\r\nHost: x\r\n\r\n' }, 426],
    ['garbage', { raw: 'HELLO\r\n\r\n' }, 400],
    ['a foreign Origin', { extra: { Origin: 'https://evil.example' } }, 403],
  ]) {
    test(`refused: ${name} -> ${status}`, async () => {
      const r = await Raw.open({ path: echo.path });
      const h = await r.handshake(opts);
      assert.equal(h.status, status);
      if (status === 426 && opts.version !== undefined) assert.equal(h.headers['sec-websocket-version'], '13');
      await r.readToEnd();
      assert.ok(r.ended, 'the connection is closed after a refusal');
    });
  }

  test('same-origin Origin is accepted', async () => {
    const r = await Raw.open({ path: echo.path });
    const h = await r.handshake({ host: 'chat.example:8080', extra: { Origin: 'http://chat.example:8080' } });
    assert.equal(h.status, 101);
    r.end();
  });

  test('a head split byte by byte still upgrades, and a frame right behind it is read', async () => {
    const r = await Raw.open({ path: echo.path });
    const key = crypto.randomBytes(16).toString('base64');
    const head = `GET /chat/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    const all = Buffer.concat([Buffer.from(head), Raw.frame(TEXT, 'right behind')]);
    for (let i = 0; i < head.length - 1; i++) r.write(all.subarray(i, i + 1));
    r.write(all.subarray(head.length - 1));
    assert.equal((await r.readHead(key)).status, 101);
    assert.ok(r.accepted);
    const f = await r.data();
    assert.equal(f.payload.toString(), 'right behind');
    r.end();
  });

  test('a head over 48 KiB gets 431', async () => {
    const r = await Raw.open({ path: echo.path });
    const h = await r.handshake({ extra: { 'X-Padding': 'x'.repeat(50000) } });
    assert.equal(h.status, 431);
    r.end();
  });
});

describe('framing', () => {
  for (const n of [0, 1, 125, 126, 127, 65535, 65536, 300000]) {
    test(`text of ${n} bytes echoes with the right length form`, async () => {
      const r = await open();
      const payload = Buffer.alloc(n, 'a');
      r.send(TEXT, payload);
      const f = await r.data();
      assert.equal(f.opcode, TEXT);
      assert.equal(f.fin, true);
      assert.equal(f.masked, false, 'server frames are never masked');
      assert.ok(f.payload.equals(payload));
      r.end();
    });
  }

  test('binary echoes unchanged', async () => {
    const r = await open();
    const b = crypto.randomBytes(1000);
    r.send(BIN, b);
    const f = await r.data();
    assert.equal(f.opcode, BIN);
    assert.ok(f.payload.equals(b));
    r.end();
  });

  test('many frames in one write, each echoed in order', async () => {
    const r = await open();
    r.write(Buffer.concat(Array.from({ length: 50 }, (_, i) => Raw.frame(TEXT, `m${i}`))));
    for (let i = 0; i < 50; i++) assert.equal((await r.data()).payload.toString(), `m${i}`);
    r.end();
  });

  test('ping is answered with a pong of the same payload', async () => {
    const r = await open();
    r.send(PING, 'are you there?');
    const f = await r.frame();
    assert.equal(f.opcode, PONG);
    assert.equal(f.payload.toString(), 'are you there?');
    r.send(PING, Buffer.alloc(125, 7));
    assert.equal((await r.frame()).payload.length, 125);
    r.end();
  });

  test('an unsolicited pong is ignored', async () => {
    const r = await open();
    r.send(PONG, 'x');
    r.text('still here');
    assert.equal((await r.data()).payload.toString(), 'still here');
    r.end();
  });

  test('fragments reassemble, with a ping in the middle answered at once', async () => {
    const r = await open();
    r.send(TEXT, 'one ', { fin: false });
    r.send(PING, 'mid');
    r.send(CONT, 'two ', { fin: false });
    r.send(CONT, 'three');
    const pong = await r.frame();
    assert.equal(pong.opcode, PONG);
    assert.equal(pong.payload.toString(), 'mid');
    const f = await r.data();
    assert.equal(f.payload.toString(), 'one two three');
    r.end();
  });

  for (const [name, frames, code] of [
    ['an unmasked frame', [Raw.frame(TEXT, 'x', { mask: false })], 1002],
    ['RSV1 set', [Raw.frame(TEXT, 'x', { rsv: 4 })], 1002],
    ['RSV3 set on a ping', [Raw.frame(PING, 'x', { rsv: 1 })], 1002],
    ['reserved data opcode 3', [Raw.frame(3, 'x')], 1002],
    ['reserved control opcode 0xB', [Raw.frame(0xb, 'x')], 1002],
    ['a continuation with nothing to continue', [Raw.frame(CONT, 'x')], 1002],
    ['a new text inside a fragmented one', [Raw.frame(TEXT, 'a', { fin: false }), Raw.frame(TEXT, 'b')], 1002],
    ['a ping of 126 bytes', [Raw.frame(PING, Buffer.alloc(126))], 1002],
    ['a fragmented ping', [Raw.frame(PING, 'x', { fin: false })], 1002],
    ['a close with a 1-byte payload', [Raw.frame(CLOSE, Buffer.from([3]))], 1002],
    ['a 16-bit length for 5 bytes', [Buffer.from([0x81, 0xfe, 0x00, 0x05, 0, 0, 0, 0, 104, 101, 108, 108, 111])], 1002],
    ['a 64-bit length with the top bit set', [Buffer.from([0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])], 1002],
  ]) {
    test(`${name} -> close ${code}`, async () => {
      const r = await open();
      for (const f of frames) r.write(f);
      assert.equal(await r.expectClose(), code);
    });
  }
});

describe('close handshake', () => {
  for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]) {
    test(`close ${code} is echoed and the TCP connection ends`, async () => {
      const r = await open();
      r.close(code, 'bye');
      assert.equal(await r.expectClose(), code);
    });
  }
  for (const code of [0, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2000, 2999, 5000, 65535]) {
    test(`close ${code} is invalid -> 1002`, async () => {
      const r = await open();
      r.close(code);
      assert.equal(await r.expectClose(), 1002);
    });
  }
  test('a close without a code is answered with an empty close', async () => {
    const r = await open();
    r.close();
    assert.equal(await r.expectClose(), 1005);
  });
  test('a close whose reason is not UTF-8 -> 1007', async () => {
    const r = await open();
    r.send(CLOSE, Buffer.from([0x03, 0xe8, 0xff, 0xfe]));
    assert.equal(await r.expectClose(), 1007);
  });
  test('nothing is echoed after the close', async () => {
    const r = await open();
    r.write(Buffer.concat([Raw.frame(CLOSE, Buffer.from([0x03, 0xe8])), Raw.frame(TEXT, 'late')]));
    assert.equal(await r.expectClose(), 1000);
  });
});

describe('UTF-8', () => {
  const valid = ['κόσμε', 'Hello-µ@ßöäüàá-UTF-8!!', '\u{10FFFF}', '\u{FFFF}', '\u{E000}', '\u{1F600} emoji', '\u0080', '\u07FF', '\u0800'];
  for (const s of valid) {
    test(`valid ${JSON.stringify(s)} echoes, whole and split into 1-byte fragments`, async () => {
      const r = await open();
      const b = Buffer.from(s);
      r.send(TEXT, b);
      assert.ok((await r.data()).payload.equals(b));
      for (let i = 0; i < b.length; i++) r.send(i === 0 ? TEXT : CONT, b.subarray(i, i + 1), { fin: i === b.length - 1 });
      assert.ok((await r.data()).payload.equals(b));
      r.end();
    });
  }
  // the decoder stress cases: overlongs, surrogates, out of range, stray bytes
  const invalid = {
    'a lone continuation byte': [0x80],
    'overlong slash (2 bytes)': [0xc0, 0xaf],
    'overlong slash (3 bytes)': [0xe0, 0x80, 0xaf],
    'overlong slash (4 bytes)': [0xf0, 0x80, 0x80, 0xaf],
    'overlong NUL': [0xc0, 0x80],
    'a high surrogate': [0xed, 0xa0, 0x80],
    'a low surrogate': [0xed, 0xbf, 0xbf],
    'a surrogate pair in CESU-8': [0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80],
    'U+110000': [0xf4, 0x90, 0x80, 0x80],
    '5-byte form': [0xf8, 0x88, 0x80, 0x80, 0x80],
    '6-byte form': [0xfc, 0x84, 0x80, 0x80, 0x80, 0x80],
    '0xFE': [0xfe],
    '0xFF': [0xff],
    'a truncated 3-byte sequence then ASCII': [0xe2, 0x82, 0x41],
    'κόσμε then a bad byte': [...Buffer.from('κόσμε'), 0xed, 0xa0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64],
  };
  for (const [name, bytes] of Object.entries(invalid)) {
    test(`invalid: ${name} -> 1007`, async () => {
      const r = await open();
      r.send(TEXT, Buffer.from(bytes));
      assert.equal(await r.expectClose(), 1007);
    });
  }
  test('a message ending inside a code point -> 1007', async () => {
    const r = await open();
    r.send(TEXT, Buffer.from([0x41, 0xe2, 0x82]));
    assert.equal(await r.expectClose(), 1007);
  });
  test('fails fast: a bad first fragment closes before the message ends', async () => {
    const r = await open();
    r.send(TEXT, Buffer.from([0x41, 0xc0, 0xaf]), { fin: false });
    assert.equal(await r.expectClose(), 1007);
  });
  test('a code point split across fragments is fine', async () => {
    const r = await open();
    const e = Buffer.from('€'); // e2 82 ac
    r.send(TEXT, e.subarray(0, 1), { fin: false });
    r.send(CONT, e.subarray(1, 2), { fin: false });
    r.send(CONT, Buffer.concat([e.subarray(2), Buffer.from(' ok')]));
    assert.equal((await r.data()).payload.toString(), '€ ok');
    r.end();
  });
});

describe('chat mode through nginx', () => {
  const target = () => ({ host: '127.0.0.1', port: Number(new URL(BASE).port) });

  async function openChat(path = '/chat/ws?name=rfc') {
    const r = await Raw.open(target());
    const h = await r.handshake({ path, host: `127.0.0.1:${new URL(BASE).port}` });
    assert.equal(h.status, 101);
    const hello = JSON.parse((await r.data()).payload);
    assert.equal(hello.op, 'hello');
    return { r, hello };
  }

  test('binary messages are refused with 1003', async () => {
    const { r } = await openChat();
    r.send(BIN, Buffer.from([1, 2, 3]));
    assert.equal(await r.expectClose(), 1003);
  });

  test('a message over the size bound -> 1009 at its header', async () => {
    const { r } = await openChat();
    r.write(Raw.frame(TEXT, Buffer.alloc(0), { len: 300000 }).subarray(0, 14));
    assert.equal(await r.expectClose(), 1009);
  });

  test('a client-sent X-Chat-User never reaches the daemon', async () => {
    const r = await Raw.open(target());
    const h = await r.handshake({ path: '/chat/ws?name=mallory', host: `127.0.0.1:${new URL(BASE).port}`,
      extra: { 'X-Chat-User': 'admin', 'X-Chat-Readonly': 'off', 'X-Chat-Rooms': '*' } });
    assert.equal(h.status, 101);
    const hello = JSON.parse((await r.data()).payload);
    assert.equal(hello.user, '~mallory');
    r.end();
  });

  test('version and Origin rules hold behind nginx', async () => {
    const port = Number(new URL(BASE).port);
    let r = await Raw.open(target());
    let h = await r.handshake({ host: `127.0.0.1:${port}`, path: '/chat/ws?name=a', version: '12' });
    assert.equal(h.status, 426);
    assert.equal(h.headers['sec-websocket-version'], '13');
    r.end();
    r = await Raw.open(target());
    h = await r.handshake({ host: `127.0.0.1:${port}`, path: '/chat/ws?name=a', extra: { Origin: 'https://evil.example' } });
    assert.equal(h.status, 403);
    r.end();
    r = await Raw.open(target());
    h = await r.handshake({ host: `127.0.0.1:${port}`, path: '/chat/ws?name=a', extra: { Origin: `http://127.0.0.1:${port}` } });
    assert.equal(h.status, 101);
    r.end();
    // the restricted server lists one foreign origin in $chat_origins
    const p2 = Number(new URL(portBase(2)).port);
    r = await Raw.open({ host: '127.0.0.1', port: p2 });
    h = await r.handshake({ host: `127.0.0.1:${p2}`, path: '/chat/ws?name=a', extra: { Origin: 'https://allowed.example' } });
    assert.equal(h.status, 101);
    r.end();
  });

  test('text that is not JSON gets a bad_json error, and the connection stays', async () => {
    const { r } = await openChat();
    r.text('not json');
    const e = JSON.parse((await r.data()).payload);
    assert.deepEqual([e.op, e.code], ['error', 'bad_json']);
    r.text('{"op":"ping","ref":"p"}');
    assert.deepEqual(JSON.parse((await r.data()).payload), { op: 'pong', ref: 'p' });
    r.end();
  });
});
