// The PM2 file for server.js, unchanged: `runner ecosystem.config.js` runs it as
// `pm2-runtime ecosystem.config.js` would. ecosystem.toml beside it is the same in TOML.
module.exports = {
  apps: [
    {
      name: 'api',
      script: 'server.js',
      exec_mode: 'cluster',
      instances: 2,
      wait_ready: true,
      listen_timeout: 10000,
      kill_timeout: 5000,
      env: { PORT: '8080' },
    },
  ],
};
