// Hostile traffic, joined rooms per client address (issue 12, point 4):
// --max-rooms bounds one connection and --max-conns-per-addr one address's
// connections, so before --max-rooms-per-addr one address could hold their
// product in subscriptions (2,500 x 100 at the defaults), each one a
// member in a room's presence and a target of every message's fan-out.
// Now a join past the address's bound gets a `forbidden` error, nothing
// else on that connection breaks, and another address still joins.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, uniqueRoom } from './lib.mjs';
import { startDaemon } from './daemon.mjs';

const A = (i) => ({ 'X-Chat-Addr': '192.0.2.77', 'X-Forwarded-For': `10.1.0.${i}` });
const B = { 'X-Chat-Addr': '198.51.100.77' };

// A client straight on the daemon's socket, with the headers nginx would set.
async function direct(d, name, headers) {
  const c = await Client.connect('', { headers }, `${d.url}?name=${name}`);
  await c.op('hello');
  return c;
}

// join's answer: the joined event, or the error with the same ref
async function join(c, room, ref = room) {
  c.send({ op: 'join', room, ref });
  return c.next((e) => (e.op === 'joined' && e.room === room) || (e.op === 'error' && e.ref === ref), 10000, `join ${room}`);
}

test('one address joins up to --max-rooms-per-addr across its connections; past it forbidden, the connection and another address go on', async () => {
  const d = await startDaemon(['--max-rooms', '5', '--max-conns-per-addr', '10', '--max-rooms-per-addr', '8']);
  const rooms = Array.from({ length: 12 }, (_, i) => uniqueRoom(`ra${i}`));
  const a1 = await direct(d, 'evil1', A(1));
  const a2 = await direct(d, 'evil2', A(2));
  const a3 = await direct(d, 'evil3', A(3));
  for (const room of rooms.slice(0, 5)) assert.equal((await join(a1, room)).op, 'joined');
  for (const room of rooms.slice(5, 8)) assert.equal((await join(a2, room)).op, 'joined');
  // the 9th room of the address, on a connection with room to spare
  const refused = await join(a2, rooms[8]);
  assert.equal(refused.op, 'error', JSON.stringify(refused));
  assert.equal(refused.code, 'forbidden');
  assert.match(refused.message, /your address/);
  // and on a fresh connection of the same address (its own X-Forwarded-For changes nothing)
  const refused3 = await join(a3, rooms[9]);
  assert.equal(refused3.code, 'forbidden');
  // nothing else broke: a2 still talks and still gets its rooms' messages
  a2.send({ op: 'ping', ref: 'p' });
  assert.equal((await a2.op('pong')).ref, 'p');
  a2.send({ op: 'send', room: rooms[5], text: 'still here', cid: 'x2' });
  assert.equal((await a2.next((e) => e.op === 'msg' && e.cid === 'x2', 10000, 'own msg')).text, 'still here');

  // the victim at another address: joins and is served
  const victim = await direct(d, 'victim', B);
  for (const room of rooms.slice(0, 5)) assert.equal((await join(victim, room)).op, 'joined');
  a1.send({ op: 'send', room: rooms[0], text: 'hello victim', cid: 'v1' });
  assert.equal((await victim.next((e) => e.op === 'msg' && e.cid === 'v1', 10000, 'msg')).text, 'hello victim');

  // a room left gives its slot back: a2 leaves one, a3 joins one, and no more
  a2.send({ op: 'leave', room: rooms[7], ref: 'l' });
  await a2.op('left');
  assert.equal((await join(a3, rooms[10])).op, 'joined');
  assert.equal((await join(a3, rooms[11])).code, 'forbidden');
  // joining a room again is not one more room
  assert.equal((await join(a1, rooms[0], 'again')).op, 'joined');
  // a closed connection gives back all of its rooms
  a1.close();
  await a1.waitClose();
  // (a2 holds 2 rooms, a3 1: five more make 8, the ninth is refused)
  for (const room of rooms.slice(0, 4)) assert.equal((await join(a3, room)).op, 'joined');
  assert.equal((await join(a2, rooms[7])).op, 'joined');
  assert.equal((await join(a2, rooms[11])).code, 'forbidden');
  for (const c of [a2, a3, victim]) c.close();
  await d.stop();
});

test('IPv6: the connections of one /64 share the rooms bound; the default is 4 x --max-conns-per-addr', async () => {
  // --max-conns 8: 2 connections per address, so 8 rooms per address
  const d = await startDaemon(['--max-conns', '8']);
  const v6 = (i) => ({ 'X-Chat-Addr': `2001:db8:77:1:${i}::1` });
  const rooms = Array.from({ length: 9 }, (_, i) => uniqueRoom(`r6${i}`));
  const s1 = await direct(d, 'six1', v6(1));
  const s2 = await direct(d, 'six2', v6(2));
  for (const room of rooms.slice(0, 4)) assert.equal((await join(s1, room)).op, 'joined');
  for (const room of rooms.slice(4, 8)) assert.equal((await join(s2, room)).op, 'joined');
  const refused = await join(s1, rooms[8]);
  assert.equal(refused.code, 'forbidden', JSON.stringify(refused));
  // the next /64 is another address
  const other = await direct(d, 'other6', { 'X-Chat-Addr': '2001:db8:77:2::1' });
  assert.equal((await join(other, rooms[8])).op, 'joined');
  for (const c of [s1, s2, other]) c.close();
  await d.stop();
});
