// The HTTP app of bench/cluster.sh, run unchanged under runner and PM2 in cluster mode
// (both are its Node cluster primary, so every instance's listen(PORT) shares one port)
// and alone.
//
// - Answers every request with 200 "ok".
// - Listens on 127.0.0.1:PORT, as a PM2 app does; nothing in it knows about runner.
// - Says process.send('ready') once it listens (runner and PM2 `wait_ready`).
// - On SIGINT drains without dropping a request: it stops accepting, answers every further
//   request on an open connection with `Connection: close` (so a keep-alive client
//   reconnects, reaching another instance), and exits when its last connection has closed.
//   A connection that stays idle is closed after DRAIN_IDLE_MS. Node's own server.close()
//   would close idle keep-alive connections at once, which races with a client that is just
//   sending its next request on one (the client sees a reset): a load generator would count
//   that as an error of the supervisor when it is the app's.
// - With STATS_FILE set, appends "pid second count" lines (requests answered per wall-clock
//   second) to that file once a second and at exit: the benchmark's time series.
'use strict';
const http = require('http');
const net = require('net');
const fs = require('fs');

const statsFile = process.env.STATS_FILE;
const counts = new Map(); // epoch second -> requests answered
let closing = false;

function flush(all) {
  if (!statsFile) return;
  const current = Math.floor(Date.now() / 1000);
  let out = '';
  for (const [sec, n] of counts) {
    if (all || sec < current) {
      out += `${process.pid} ${sec} ${n}\n`;
      counts.delete(sec);
    }
  }
  if (out) fs.appendFileSync(statsFile, out);
}
if (statsFile) setInterval(flush, 1000).unref();

const server = http.createServer((req, res) => {
  if (statsFile) {
    const sec = Math.floor(Date.now() / 1000);
    counts.set(sec, (counts.get(sec) || 0) + 1);
  }
  if (closing) res.setHeader('Connection', 'close');
  res.end('ok');
});
server.keepAliveTimeout = 5000;

server.listen(Number(process.env.PORT || 8080), '127.0.0.1', () => {
  if (process.send) process.send('ready');
});

function exit() {
  flush(true);
  process.exit(0);
}

process.on('SIGINT', () => {
  if (closing) return;
  closing = true;
  // Stop accepting without http.Server.close()'s immediate closeIdleConnections().
  net.Server.prototype.close.call(server, exit);
  const idleMs = Number(process.env.DRAIN_IDLE_MS || 1000);
  setTimeout(() => server.closeIdleConnections(), idleMs).unref();
});
process.on('SIGTERM', exit);
