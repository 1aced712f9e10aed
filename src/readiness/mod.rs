//! Every way an app tells runner it is ready (SPEC §3), and how runner tells systemd:
//!
//! - [`notify`]: the sd_notify wire format and datagram socket;
//! - [`attribution`]: which instance a datagram comes from (the sender's pid and its
//!   ancestors), turned into what the core hears;
//! - [`probes`] (with [`http_check`], which health checks share): `ready_check` for apps
//!   that cannot speak, a TCP connect, an HTTP GET or an `exec:` command;
//! - [`systemd`]: runner itself as a `Type=notify` service.
//!
//! The Node.js IPC channel, which also carries readiness, has its own home in
//! [`crate::node_ipc`]. Plain non-blocking fds for the one mio event loop; nothing here
//! spawns threads or blocks, and the loop hands in the mio tokens (`supervisor::tokens`).

pub(crate) mod attribution;
pub(crate) mod http_check;
pub mod notify;
pub(crate) mod probes;
pub(crate) mod systemd;
