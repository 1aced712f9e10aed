// ready.js STAMP DELAY_MS: appends "<ms> start" to STAMP, waits DELAY_MS, appends
// "<ms> ready" and calls process.send('ready') as a PM2 app does; then idles.
const fs = require('fs');
const [stamp, delay] = process.argv.slice(2);
const log = (what) => fs.appendFileSync(stamp, `${Date.now()} ${what}\n`);
log('start');
process.on('SIGINT', () => { log('stop'); process.exit(0); });
setTimeout(() => {
  log(process.send ? 'ready' : 'no-ipc');
  if (process.send) process.send('ready');
}, Number(delay));
setInterval(() => {}, 1 << 30);
