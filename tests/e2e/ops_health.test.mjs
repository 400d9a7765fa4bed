// Health that cannot lie (issue 11 item 4): the public /chat/health carries
// statuses only; pids, memory, the host and every process are on
// /chat/health/details, which nginx serves only to the addresses
// chat-admin-access.conf allows (this host); chat-fcgi answers details
// only where nginx passes CHAT_ADMIN. Whatever options chat-fcgi was
// started with, it does not call chat-ws up without having seen it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { BASE, VAR, http } from './lib.mjs';
import { startWorker } from './lp_lib.mjs';

// GET through nginx from a chosen local address (127.0.0.2 is "elsewhere":
// every 127/8 address is this machine, but nginx's allow list names 127.0.0.1).
function getFrom(path, localAddress) {
  const u = new URL(BASE + path);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, path: u.pathname, localAddress, timeout: 5000 },
      (res) => {
        let text = '';
        res.on('data', (d) => { text += d; });
        res.on('end', () => {
          let json = null;
          try { json = JSON.parse(text); } catch { /* not JSON */ }
          resolve({ status: res.statusCode, headers: res.headers, text, json });
        });
      });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer in 5 s`)));
    req.on('error', reject);
    req.end();
  });
}

const SECRETS = /"(pid|host|rss_bytes|rss_kib|processes|node|connections)"/;

test('the public health has statuses only; details name the host, memory and every process', async () => {
  const pub = await http('health');
  assert.equal(pub.status, 200, pub.text);
  assert.doesNotMatch(pub.text, SECRETS, 'nothing but statuses in public');
  assert.equal(pub.json.backends.ws.status, 'ok');

  const d = await http('health/details');
  assert.equal(d.status, 200, d.text);
  assert.equal(typeof d.json.host, 'string');
  assert.ok(d.json.host.length > 0);
  assert.ok(d.json.backends.fcgi.rss_bytes > 0);
  const daemons = new Set(d.json.processes.map((p) => p.daemon));
  assert.deepEqual([...daemons].sort(), ['fcgi', 'ws'], 'both daemons listed');
  assert.ok(d.json.processes.some((p) => p.pid === d.json.backends.fcgi.pid), 'this worker among them');
  assert.ok(d.json.processes.every((p) => p.rss_bytes > 0 && p.pid > 0));
});

test('details and metrics are refused to another address; the public health is not', async () => {
  for (const path of ['health/details', 'metrics']) {
    const r = await getFrom(path, '127.0.0.2');
    assert.equal(r.status, 403, `${path} from 127.0.0.2: ${r.text.slice(0, 200)}`);
    assert.doesNotMatch(r.text, SECRETS);
    assert.equal((await getFrom(path, '127.0.0.1')).status, 200, `${path} from 127.0.0.1`);
  }
  const pub = await getFrom('health', '127.0.0.2');
  assert.equal(pub.status, 200);
  assert.equal(pub.json.status, 'ok');
});

test('chat-fcgi gives details and metrics only where nginx says CHAT_ADMIN on', async () => {
  const w = await startWorker(['--ws-health', `${VAR}/run/ws.sock`]);
  try {
    const plain = await w.request('health/details');
    assert.doesNotMatch(plain.text, SECRETS, 'a location without CHAT_ADMIN gets statuses');
    const spoof = await w.request('health/details', { params: { HTTP_CHAT_ADMIN: 'on', CHAT_ADMIN: 'yes' } });
    assert.doesNotMatch(spoof.text, SECRETS, 'a client header or another value is not "on"');
    const m = await w.request('metrics');
    assert.equal(m.status, 403, m.text);
    assert.equal(m.json.code, 'forbidden');
    const admin = await w.request('health/details', { params: { CHAT_ADMIN: 'on' } });
    assert.equal(admin.json.backends.fcgi.pid, w.pid);
  } finally {
    await w.stop();
  }
});

test('without --ws-health chat-fcgi reports chat-ws from its processes, and 503 when it sees none', async () => {
  const empty = await mkdtemp(`${tmpdir()}/chat-metrics-`);
  const seen = await startWorker([]); // metrics beside its socket: the stack's chat-ws is there
  const blind = await startWorker(['--metrics-dir', empty]);
  try {
    const a = await seen.request('health');
    assert.equal(a.status, 200, a.text);
    assert.equal(a.json.backends.ws.status, 'ok');
    const b = await blind.request('health');
    assert.equal(b.status, 503, `no chat-ws seen, no probe: not ok (${b.text})`);
    assert.equal(b.json.status, 'down');
    assert.equal(b.json.backends.ws.status, 'unknown');
    // nginx's own probe of chat_ws (auth_request) is what the shipped
    // location passes as CHAT_HEALTH_WS on
    const c = await blind.request('health', { params: { CHAT_HEALTH_WS: 'on' } });
    assert.equal(c.status, 200, c.text);
  } finally {
    await seen.stop();
    await blind.stop();
    await rm(empty, { recursive: true, force: true });
  }
});
