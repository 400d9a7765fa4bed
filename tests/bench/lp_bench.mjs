// Long-poll benchmark (not a test): parks many polls in one chat-fcgi
// process through nginx, reports its memory and threads, then measures
// wake-up latency: the time from a send (POST /chat/send issued) to a
// parked poll's answer arriving at its client.
//
//   cd tests && CHAT_URL=http://127.0.0.1:8080/chat/ node bench/lp_bench.mjs \
//       [--polls 10000] [--rooms 100] [--light-polls 10] [--light-sends 100]
//
// Needs `ulimit -n` above polls + a margin (the stack raises nginx's). The
// client ramps up in batches so that nginx never finds the worker's listen
// backlog full.
import { agent, health, numericArgs, procStatus, request, sleep, waitParked } from './http_lib.mjs';

const args = numericArgs();
const POLLS = args.polls ?? 10000;
const ROOMS = args.rooms ?? 100;
const LIGHT_POLLS = args['light-polls'] ?? 10;
const LIGHT_SENDS = args['light-sends'] ?? 100;
const tag = `bench-${process.pid}-${Date.now().toString(36)}`;

// A client that polls its room from its cursor until a message arrives;
// resolves with the time it arrived.
async function pollUntilMessage(room, name, counters) {
  let cursor = 0;
  for (;;) {
    let r;
    try {
      r = await request(`poll?rooms=${room}:${cursor}&name=${name}&timeout=120`);
    } catch {
      counters.errors++;
      await sleep(100);
      continue;
    }
    if (r.status !== 200) {
      counters.errors++;
      await sleep(100);
      continue;
    }
    const msg = r.json.events.find((e) => e.op === 'msg');
    if (msg) return { at: r.at, seq: msg.seq };
    counters.repolls++;
    cursor = Number(r.json.cursor.split(':').pop());
  }
}

function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, median: +q(0.5).toFixed(2), p90: +q(0.9).toFixed(2), p99: +q(0.99).toFixed(2), max: +s[s.length - 1].toFixed(2) };
}

async function heavy() {
  const h0 = await health();
  const pid = h0.backends.fcgi.pid;
  const before = procStatus(pid);
  const counters = { errors: 0, repolls: 0 };
  const rooms = Array.from({ length: ROOMS }, (_, i) => `${tag}-r${i}`);
  const clients = [];
  const t0 = Date.now();
  for (let i = 0; i < POLLS; i += 500) {
    for (let k = i; k < Math.min(POLLS, i + 500); k++) {
      clients.push({ room: rooms[k % ROOMS], p: pollUntilMessage(rooms[k % ROOMS], `u${k}`, counters) });
    }
    await waitParked(h0.backends.fcgi.parked + Math.min(POLLS, i + 500), 60000);
  }
  // presence of the newcomers reaches the parked polls once; let it settle
  let h = await waitParked(h0.backends.fcgi.parked + POLLS, 60000);
  await sleep(3000);
  h = await waitParked(h0.backends.fcgi.parked + POLLS, 60000);
  const parkedAt = procStatus(pid);
  console.log(JSON.stringify({
    phase: 'parked', polls: POLLS, rooms: ROOMS, ramp_s: (Date.now() - t0) / 1000,
    worker_pid: pid, parked: h.backends.fcgi.parked,
    rss_before_kib: before.rssKiB, rss_parked_kib: parkedAt.rssKiB,
    rss_per_poll_bytes: Math.round(((parkedAt.rssKiB - before.rssKiB) * 1024) / POLLS),
    threads: parkedAt.threads, max_open_files: parkedAt.maxFiles,
    client_errors: counters.errors, repolls_from_presence: counters.repolls,
  }));
  // wake every poll: one message per room, sent one after the other
  const sentAt = new Map();
  for (const [k, room] of rooms.entries()) {
    sentAt.set(room, performance.now());
    // one sender per send: a single guest would hit the send rate limit
    const r = await request('send', { method: 'POST', body: { room, text: 'wake', name: `bench${k}` } });
    if (r.status !== 200) throw new Error(`send ${r.status}`);
  }
  const done = await Promise.all(clients.map(async (c) => ({ room: c.room, ...(await c.p) })));
  const lat = done.map((d) => d.at - sentAt.get(d.room));
  console.log(JSON.stringify({ phase: 'wake-all', wakeups: lat.length, latency_ms: stats(lat), rss_after_kib: procStatus(pid).rssKiB }));
}

async function light() {
  const room = `${tag}-light`;
  const lat = [];
  let cursor = 0;
  const counters = { errors: 0, repolls: 0 };
  for (let s = 0; s < LIGHT_SENDS; s++) {
    const h0 = await health();
    const polls = Array.from({ length: LIGHT_POLLS }, (_, i) => (async () => {
      for (;;) {
        const r = await request(`poll?rooms=${room}:${cursor}&name=l${i}&timeout=60`);
        const msg = r.json?.events.find((e) => e.op === 'msg');
        if (msg) return r.at;
        counters.repolls++;
      }
    })());
    await waitParked(h0.backends.fcgi.parked + LIGHT_POLLS, 10000);
    const t = performance.now();
    const r = await request('send', { method: 'POST', body: { room, text: `m${s}`, name: `bench${s}` } });
    cursor = r.json.seq;
    for (const at of await Promise.all(polls)) lat.push(at - t);
  }
  console.log(JSON.stringify({ phase: 'light', polls_per_send: LIGHT_POLLS, sends: LIGHT_SENDS, latency_ms: stats(lat) }));
}

await heavy();
await light();
agent.destroy();
