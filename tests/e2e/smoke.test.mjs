// The stack `make run` starts answers through nginx.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { http } from './lib.mjs';

test('GET /chat/health through nginx names both backends and the database', async () => {
  const pub = await http('health');
  assert.equal(pub.status, 200, pub.text);
  assert.deepEqual(pub.json, { status: 'ok', backends: { fcgi: { status: 'ok' }, ws: { status: 'ok' } },
    database: { status: 'up' } }, 'the public answer carries statuses only');
  const r = await http('health/details');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('cache-control'), 'no-store');
  assert.equal(r.json.status, 'ok');
  assert.equal(r.json.backends.fcgi.status, 'ok');
  assert.equal(r.json.backends.ws.status, 'ok');
  assert.equal(r.json.backends.ws.database, 'up');
  assert.equal(r.json.database.status, 'up');
});

test('the browser client is served at /chat/', async () => {
  const r = await http('');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /text\/html/);
  assert.match(r.text, /<html/i);
});
