// A Node.js HTTP server exactly as it runs under PM2 in cluster mode: it listens on
// PORT and says `process.send('ready')` once it does. Nothing in it knows about runner:
// runner is the Node cluster primary, so every instance's listen(PORT) shares one socket.
//
// On SIGINT (PM2's and runner's first stop signal) it does PM2's documented graceful
// shutdown: stop accepting, answer the requests in hand, exit. Without it a worker ends
// at once on SIGINT, under PM2 as under runner, and a request it was serving is cut.
'use strict';
const http = require('http');

const server = http.createServer((req, res) => {
  res.end(`hello from pid ${process.pid} (instance ${process.env.NODE_APP_INSTANCE})\n`);
});

server.listen(process.env.PORT || 8080, () => {
  if (process.send) process.send('ready');
});

process.on('SIGINT', () => server.close(() => process.exit(0)));
