// The seed's chat server, the anchor of `make bench` (tests/bench/run.sh):
//   io.on('connection', s => s.on('message', m => io.emit('message', m)))
// Socket.IO 4 with its defaults. With PG_URL set, the same app shares
// @socket.io/postgres-adapter (broadcast through PostgreSQL NOTIFY), as
// several processes of it must.
//   PORT=28101 [PG_URL=postgres://...] node sio_server.mjs
import http from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.env.PORT || 28101);
const httpServer = http.createServer();
const io = new Server(httpServer);

if (process.env.PG_URL) {
  const { createAdapter } = await import('@socket.io/postgres-adapter');
  const pg = (await import('pg')).default;
  const pool = new pg.Pool({ connectionString: process.env.PG_URL, max: 4 });
  // run.sh creates the table once (two processes creating it race)
  pool.on('error', (err) => console.error('sio: postgres error', err.message));
  io.adapter(createAdapter(pool));
}

io.on('connection', (s) => s.on('message', (m) => io.emit('message', m)));

httpServer.listen(port, '127.0.0.1', () => console.error(`sio: listening on 127.0.0.1:${port}${process.env.PG_URL ? ' (postgres adapter)' : ''}`));
process.on('SIGTERM', () => { io.close(); process.exit(0); });
