// Extra WebSocket daemons with their own options (echo mode, small limits),
// started directly on a unix socket next to the stack under test.
import { spawn } from 'node:child_process';
import { BIN, VAR, DATABASE_URL, withTimeout } from './lib.mjs';

let counter = 0;
const live = new Set();

// A test that fails before stopping its daemon must not leave it running
// (the runner's --test-force-exit ends the file's process; this ends them).
process.on('exit', () => {
  for (const proc of live) proc.kill('SIGKILL');
});

export async function startDaemon(args = []) {
  const path = `${VAR}/run/test-${process.pid}-${counter++}.sock`;
  const echo = args.includes('--echo');
  const argv = ['--workers', '1', '--listen', `unix:${path}`, ...(echo ? [] : ['--db', DATABASE_URL]), ...args];
  const proc = spawn(`${BIN}/chat-ws`, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  let log = '';
  let ready;
  const up = new Promise((res) => { ready = res; });
  proc.stderr.on('data', (d) => {
    log += d.toString();
    // a chat daemon is ready once its three database connections are up
    if (log.includes(echo ? 'serving' : 'ready: listening, reading and writing')) ready();
  });
  const logIdx = args.indexOf('--log');
  if (logIdx >= 0) {
    const fs = await import('node:fs/promises');
    const file = args[logIdx + 1];
    (async () => {
      for (let i = 0; i < 300; i++) {
        const t = await fs.readFile(file, 'utf8').catch(() => '');
        if (t.includes(echo ? 'serving' : 'ready: listening, reading and writing')) return ready();
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
  }
  const exited = new Promise((res) => proc.once('exit', (code, sig) => res({ code, sig })));
  await withTimeout(Promise.race([up, exited.then((e) => { throw new Error(`chat-ws exited ${JSON.stringify(e)}: ${log}`); })]),
    15000, 'test daemon start');
  return {
    path,
    pid: proc.pid,
    url: `ws+unix://${path}:/chat/ws`,
    log: () => log,
    async stop() {
      proc.kill('SIGTERM');
      const e = await withTimeout(exited, 10000, 'test daemon exit');
      if (/ERROR: (Address|Leak)Sanitizer|runtime error:/.test(log)) {
        throw new Error(`sanitizer report from the test daemon:\n${log}`);
      }
      return e;
    },
  };
}
