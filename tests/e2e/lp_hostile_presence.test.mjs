// Presence on the long-poll side (issue 12, point 12): a poller's own
// coming online does not wake its own parked poll (it was one wasted round
// trip per new poller: an idle poll with timeout=2 answered after 0.8 s),
// while another member's does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uniqueRoom } from './lib.mjs';
import { pollOnce } from './lp_lib.mjs';

const tag = `pr${process.pid % 1000}`;

test('a poller is not woken by its own presence; another member coming online wakes it', async () => {
  const room = uniqueRoom('self');
  const me = `${tag}me`;
  const first = await pollOnce(`rooms=${room}&name=${me}&timeout=0`);
  assert.equal(first.status, 200);
  // parked before its own presence is flushed (once a second): it must
  // wait out its timeout, with nothing about itself
  const idle = await pollOnce(`rooms=${room}:0&name=${me}&timeout=3`);
  assert.equal(idle.status, 200, idle.text);
  console.log(`an idle poll of timeout=3 answered after ${idle.ms} ms with ${idle.json.events.length} events`);
  assert.deepEqual(idle.json.events, [], 'nothing: its own presence is not news to it');
  assert.ok(idle.ms >= 2500, `answered after ${idle.ms} ms`);
  // another member: news
  const parked = pollOnce(`rooms=${room}:0&name=${me}&timeout=20`);
  const other = await pollOnce(`rooms=${room}&name=${tag}other&timeout=0`);
  assert.equal(other.status, 200);
  const woke = await parked;
  assert.ok(woke.ms < 15000, `woken after ${woke.ms} ms`);
  assert.deepEqual(woke.json.events.filter((e) => e.op === 'presence').map((e) => e.online), [[`~${tag}other`]]);
});
