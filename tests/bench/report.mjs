// tests/bench/report.mjs: the tables of `make bench` from results.jsonl
// (one line per measurement: {"case","system","r":{...loadgen or probe...}}).
//   node tests/bench/report.mjs var/bench/results/results.jsonl
import { readFileSync } from 'node:fs';

const lines = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const get = (c, s) => lines.find((x) => x.case === c && x.system === s)?.r;
const SYS = ['chat', 'sio', 'siopg', 'nchan', 'bare'];
const NAMES = { chat: 'ours', sio: 'seed Socket.IO', siopg: 'Socket.IO + PG adapter (2 procs)', nchan: 'nchan', bare: 'bare epoll (ceiling)' };

const fmt = (v, digits = 0) => {
  if (v === undefined || v === null || Number.isNaN(v)) return '-';
  if (typeof v === 'string') return v;
  if (Math.abs(v) >= 1000 && digits === 0) return Math.round(v).toLocaleString('en-US');
  return v.toFixed(digits);
};
const ratio = (a, b) => (a == null || b == null || !b ? '-' : `${(a / b).toFixed(2)}x`);

function row(label, pick, digits, target) {
  const v = Object.fromEntries(SYS.map((s) => [s, pick(s)]));
  return `| ${label} | ${SYS.map((s) => fmt(v[s], digits)).join(' | ')} | ${ratio(v.chat, v.sio)} | ${ratio(v.chat, v.nchan)} | ${ratio(v.chat, v.bare)} | ${target} |`;
}

const out = [];
out.push(`| scenario | ${SYS.map((s) => NAMES[s]).join(' | ')} | ours / seed | ours / nchan | ours / ceiling | target |`);
out.push(`|---|${SYS.map(() => '--:').join('|')}|--:|--:|--:|---|`);
const d = (c) => (s) => get(c, s)?.deliveries_per_s;
const lat = (c, q) => (s) => get(c, s)?.latency_ms?.[q];
out.push(row('fan-out to 1,000 subscribers, deliveries/s', d('fanout-1000'), 0, 'ours >= 3x seed, >= 1x nchan'));
out.push(row('fan-out to 10,000 subscribers, deliveries/s', d('fanout-10000'), 0, 'ours >= 3x seed, >= 2x nchan'));
out.push(row('fan-out 1,000: latency p99 at that rate, ms', lat('fanout-1000', 'p99'), 1, '(information)'));
out.push(row('200 msg/s to 1,000: deliveries/s', d('rate-200'), 0, 'all 200,000/s'));
out.push(row('200 msg/s to 1,000: latency p50, ms', lat('rate-200', 'p50'), 2, '(lower is better)'));
out.push(row('200 msg/s to 1,000: latency p99, ms', lat('rate-200', 'p99'), 2, 'ours <= nchan'));
out.push(row('200 msg/s to 1,000: latency max, ms', lat('rate-200', 'max'), 1, '(lower is better)'));
out.push(row('20 msg/s to 1,000: latency p50, ms', lat('rate-20', 'p50'), 2, '(lower is better)'));
out.push(row('20 msg/s to 1,000: latency p99, ms', lat('rate-20', 'p99'), 2, 'ours <= 1.5x nchan'));
const idle = (k) => (s) => {
  const r = get('idle-20000', s);
  return r && r[k] != null ? r[k] / 1024 : undefined;
};
out.push(row('20,000 idle WebSockets: server KiB/conn', idle('server_bytes_per_conn'), 2, 'ours (daemon) <= 4 (aim 2)'));
out.push(row('20,000 idle WebSockets: nginx KiB/conn', idle('nginx_bytes_per_conn'), 2, '(lower is better)'));
out.push(row('20,000 idle WebSockets: total KiB/conn', idle('total_bytes_per_conn'), 2, 'ours <= nchan'));
out.push(row('20,000 idle WebSockets: connections up', (s) => get('idle-20000', s)?.ready, 0, '20,000'));
out.push(row('20,000 idle WebSockets: connect p99, ms', (s) => get('idle-20000', s)?.connect_ms?.p99, 1, '(information)'));

out.push('');
out.push('Correctness of the same runs (lost / duplicated / out of order deliveries; ours also checks seq):');
out.push('');
out.push(`| run | ${SYS.map((s) => NAMES[s]).join(' | ')} |`);
out.push(`|---|${SYS.map(() => '---').join('|')}|`);
for (const c of ['fanout-1000', 'fanout-10000', 'rate-200', 'rate-20']) {
  out.push(`| ${c} | ${SYS.map((s) => {
    const r = get(c, s);
    if (!r || r.lost === undefined) return '-';
    return `${r.lost} / ${r.dups} / ${r.late}${s === 'chat' ? ` (seq ${r.seq_errors})` : ''}${r.stalls ? `, ${r.stalls} stalls` : ''}`;
  }).join(' | ')} |`);
}

