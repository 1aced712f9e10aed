//! Readiness signalling (SPEC §3): the sd_notify datagram socket and the Node.js IPC
//! channel. Both are plain non-blocking fds for the one mio event loop; nothing here
//! spawns threads or blocks.

pub mod node_ipc;
pub mod notify;
