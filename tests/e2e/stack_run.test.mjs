// `make run`'s supervisor (scripts/stack.sh run): serves, refuses a second
// run on the same VAR, and on Ctrl-C (SIGINT to its process group) or
// SIGTERM stops everything it started.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { BASE, BIN, ROOT, VAR, withTimeout } from './lib.mjs';

const port = Number(new URL(BASE).port) + 7;
const runVar = `${VAR}/runproof`;

function processesOf(dir) {
  return execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
    .split('\n').filter((l) => l.includes(dir));
}

function startRun() {
  const child = spawn(`${ROOT}/scripts/stack.sh`, ['run'], {
    env: { ...process.env, VAR: runVar, PORT: String(port), BIN, DATABASE_URL: '' },
    detached: true, // its own process group, as a terminal's foreground job
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const ready = new Promise((resolve, reject) => {
    const on = (d) => {
      out += d;
      if (out.includes(`http://127.0.0.1:${port}/chat/\n`)) resolve();
    };
    child.stdout.on('data', on);
    child.stderr.on('data', on);
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { child, ready, exited, out: () => out };
}

for (const [how, send] of [
  ['Ctrl-C', (c) => process.kill(-c.pid, 'SIGINT')],
  ['SIGTERM', (c) => c.kill('SIGTERM')],
]) {
  test(`stack.sh run serves until ${how}, then nothing it started is left`, async () => {
    const run = startRun();
    await withTimeout(run.ready, 90000, 'stack up');
    const h = await fetch(`http://127.0.0.1:${port}/chat/health`);
    assert.equal(h.status, 200);
    assert.ok(processesOf(runVar).length >= 5, 'postgres, nginx and both daemons run');

    // a second run on the same VAR refuses clearly and disturbs nothing
    const second = startRun();
    second.ready.catch(() => {}); // it is meant to fail
    const refused = await withTimeout(second.exited, 30000, 'second run exit');
    assert.notEqual(refused.code, 0);
    assert.match(second.out(), /already running/);
    assert.equal((await fetch(`http://127.0.0.1:${port}/chat/health`)).status, 200);

    send(run.child);
    await withTimeout(run.exited, 30000, 'supervisor exit');
    assert.deepEqual(processesOf(runVar), []);
  });
}
