//! Readiness signalling (SPEC §3): the sd_notify datagram socket. The Node.js IPC
//! channel, which also carries readiness, has its own home in [`crate::node_ipc`].
//! Plain non-blocking fds for the one mio event loop; nothing here spawns threads or
//! blocks.

pub(crate) mod attribution;
pub(crate) mod http_check;
pub mod notify;
pub(crate) mod probes;
pub(crate) mod systemd;