// ours only
out.push('');
out.push('| ours only | value | target |');
out.push('|---|--:|---|');
const parked = get('lp-parked', 'chat');
if (parked) {
  out.push(`| 10,000 parked long-polls: worker RSS | ${fmt(parked.rss_parked_kib / 1024, 1)} MiB (${fmt(parked.rss_before_kib / 1024, 1)} before; ${fmt(parked.rss_per_poll_bytes)} bytes/poll) | < 100 MiB |`);
  out.push(`| 10,000 parked long-polls: worker threads | ${parked.threads} | (information) |`);
}
const wake = get('lp-wake-all', 'chat');
if (wake) out.push(`| wake-up, send to long-poll answer, 10,000 polls in 100 rooms: p50 / p99 / max | ${wake.latency_ms.median} / ${wake.latency_ms.p99} / ${wake.latency_ms.max} ms | (information) |`);
const light = get('lp-light', 'chat');
if (light) out.push(`| wake-up, send to long-poll answer, ${light.polls_per_send} polls, ${light.sends} sends: p50 / p99 / max | ${light.latency_ms.median} / ${light.latency_ms.p99} / ${light.latency_ms.max} ms | (information) |`);
for (const t of ['sse', 'longpoll']) {
  const r = get(`sse-rate-${t}`, 'chat');
  if (r) out.push(`| ${r.rate} msg/s to ${r.readers} readers over ${t === 'sse' ? 'SSE' : 'long-poll'}: deliveries/s, latency p50 / p99 / max (lost, dups) | ${fmt(r.deliveries_per_s)}, ${r.latency_ms.p50} / ${r.latency_ms.p99} / ${r.latency_ms.max} ms (${r.lost}, ${r.dups}) | ${t === 'sse' ? 'SSE p99 <= long-poll p99' : '(the reference)'} |`);
}
const sm = get('sse-sse-memory', 'chat');
if (sm) out.push(`| ${fmt(sm.streams)} open SSE streams: worker RSS | ${fmt(sm.rss_open_kib / 1024, 1)} MiB (${fmt(sm.rss_before_kib / 1024, 1)} before; ${fmt(sm.rss_per_stream_bytes)} bytes/stream; ${sm.threads} threads) | (information) |`);
const g = get('sends-group', 'chat');
const one = get('sends-one-per-tx', 'pgbench');
const batch = get('sends-batch-100', 'pgbench');
if (g) out.push(`| persisted sends/s, 100 senders, group commit (through nginx) | ${fmt(g.acks_per_s)} (ack p50 ${g.latency_ms.p50} ms, p99 ${g.latency_ms.p99} ms) | >= 10x one per transaction |`);
if (one) out.push(`| persisted sends/s, 100 clients, one chat_post per message (pgbench, no nginx) | ${fmt(one.acks_per_s)} (${one.latency_avg_ms} ms avg) | |`);
if (g && one) out.push(`| group commit / one per transaction | ${ratio(g.acks_per_s, one.acks_per_s)} | >= 10x |`);
if (batch) out.push(`| ceiling: chat_post of 100 messages per call, 10 clients (pgbench) | ${fmt(batch.acks_per_s)} | (information) |`);
for (const b of ['4k', '1k', '512']) {
  const i = get(`buffers-${b}-idle`, 'chat');
  const f = get(`buffers-${b}-fanout`, 'chat');
  if (i || f) out.push(`| proxy_buffer_size ${b}: nginx KiB per idle WebSocket / fan-out 1,000 deliveries/s | ${i ? fmt(i.nginx_bytes_per_conn / 1024, 2) : '-'} / ${f ? fmt(f.deliveries_per_s) : '-'} | (information) |`);
}
const search = get('mod-search', 'chat');
if (search) {
  for (const [k, what] of [['rare', '"zanzibar" (1 in 10,000)'], ['uncommon', '"apple" (1 in 200)'], ['phrase', '"hello world" (a phrase, 1 in 10)'], ['every', '"the" (every message)'], ['none', 'a word in none']]) {
    const m = search.ms[k];
    out.push(`| search ${search.messages.toLocaleString('en-US')} messages, ${what}, 50 newest: p50 / p99 | ${m.p50} / ${m.p99} ms | (information) |`);
  }
}
const pb = get('mod-sends-before-prune', 'chat');
const pd = get('mod-sends-during-prune', 'chat');
if (pb && pd) {
  out.push(`| retention prune of ${fmt(pd.prune.removed)} messages of one room | ${pd.prune.seconds} s | (information) |`);
  out.push(`| ${pd.rate} sends/s to that room: ack p50 / p99 / max, before / during the prune | ${pb.ack_ms.p50} / ${pb.ack_ms.p99} / ${pb.ack_ms.max} ms, ${pd.ack_ms.p50} / ${pd.ack_ms.p99} / ${pd.ack_ms.max} ms (${pd.errors} lost) | during <= 2x before |`);
}
console.log(out.join('\n'));
