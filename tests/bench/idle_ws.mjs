// How many idle WebSockets a running stack holds from one client host.
//
//   scripts/node tests/bench/idle_ws.mjs [URL] [N]
//     URL  ws://127.0.0.1:8080/chat/ws (loopback only)   N  20000 (at most 30000)
//   env: IDLE_PROCS (client processes, default 3: one process cannot hold
//        20,000 sockets under a 20,000 open-files limit), IDLE_HOLD_S (5),
//        IDLE_DEADLINE_S (240), NGINX_PID_FILE (to count each nginx worker's
//        connections, e.g. var/dev/run/nginx.pid).
//
// Opens N WebSockets (at most 400 handshakes in flight), each counted once
// the server's hello arrives; holds them IDLE_HOLD_S seconds and counts how
// many are still open; prints one JSON line; closes everything and exits.
// Bounded in count and time; loopback addresses only.
import { fork } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import WebSocket from 'ws';

const url = process.argv[2] || 'ws://127.0.0.1:8080/chat/ws';
const total = Math.min(Number(process.argv[3] || 20000), 30000);
const host = new URL(url).hostname;
if (!/^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(host)) {
  console.error(`idle_ws: loopback only, not ${host}`);
  process.exit(2);
}
const holdMs = Number(process.env.IDLE_HOLD_S || 5) * 1000;
const deadline = Date.now() + Number(process.env.IDLE_DEADLINE_S || 240) * 1000;

async function child(n) {
  const socks = [];
  let opened = 0, failed = 0, inflight = 0, started = 0;
  const reasons = {};
  await new Promise((done) => {
    const next = () => {
      while (inflight < 400 / Number(process.env.IDLE_PROCS || 3) + 1 && started < n && Date.now() < deadline) {
        started++;
        inflight++;
        const ws = new WebSocket(`${url}?name=idle${process.pid}x${started}`, { perMessageDeflate: false, handshakeTimeout: 30000 });
        let settled = false;
        const settle = (ok, why) => {
          if (settled) return;
          settled = true;
          inflight--;
          if (ok) opened++;
          else {
            failed++;
            reasons[why] = (reasons[why] || 0) + 1;
          }
          if (opened + failed === started && (started === n || Date.now() >= deadline)) done();
          else next();
        };
        ws.on('message', () => settle(true));
        ws.on('error', (e) => settle(false, e.code || e.message.slice(0, 60)));
        ws.on('close', (code) => settle(false, `close ${code}`));
        socks.push(ws);
      }
      if (Date.now() >= deadline && inflight === 0) done();
    };
    next();
  });
  await new Promise((r) => setTimeout(r, holdMs)); // the holding is what is measured
  const open = socks.filter((s) => s.readyState === WebSocket.OPEN).length;
  process.send({ opened, failed, open, reasons });
  // held until every client has counted and nginx's workers are counted
  process.on('message', () => {
    for (const s of socks) s.terminate();
    setTimeout(() => process.exit(0), 500);
  });
}

function nginxWorkerConns() {
  const f = process.env.NGINX_PID_FILE;
  if (!f) return undefined;
  const master = readFileSync(f, 'utf8').trim();
  const out = {};
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.split(') ')[1].split(' ')[1] !== master) continue;
      out[pid] = readdirSync(`/proc/${pid}/fd`).filter((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:');
        } catch {
          return false;
        }
      }).length;
    } catch {
      /* gone */
    }
  }
  return out;
}

if (process.argv[4] === '--child') {
  await child(total);
} else {
  const procs = Number(process.env.IDLE_PROCS || 3);
  const t0 = Date.now();
  const results = [];
  let perWorker;
  const kids = [];
  await Promise.all(
    Array.from({ length: procs }, (_, i) => {
      const n = Math.floor(total / procs) + (i < total % procs ? 1 : 0);
      return new Promise((resolve) => {
        const c = fork(new URL(import.meta.url).pathname, [url, String(n), '--child']);
        kids.push(c);
        c.on('message', (m) => {
          results.push(m);
          if (results.length < procs) return;
          perWorker = nginxWorkerConns();
          for (const k of kids) k.send('release');
        });
        c.on('exit', resolve);
      });
    }),
  );
  const sum = (k) => results.reduce((a, r) => a + r[k], 0);
  const reasons = {};
  for (const r of results) for (const [k, v] of Object.entries(r.reasons)) reasons[k] = (reasons[k] || 0) + v;
  console.log(
    JSON.stringify({
      url,
      asked: total,
      opened: sum('opened'),
      held: sum('open'),
      failed: sum('failed'),
      reasons,
      nginx_worker_sockets: perWorker,
      seconds: Math.round((Date.now() - t0) / 1000),
    }),
  );
}
