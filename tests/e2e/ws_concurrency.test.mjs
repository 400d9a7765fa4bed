// Several senders on separate connections (spread over the daemon's worker
// processes by the kernel), several receivers: each receiver sees seq 1..N
// exactly once, in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, uniqueRoom } from './lib.mjs';

test('6 senders x 50 messages, 8 receivers: every receiver sees 1..300 once, in order', async () => {
  const room = uniqueRoom('conc');
  const receivers = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
    const c = await Client.connect(`name=rx${i}`);
    await c.op('hello');
    c.send({ op: 'join', room, since: 0 });
    await c.op('joined');
    return c;
  }));
  const senders = await Promise.all(Array.from({ length: 6 }, async (_, i) => {
    const c = await Client.connect(`name=tx${i}`);
    await c.op('hello');
    return c;
  }));
  const per = 50;
  await Promise.all(senders.map(async (c, k) => {
    for (let i = 0; i < per; i++) {
      for (;;) {
        c.send({ op: 'send', room, text: `t${k}-${i}`, cid: `t${k}-${i}`, ref: i });
        const e = await c.next((x) => x.ref === i, 20000, 'ack');
        if (e.op === 'ack') break;
        assert.equal(e.code, 'rate_limited');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }));
  const total = senders.length * per;
  for (const c of receivers) {
    const seqs = [];
    const texts = new Set();
    while (seqs.length < total) {
      const m = await c.next((e) => e.op === 'msg', 20000, 'msg');
      seqs.push(m.seq);
      texts.add(m.text);
    }
    assert.deepEqual(seqs, Array.from({ length: total }, (_, i) => i + 1));
    assert.equal(texts.size, total);
  }
  [...receivers, ...senders].forEach((c) => c.close());
});
