// A Node.js HTTP server for runner's cluster mode, as a PM2 app would be written: it
// listens on the socket runner passes as fd 3 (LISTEN_FDS), or on PORT when run alone,
// says `process.send('ready')` once it listens, and drains on SIGINT.
'use strict';
const http = require('http');
const net = require('net');

let closing = false;

const server = http.createServer((req, res) => {
  // While draining, tell keep-alive clients to reconnect: the next connection reaches
  // an instance that is not stopping.
  if (closing) res.setHeader('Connection', 'close');
  res.end(`hello from pid ${process.pid} (instance ${process.env.NODE_APP_INSTANCE})\n`);
});

const target = process.env.LISTEN_FDS ? { fd: 3 } : Number(process.env.PORT || 8080);
server.listen(target, () => {
  if (process.send) process.send('ready');
});

// runner's default kill_signal is SIGINT (PM2's). Stop accepting, but do not use
// http.Server.close(): it closes idle keep-alive connections at once, racing a client
// that is sending its next request on one. Connections still idle after a second are
// closed; the process exits when the last one is gone.
process.on('SIGINT', () => {
  if (closing) return;
  closing = true;
  net.Server.prototype.close.call(server, () => process.exit(0));
  setTimeout(() => server.closeIdleConnections(), 1000).unref();
});
