// Presence after a reconnect, one policy for both daemons: a process that
// reconnects to PostgreSQL sends its whole view (chat_presence_sync), so
// presence rows lost meanwhile come back. The test deletes a room's
// presence rows (as if reaped), cuts every connection of the daemons, and
// waits for the rows of a WebSocket member and of a long-poll member.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, http, pgClient, uniqueRoom, waitUntil } from './lib.mjs';
import { Poller } from './lp_lib.mjs';

test('after a reconnect both daemons send their whole presence view: rows lost meanwhile come back', { timeout: 60000 }, async () => {
  const room = uniqueRoom('pres');
  const db = await pgClient();
  await db.connect();
  const members = async () => (await db.query(
    'SELECT member FROM presence WHERE room = $1 ORDER BY member', [room])).rows.map((r) => r.member);
  const ws = await Client.connect('name=wes');
  await ws.op('hello');
  const lp = new Poller([room], { name: 'pat', timeout: 5 }).start();
  try {
    ws.send({ op: 'join', room });
    await ws.op('joined');
    await waitUntil(async () => (await members()).length === 2, 15000, 'both members online');
    assert.deepEqual(await members(), ['~pat', '~wes']);

    await db.query('DELETE FROM presence WHERE room = $1', [room]);
    const cut = await db.query(
      'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
    assert.ok(cut.rows[0].n >= 4, `cut ${cut.rows[0].n} connections`);

    await waitUntil(async () => (await members()).length === 2, 30000, 'both members back after the reconnect');
    assert.deepEqual(await members(), ['~pat', '~wes']);
    // leave the stack as found: every daemon connection back (the next
    // suites expect a listening long-poll worker and a healthy database)
    await waitUntil(async () => {
      const h = await http('health/details');
      return h.status === 200 && h.json?.backends?.fcgi?.listen === true;
    }, 30000, 'the stack healthy again');
  } finally {
    await lp.stop();
    ws.close();
    await db.end();
  }
});
