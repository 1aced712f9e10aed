//! The control socket: protocol types, the server side served inside the supervisor's mio
//! loop, the client side used by `runner list|status|start|...`, the socket path rules and
//! the `list` table.

pub mod client;
pub mod protocol;
pub mod server;
pub mod socket_path;
pub mod table;
