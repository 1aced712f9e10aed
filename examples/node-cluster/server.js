// A Node.js HTTP server for runner's cluster mode, unchanged from what a PM2 app does:
// it listens on the socket runner passes as fd 3 (LISTEN_FDS), or on PORT when run
// alone, says `process.send('ready')` once it listens, and drains on SIGINT.
const http = require('http');

const server = http.createServer((req, res) => {
  res.end(`hello from pid ${process.pid} (instance ${process.env.NODE_APP_INSTANCE})\n`);
});

const target = process.env.LISTEN_FDS ? { fd: 3 } : Number(process.env.PORT || 8080);
server.listen(target, () => {
  if (process.send) process.send('ready');
});

// runner's default kill_signal is SIGINT (PM2's): stop accepting, finish what is in
// flight, then exit. Idle keep-alive connections are closed so the drain ends.
process.on('SIGINT', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
