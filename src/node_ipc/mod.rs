//! The Node.js IPC channel runner opens for every node instance (`NODE_CHANNEL_FD`, JSON
//! lines), and everything said on it:
//!
//! - `process.send('ready')`, PM2's readiness message (SPEC §3);
//! - in cluster mode, Node's cluster protocol: runner is the cluster primary, answers a
//!   worker's `queryServer` with a listening socket it binds once per app and passes as
//!   an fd (`SCM_RIGHTS`), so every instance's own `listen()` shares one socket.
//!
//! [`channel`] owns the bytes (framing, bounded reads, queued writes with fd passing);
//! [`cluster`] is the pure protocol: what a message means and what to answer.

pub mod channel;
pub mod cluster;

pub use channel::NodeChannel;
pub use cluster::Incoming;
