// Not a test (no .test.mjs): the measurement behind docs/architecture.md's
// members numbers. 1000 members of one room on one chat-ws, each asking
// `members` on every presence event (the shipped client's old habit), while
// an attacker churns names on another node for 5 s; chat_members() calls
// counted by PostgreSQL (track_functions on the daemon's sessions).
//   make start PORT=P VAR=$PWD/var/dev
//   cd tests && CHAT_VAR=$PWD/../var/dev CHAT_BIN=$PWD/../build/release \
//     nice -n 19 ../scripts/node e2e/ws_hostile_bench.mjs      (N=200 for fewer)
import { startDaemon } from './daemon.mjs';
import { Client, DATABASE_URL, pgClient, uniqueRoom } from './lib.mjs';
const N = Number(process.env.N || 1000);
const track = `${DATABASE_URL} options='-c track_functions=all'`;
const db = await pgClient(); await db.connect();
const calls = async () => { await db.query('SELECT pg_stat_clear_snapshot()'); return Number((await db.query("SELECT coalesce(sum(calls),0) n FROM pg_stat_user_functions WHERE funcname='chat_members'")).rows[0].n); };
const c00 = await calls(); const T0 = Date.now();
const d = await startDaemon(['--db', track, '--max-conns', '5000']);
const other = await startDaemon([]);
const room = uniqueRoom('m1000');
let asked = 0, answered = 0;
const cs = [];
for (let i = 0; i < N; i++) {
  const c = await Client.connect('', {}, `${d.url}?name=m${i}`);
  c.ws.on('message', (data) => { const e = JSON.parse(data.toString()); if (e.op === 'presence') { asked++; c.send({ op: 'members', room }); } if (e.op === 'members') answered++; });
  c.send({ op: 'join', room }); await c.op('joined'); cs.push(c);
}
await new Promise((r) => setTimeout(r, 3000)); // joins' presence settles
const a0 = asked, c0 = await calls(), t0 = Date.now();
for (let i = 0; Date.now() - t0 < 5000; i++) {
  const x = await Client.connect('', {}, `${other.url}?name=churn${i}`); x.send({ op: 'join', room }); await x.op('joined'); x.close();
  await new Promise((r) => setTimeout(r, 20));
}
const secs = (Date.now() - t0) / 1000;
for (let i = 0; i < 200 && answered < asked; i++) await new Promise((r) => setTimeout(r, 50));
cs.forEach((c) => c.close()); await d.stop(); await other.stop();
let q = 0; for (let i = 0; i < 40; i++) { q = (await calls()) - c0; await new Promise((r) => setTimeout(r, 250)); if (i > 4 && q === (await calls()) - c0) break; }
const all = (await calls()) - c00;
console.log(`whole run (${((Date.now() - T0) / 1000).toFixed(0)} s, joins included): ${asked} members requests, ${all} chat_members() calls`);
console.log(`bin ${process.env.CHAT_BIN}: ${N} members, ${secs.toFixed(1)} s of churn: ${asked - a0} members requests, ${q} chat_members() calls (${(q / secs).toFixed(0)}/s)`);
await db.end(); process.exit(0);
