// The fault run of `make multihost` (scripts/multihost.sh starts it in the
// load balancer's namespace, with everything up). Traffic flows on both
// transports through the load balancer the whole time; five faults come
// one after another; after each, every acked message must be stored once
// with the seq of its ack, and every receiver must have every message of
// every room exactly once, in order. Prints the table of docs/operations.md.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import { Sender, Receiver } from './clients.mjs';

const exec = promisify(execFile);
const SCRIPT = process.env.MH_SCRIPT;
const DB = process.env.MH_DB;
const VAR = process.env.MH_VAR;
const RUN = Date.now().toString(36); // rooms of their own: a run on a stack left up starts clean
const ROOMS = ['a', 'b', 'c'].map((r) => `mh-${r}-${RUN}`);
const T0 = Date.now();
const log = (s) => console.log(`[${((Date.now() - T0) / 1000).toFixed(1).padStart(6)} s] ${s}`);
const secs = (ms) => (ms / 1000).toFixed(1);
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

const mh = async (...args) => (await exec(SCRIPT, args, { timeout: 180000 })).stdout.trim();
const mhOk = (...args) => mh(...args).then(() => true, () => false);
const psql = async (sql) => (await exec('psql', [DB, '-qAtF', '\t', '-c', sql], { timeout: 20000 })).stdout;

