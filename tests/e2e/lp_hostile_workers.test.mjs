// Hostile traffic, --workers (issue 12, point 5, the long-poll side): two
// chat-fcgi processes share one socket; the kernel hands each connection
// to whichever waits in accept(), so one of them could fill up (503 "too
// many waiting polls") while the other had room. A full process now leaves
// new connections to the others (fcgi/lp_accept.c): with --max-parked 5
// and two workers, 10 streams are all served, and only the 11th, with
// both full, gets 503.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uniqueRoom } from './lib.mjs';
import { sanitizerReports, startWorker } from './lp_lib.mjs';


test('two workers with --max-parked 5: ten streams all served, the eleventh refused', async () => {
  const w = await startWorker(['--workers', '2', '--max-parked', '5']);
  const ctl = new AbortController();
  try {
    const room = uniqueRoom('wk');
    // resolves with the status of the head, once it is in (a stream stays open)
    const open = (i) => new Promise((resolve) => {
      w.request(`events?rooms=${room}:0&name=s${i}`, {
        params: { REMOTE_ADDR: `192.0.2.${i + 1}`, HTTP_ACCEPT: 'text/event-stream' },
        signal: ctl.signal,
        onStdout: (b) => resolve(Number((/^Status: (\d+)/m.exec(b.toString()) || [0, 200])[1])),
      }).then((r) => resolve(r.status), () => resolve('closed'));
    });
    const got = [];
    // one after the other: each stream is parked (or refused) before the next
    for (let i = 0; i < 10; i++) got.push(await open(i));
    const refused = got.filter((s) => s === 503).length;
    console.log(`10 streams over 2 workers of --max-parked 5: ${10 - refused} served, ${refused} refused`);
    assert.equal(refused, 0, `streams: ${got.join(' ')}`);
    const eleventh = await w.request(`poll?rooms=${room}:0&name=p11&timeout=20`, { params: { REMOTE_ADDR: '192.0.2.99' } });
    assert.equal(eleventh.status, 503, eleventh.text);
  } finally {
    ctl.abort();
    const e = await w.stop();
    assert.equal(e.code, 0, w.log());
    assert.deepEqual(sanitizerReports(w.log()), []);
  }
});
