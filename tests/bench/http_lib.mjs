// What the HTTP benchmarks (lp_bench.mjs, sse_bench.mjs) share: options,
// one request helper through nginx, the worker's /proc numbers and the
// parked count from health.
import http from 'node:http';
import { readFileSync } from 'node:fs';

export const BASE = process.env.CHAT_URL || 'http://127.0.0.1:8080/chat/';
export const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --name value pairs of the command line, values as numbers.
export function numericArgs(argv = process.argv.slice(2)) {
  return Object.fromEntries(argv.reduce((acc, a, i, all) => {
    if (a.startsWith('--')) acc.push([a.slice(2), Number(all[i + 1])]);
    return acc;
  }, []));
}

// One request; resolves { status, json (null if not JSON), at (arrival) }.
export function request(path, { method = 'GET', body, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const data = body ? JSON.stringify(body) : undefined;
    const req = http.request(BASE + path, {
      method, agent,
      headers: { 'x-chat-request': '1', ...headers, ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}) },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(Buffer.concat(chunks).toString()); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, json, at: performance.now() });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

export async function health() {
  return (await request('health/details')).json; // pids and parked counts: the admin's answer (127.0.0.1)
}

// Resident memory, its peak, threads and the open-files limit of a process.
export function procStatus(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const get = (k) => Number(s.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm'))?.[1]);
  const fds = readFileSync(`/proc/${pid}/limits`, 'utf8').match(/Max open files\s+(\d+)/)?.[1];
  return { rssKiB: get('VmRSS'), hwmKiB: get('VmHWM'), threads: get('Threads'), maxFiles: Number(fds) };
}

// Waits until the long-poll worker holds at least n parked requests.
export async function waitParked(n, ms) {
  const deadline = Date.now() + ms;
  let h;
  while (Date.now() < deadline) {
    h = await health();
    if (h.backends.fcgi.parked >= n) return h;
    await sleep(100);
  }
  throw new Error(`only ${h?.backends.fcgi.parked} parked after ${ms} ms, wanted ${n}`);
}
