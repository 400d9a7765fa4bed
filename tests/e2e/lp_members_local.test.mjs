// Presence on the long-poll side (issue 12, point 12): a first poll's
// members list this process's other pollers at once. Their presence
// reaches the database at the next flush (about once a second), so before
// the fix a user who polled 0.1 s after another on the same chat-fcgi got
// only itself; chat-ws does the same for its own connections (ws_room.c).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pgClient, uniqueRoom } from './lib.mjs';
import { sanitizerReports, startWorker } from './lp_lib.mjs';

test('two long-poll users join 0.1 s apart on one process: the second one\'s first answer lists both', async () => {
  const w = await startWorker([]);
  const db = await pgClient();
  await db.connect();
  let unflushed = 0;
  try {
    // a few rooms: each time, whether the first user's presence reached
    // the database before the second poll is noted; the answer must list
    // both either way, and at least one round must be before the flush
    for (let round = 0; round < 6; round++) {
      const room = uniqueRoom('local');
      const a = await w.request(`poll?rooms=${room}&name=amy&timeout=0`, { params: { REMOTE_ADDR: '192.0.2.80' } });
      assert.equal(a.status, 200, a.text);
      assert.deepEqual(a.json.members[room], { members: ['~amy'], count: 1 });
      await new Promise((r) => setTimeout(r, 100)); // the scenario: the second user 0.1 s later
      const stored = (await db.query('SELECT 1 FROM presence WHERE room = $1', [room])).rowCount;
      const b = await w.request(`poll?rooms=${room}&name=ben&timeout=0`, { params: { REMOTE_ADDR: '198.51.100.80' } });
      assert.equal(b.status, 200, b.text);
      assert.deepEqual(b.json.members[room], { members: ['~amy', '~ben'], count: 2 },
        `round ${round}: amy ${stored ? 'was' : 'was not yet'} in the database`);
      if (!stored) unflushed++;
      // a third, on a later cursor-less poll: all three, each once
      const c = await w.request(`poll?rooms=${room}&name=cy&timeout=0`, { params: { REMOTE_ADDR: '198.51.100.81' } });
      assert.deepEqual(c.json.members[room], { members: ['~amy', '~ben', '~cy'], count: 3 });
    }
    assert.ok(unflushed > 0, 'every round was flushed before the second poll: the test showed nothing');
    console.log(`${unflushed} of 6 rounds answered before the first user's presence was stored`);
  } finally {
    await db.end();
    const e = await w.stop();
    assert.equal(e.code, 0, w.log());
    assert.deepEqual(sanitizerReports(w.log()), []);
  }
});
