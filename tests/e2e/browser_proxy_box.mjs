// A box that blocks WebSocket the way corporate proxies do, between the
// test nginx servers of tests/nginx.test.conf (PORT + 3, 4, 5) and the
// stack's WebSocket daemon. nginx names the server in `X-Test-Block`; the
// box then, per server, until the test sets its mode to 'pass':
//   forbid  answers 403 itself (the daemon never sees the request)
//   silent  passes the daemon's 101, then no frame either way (the
//           connection stays open: a proxy that buffers the "response")
//   close   passes the 101, then closes the connection
//   pass    a transparent tunnel, as without the box
import net from 'node:net';

const MAX_HEAD = 16384;

export async function startBlockingBox(port, wsSocket) {
  const box = {
    mode: { forbid: 'forbid', silent: 'silent', close: 'close' },
    upgrades: { forbid: 0, silent: 0, close: 0 }, // requests seen per server
    sockets: new Set(),
    close: () => new Promise((resolve) => {
      for (const s of box.sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
  const track = (s) => {
    box.sockets.add(s);
    s.on('close', () => box.sockets.delete(s));
    s.on('error', () => s.destroy());
    return s;
  };
  // Reads one HTTP head from `sock`; calls done(headBytes, rest) once.
  const readHead = (sock, done) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > MAX_HEAD) sock.destroy();
        return;
      }
      sock.off('data', onData);
      sock.pause();
      done(buf.subarray(0, end + 4), buf.subarray(end + 4));
    };
    sock.on('data', onData);
  };
  const server = net.createServer((client) => {
    track(client);
    readHead(client, (head, rest) => {
      const which = /\r\nx-test-block: *(\w+)/i.exec(head.toString('latin1'))?.[1];
      const mode = box.mode[which] ?? 'pass';
      if (which in box.upgrades) box.upgrades[which]++;
      if (mode === 'forbid') {
        const body = 'WebSocket is not allowed here.\n';
        client.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n` +
          `Connection: close\r\n\r\n${body}`);
        return;
      }
      const up = track(net.connect(wsSocket));
      let linked = true; // the daemon's side closing closes the browser's
      up.on('close', () => { if (linked) client.destroy(); });
      client.on('close', () => up.destroy());
      up.write(Buffer.concat([head, rest]));
      if (mode === 'pass') {
        up.pipe(client);
        client.pipe(up);
        client.resume();
        return;
      }
      readHead(up, (respHead) => {
        client.write(respHead);
        if (mode === 'close') {
          linked = false;
          up.destroy();
          client.end(); // after the 101 is written
          return;
        }
        up.on('data', () => {}); // swallowed
        client.on('data', () => {});
        up.resume();
        client.resume();
      });
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return box;
}