// Waits for an async condition, checking every 200 ms, failing at the deadline.
async function until(cond, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond().catch(() => false);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${secs(ms)} s waiting for ${what}`);
    await pause(200);
  }
}

// ---- the clients --------------------------------------------------------
const senders = [1, 2, 3].flatMap((i) => [
  new Sender(`ws${i}`, 'ws', ROOMS, log), new Sender(`lp${i}`, 'lp', ROOMS, log)]);
const receivers = [
  ...[1, 2].map((i) => new Receiver(`rws${i}`, 'ws', ROOMS, log)),
  ...[1, 2].map((i) => new Receiver(`rlp${i}`, 'lp', ROOMS, log)),
  new Receiver('rsw', 'switch', ROOMS, log),
];
const clients = [...senders, ...receivers];
const running = clients.map((c) => c.run());

const acked = () => senders.flatMap((s) => s.sent.filter((m) => m.tAck !== undefined).map((m) => ({ ...m, user: s.user })));
// every sender has had a message, first tried after t, acked
const allSending = (t) => senders.every((s) => s.sent.some((m) => m.t0 >= t && m.tAck !== undefined));

// ---- the checks ------------------------------------------------------------
// Waits until every receiver has every acked message, then compares the
// database, the acks and what each receiver got. Returns failures.
async function check(label) {
  const msgs = acked();
  const top = new Map(ROOMS.map((r) => [r, 0]));
  for (const m of msgs) top.set(m.room, Math.max(top.get(m.room), m.seq));
  await until(async () => receivers.every((r) => ROOMS.every((room) => r.cursor.get(room) >= top.get(room))),
    90000, `every receiver to reach ${[...top].map(([r, s]) => `${r}:${s}`).join(',')}`)
    .catch((e) => log(`${label}: ${e.message}`));
  const fails = [];
  const rows = await psql(`SELECT room, seq, sender, coalesce(cid, '') FROM messages
                           WHERE room IN (${ROOMS.map((r) => `'${r}'`).join(',')}) ORDER BY room, seq`);
  const bySeq = new Map();
  const byCid = new Map();
  for (const line of rows.split('\n').filter(Boolean)) {
    const [room, seq, user, cid] = line.split('\t');
    bySeq.set(`${room}:${seq}`, `${user}/${cid}`);
    const k = `${room}/${user}/${cid}`;
    byCid.set(k, (byCid.get(k) || 0) + 1);
  }
  const storedTop = new Map();
  for (const room of ROOMS) {
    const seqs = [...bySeq.keys()].filter((k) => k.startsWith(`${room}:`)).map((k) => Number(k.slice(room.length + 1)));
    const top = Math.max(0, ...seqs);
    if (top !== seqs.length) fails.push(`room ${room}: ${seqs.length} messages stored, seqs up to ${top}`);
    storedTop.set(room, top);
  }
  let stored = 0;
  for (const m of msgs) {
    const k = `${m.room}/${m.user}/${m.cid}`;
    if (byCid.get(k) !== 1) fails.push(`acked ${k} stored ${byCid.get(k) || 0} times`);
    else if (bySeq.get(`${m.room}:${m.seq}`) !== `${m.user}/${m.cid}`) fails.push(`acked ${k} seq ${m.seq} holds ${bySeq.get(`${m.room}:${m.seq}`)}`);
    else stored++;
  }
  for (const r of receivers) {
    fails.push(...r.violations.splice(0));
    for (const room of ROOMS) {
      const got = r.got.get(room);
      got.forEach((g, i) => {
        // what arrived after the query's snapshot is for the next check
        if (g.seq > storedTop.get(room)) return;
        if (g.seq !== i + 1) fails.push(`${r.name}: room ${room} position ${i + 1} holds seq ${g.seq}`);
        else if (bySeq.get(`${room}:${g.seq}`) !== `${g.user}/${g.cid}`) fails.push(`${r.name}: ${room}:${g.seq} is ${g.user}/${g.cid}, stored ${bySeq.get(`${room}:${g.seq}`)}`);
      });
      if (got.length < top.get(room)) fails.push(`${r.name}: room ${room} has ${got.length} of ${top.get(room)}`);
    }
  }
  return { fails, acked: msgs.length, stored };
}

// What the users saw between t0 and t1: the longest wait of a send for its
// ack, when the last send stalled by the fault (> 1 s) was acked, the
// longest time with no ack at all, and the slowest delivery to a receiver.
function measure(t0, t1) {
  const msgs = acked().filter((m) => m.tAck >= t0 && m.t0 <= t1);
  const stalled = msgs.filter((m) => m.tAck - m.t0 > 1000);
  const acks = msgs.map((m) => m.tAck).sort((a, b) => a - b);
  let outage = acks.length ? acks[0] - t0 : t1 - t0; // from the fault to the first ack, then between acks
  for (let i = 1; i < acks.length; i++) outage = Math.max(outage, acks[i] - acks[i - 1]);
  const seen = new Map();
  for (const r of receivers) {
    for (const room of ROOMS) {
      for (const g of r.got.get(room)) {
        const k = `${room}:${g.seq}`;
        seen.set(k, Math.max(seen.get(k) || 0, g.t));
      }
    }
  }
  let lag = 0;
  let lastSeen = t0;
  for (const m of msgs) {
    const t = seen.get(`${m.room}:${m.seq}`);
    if (t) { lag = Math.max(lag, t - m.tAck); if (m.tAck - m.t0 > 1000) lastSeen = Math.max(lastSeen, t); }
  }
  return {
    n: msgs.length,
    stall: Math.max(0, ...msgs.map((m) => m.tAck - m.t0)),
    recovered: stalled.length ? Math.max(...stalled.map((m) => m.tAck), lastSeen) - t0 : 0,
    outage,
    lag,
    retried: msgs.filter((m) => m.tries > 1).length,
  };
}

// ---- the faults ------------------------------------------------------------
// h2 loses the database for 20 s: `partition` takes its own link down (the
// kernel then refuses at once: no route), `blackhole` the switch's side
// (its link stays up without carrier: packets go nowhere, connects wait
// for ARP). Meanwhile h2's /chat/health is probed once a second.
function cutOff(name, cmd, what) {
  return {
    name,
    async run(p) {
      p.tFault = Date.now();
      await mh(cmd, 'h2', 'down');
      log(`h2: ${what}`);
      // the fault lasts 20 s (a duration, not a synchronization)
      const probes = [];
      while (Date.now() - p.tFault < 20000) {
        const t = Date.now();
        probes.push((await mh('health-time', 'h2')).split(' '));
        await pause(Math.max(0, 1000 - (Date.now() - t)));
      }
      const codes = [...new Set(probes.map(([c]) => c))].join('/');
      const worst = Math.max(...probes.map(([, x]) => Number(x)));
      p.health = `h2 /chat/health during it: ${codes}, slowest answer ${worst.toFixed(2)} s`;
      log(p.health);
      p.tHealed = Date.now();
      await mh(cmd, 'h2', 'up');
      log('h2: database link back');
      await until(() => mhOk('health', 'h2'), 60000, 'h2 healthy');
      p.note = `${p.health}; healthy ${secs(Date.now() - p.tHealed)} s after the link came back`;
    },
  };
}

const faults = [
  {
    name: 'kill -9 the database primary',
    async run(p) {
      const old = await mh('primary');
      p.tFault = Date.now();
      await mh('kill-db', old);
      log(`killed ${old} (pg_autoctl and PostgreSQL, kill -9)`);
      const now = await until(async () => { const n = await mh('primary'); return n && n !== old && n; }, 60000, 'a new primary');
      p.note = `${now} promoted after ${secs(Date.now() - p.tFault)} s`;
      log(p.note);
      const t = Date.now();
      await until(async () => allSending(t), 60000, 'every sender acked on the new primary');
      p.tHealed = Date.now();
      await mh('start-db', old);
      await until(() => mhOk('pair-healthy'), 180000, `${old} back as the synchronous standby`);
      p.note += `; ${old} back as standby ${secs(Date.now() - p.tHealed)} s later`;
      log(`${old} is the synchronous standby again`);
    },
  },
  cutOff('partition chat host h2 from the database, 20 s', 'partition', 'link to the database network down'),
  cutOff('black-hole h2\'s database link, 20 s', 'blackhole', 'database link black-holed (switch port down)'),
  {
    name: 'kill chat host h3 (processes -9, links down)',
    async run(p) {
      p.tFault = Date.now();
      await mh('kill-host', 'h3');
      log('h3 is gone');
      const t = Date.now();
      await until(async () => allSending(t), 60000, 'every sender acked without h3');
      p.tHealed = Date.now();
      p.note = `all senders acked again ${secs(p.tHealed - p.tFault)} s after`;
      await mh('revive-host', 'h3');
      log('h3 is back');
    },
  },
  {
    name: 'rolling restart of h1, h2, h3',
    // as an operator does it: out of the balancer, stop (graceful), start,
    // healthy, back in. (Without the drain, the balancer's passive checks
    // mark each host failed for fail_timeout as it restarts: restarting the
    // next one within those 5 s leaves none and every request gets 502.)
    async run(p) {
      p.tFault = Date.now();
      const each = [];
      for (const h of ['h1', 'h2', 'h3']) {
        const t = Date.now();
        await mh('drain', h);
        await mh('stop-host', h);
        await mh('start-host', h);
        await mh('undrain', h);
        each.push(`${h} ${secs(Date.now() - t)} s`);
        log(`${h} restarted`);
      }
      p.tHealed = Date.now();
      p.note = `drain+stop+start+undrain: ${each.join(', ')}`;
    },
  },
];

// MH_ONLY=kill,rolling (words of the names) runs only those faults
const only = (process.env.MH_ONLY || '').split(',').filter(Boolean);
const chosen = faults.filter((f) => !only.length || only.some((w) => f.name.includes(w)));

const results = [];
let failed = false;
const overall = setTimeout(() => { log('the run took over 12 minutes: giving up'); process.exit(2); }, 12 * 60000);
try {
  await until(async () => allSending(T0) && receivers.every((r) => r.stats.reconnects + r.stats.polls > 0), 30000, 'traffic');
  await pause(5000); // a little traffic before the first fault
  const base = await check('warm-up');
  log(`warm-up: ${base.acked} acked, ${base.fails.length} failures`);
  if (base.fails.length) { failed = true; base.fails.slice(0, 20).forEach((f) => log(`  FAIL ${f}`)); }
  for (const f of chosen) {
    const p = { name: f.name };
    log(`== ${f.name}`);
    const before = senders.reduce((a, s) => a + s.stats.unavailable, 0);
    try {
      await f.run(p);
      const t = Date.now();
      await until(async () => allSending(t), 60000, 'every sender acking');
    } catch (e) {
      p.error = e.message;
      log(`ERROR ${e.message}`);
    }
    p.tEnd = Date.now();
    const c = await check(f.name);
    Object.assign(p, measure(p.tFault ?? p.tEnd, p.tEnd), { fails: c.fails, acked: c.acked, stored: c.stored });
    p.unavailable = senders.reduce((a, s) => a + s.stats.unavailable, 0) - before;
    // the sends that waited over a second: who, when, how long, how often tried
    p.stalled = senders.flatMap((s) => s.sent.filter((m) => m.t0 <= p.tEnd && (m.tAck ?? p.tEnd) >= (p.tFault ?? p.tEnd)
      && (m.tAck ?? p.tEnd) - m.t0 > 1000).map((m) => `${m.cid} at +${secs(m.t0 - (p.tFault ?? p.tEnd))} s waited ${secs((m.tAck ?? p.tEnd) - m.t0)} s, ${m.tries} tries`));
    if (process.env.MH_DEBUG) p.stalled.forEach((x) => log(`  stalled: ${x}`));
    if (process.env.MH_DEBUG) senders.forEach((x) => log(`  ${x.name}: ${JSON.stringify(x.stats.codes)}`));
    p.ok = !p.error && c.fails.length === 0;
    failed ||= !p.ok;
    log(`${p.ok ? 'ok' : 'FAILED'}: ${p.note ?? ''}; ${c.acked} acked so far, ${c.stored} stored once with their seq`);
    c.fails.slice(0, 20).forEach((x) => log(`  FAIL ${x}`));
    results.push(p);
  }
} catch (e) {
  log(`ERROR ${e.stack}`);
  failed = true;
}
// senders stop, receivers catch up with the last acks, then the last check
senders.forEach((c) => { c.stopped = true; });
await Promise.race([Promise.all(running.slice(0, senders.length)), pause(15000)]);
const fin = await check('end').catch((e) => ({ fails: [e.message], acked: 0, stored: 0 }));
receivers.forEach((c) => { c.stopped = true; });
await Promise.race([Promise.all(running), pause(15000)]);
clearTimeout(overall);
failed ||= fin.fails.length > 0;
fin.fails.slice(0, 20).forEach((x) => log(`  FAIL ${x}`));

const rows = results.map((p) => `| ${p.name} | ${p.tHealed && p.tFault ? secs(p.tHealed - p.tFault) : '-'} | ` +
  `${secs(p.outage)} | ${secs(p.stall)} | ${secs(p.recovered)} | ${secs(p.lag)} | ${p.n} | ${p.retried} | ` +
  `${p.ok ? 'ok' : `**FAILED** (${(p.error ? [p.error] : []).concat(p.fails).slice(0, 2).join('; ')})`} |`);
const table = [
  '| fault (traffic flowing) | fault window s | longest time without any ack s | longest send wait s | recovered after s | slowest delivery s | sends | retried | acked stored once, receivers gap-free once |',
  '|---|---|---|---|---|---|---|---|---|',
  ...rows,
  `| **whole run**: ${senders.length} senders (3 WebSocket, 3 long-poll), ${receivers.length} receivers (2+2, 1 switching), ${ROOMS.length} rooms | ${secs(Date.now() - T0)} | | | | | ${fin.acked} | | ${fin.fails.length ? '**FAILED**' : `ok: ${fin.stored} stored once`} |`,
].join('\n');
const notes = results.map((p) => `- ${p.name}: ${p.note ?? ''}${p.unavailable ? `; ${p.unavailable} "unavailable" answers` : ''}`).join('\n');
console.log(`\n${table}\n\n${notes}\n`);
writeFileSync(`${VAR}/table.md`, `${table}\n\n${notes}\n`);
writeFileSync(`${VAR}/results.json`, JSON.stringify({ results, final: fin, stats: clients.map((c) => ({ name: c.name, ...c.stats })) }, null, 1));
console.log(failed ? 'multihost: FAILED' : 'multihost: every check passed');
process.exit(failed ? 1 : 0);
