// SSE benchmark (not a test): GET events against long-poll through nginx.
//   rate:   R readers of one room on one transport, messages sent at a fixed
//           rate; deliveries/s and the latency from a send (POST issued) to
//           its arrival at each reader (p50, p99, max), lost and duplicated.
//   memory: N open streams parked in one chat-fcgi worker: its RSS before
//           and with them (bytes per stream) and its threads.
//
//   cd tests && CHAT_URL=http://127.0.0.1:8080/chat/ node bench/sse_bench.mjs \
//       [--readers 200] [--rate 20] [--seconds 10] [--streams 2000]
//
// One JSON line per phase on stdout (tests/bench/run.sh records them).
import http from 'node:http';
import { BASE, agent, health, numericArgs, procStatus, request, sleep, waitParked } from './http_lib.mjs';

const args = numericArgs();
const READERS = args.readers ?? 200;
const RATE = args.rate ?? 20;
const SECONDS = args.seconds ?? 10;
const STREAMS = args.streams ?? 2000;
const tag = `sseb-${process.pid}-${Date.now().toString(36)}`;

// An open stream: calls onEvent(json, at) per data event. Resolves once "ready".
function stream(query, onEvent) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${BASE}events?${query}`, { agent, headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) { reject(new Error(`events ${res.statusCode}`)); res.resume(); return; }
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        const at = performance.now();
        buf += d;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          if (!data) continue;
          const ev = JSON.parse(data);
          if (ev.op === 'ready') resolve(req);
          onEvent(ev, at);
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}

function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  if (!s.length) return { n: 0 };
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, p50: +q(0.5).toFixed(2), p99: +q(0.99).toFixed(2), max: +s[s.length - 1].toFixed(2) };
}

async function rate(transport) {
  const room = `${tag}-${transport}`;
  const sentAt = new Map(); // seq -> time the send was issued
  const got = Array.from({ length: READERS }, () => new Map()); // seq -> arrival
  const counters = { dups: 0, errors: 0 };
  let stop = false;
  const onMsg = (k, ev, at) => {
    if (ev.op !== 'msg') return;
    if (got[k].has(ev.seq)) counters.dups++;
    else got[k].set(ev.seq, at);
  };
  const h0 = await health();
  const streams = [];
  const loops = [];
  for (let k = 0; k < READERS; k++) {
    if (transport === 'sse') {
      streams.push(await stream(`rooms=${room}:0&name=r${k}`, (ev, at) => onMsg(k, ev, at)));
    } else {
      loops.push((async () => {
        let cursor = `${room}:0`;
        while (!stop) {
          let r;
          try { r = await request(`poll?rooms=${cursor}&name=r${k}&timeout=25`); } catch { counters.errors++; await sleep(50); continue; }
          if (r.status !== 200) { counters.errors++; await sleep(50); continue; }
          for (const ev of r.json.events) onMsg(k, ev, r.at);
          cursor = r.json.cursor;
        }
      })());
    }
  }
  await waitParked(h0.backends.fcgi.parked + READERS, 30000);
  const total = RATE * SECONDS;
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait); // the sending rate, not a wait for a result
    const issued = performance.now();
    // a guest of its own per send: one guest may send 10 a second
    const r = await request('send', { method: 'POST', body: { room, text: `m${i}`, name: `s${i % 50}x${Math.floor(i / 500)}` } });
    if (r.status !== 200) { counters.errors++; continue; }
    sentAt.set(r.json.seq, issued);
  }
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline && got.some((g) => g.size < sentAt.size)) await sleep(50);
  const span = (Math.max(...got.map((g) => Math.max(...g.values()))) - t0) / 1000;
  stop = true;
  for (const s of streams) s.destroy();
  const lat = [];
  let lost = 0;
  for (const g of got) {
    for (const [seq, sent] of sentAt) {
      if (g.has(seq)) lat.push(g.get(seq) - sent);
      else lost++;
    }
  }
  await request(`send`, { method: 'POST', body: { room, text: 'end', name: 'ender' } }); // frees parked polls
  await Promise.race([Promise.all(loops), sleep(5000)]);
  console.log(JSON.stringify({
    phase: `rate-${transport}`, transport, readers: READERS, rate: RATE, messages: sentAt.size,
    deliveries: lat.length, deliveries_per_s: Math.round(lat.length / span), latency_ms: stats(lat),
    lost, dups: counters.dups, errors: counters.errors,
  }));
}

async function memory() {
  const h0 = await health();
  const pid = h0.backends.fcgi.pid;
  const before = procStatus(pid);
  const open = [];
  for (let i = 0; i < STREAMS; i += 250) {
    const batch = [];
    for (let k = i; k < Math.min(STREAMS, i + 250); k++) {
      batch.push(stream(`rooms=${tag}-m${k % 100}:0&name=m${k}`, () => {}));
    }
    open.push(...(await Promise.all(batch)));
  }
  await waitParked(h0.backends.fcgi.parked + STREAMS, 30000);
  await sleep(2000); // presence of the newcomers settles (a quiet moment to read RSS in)
  const after = procStatus(pid);
  for (const s of open) s.destroy();
  console.log(JSON.stringify({
    phase: 'sse-memory', streams: STREAMS, worker_pid: pid, rss_before_kib: before.rssKiB,
    rss_open_kib: after.rssKiB, rss_per_stream_bytes: Math.round(((after.rssKiB - before.rssKiB) * 1024) / STREAMS),
    threads: after.threads,
  }));
}

await rate('sse');
await rate('longpoll');
await memory();
agent.destroy();
