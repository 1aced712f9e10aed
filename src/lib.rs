//! runner: a foreground process supervisor with PM2's ecosystem model and tini's PID-1
//! correctness. The binary is a thin shell over this library so that tests and fuzz
//! targets reach the same code.

pub mod as_user;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod control;
pub mod core;
pub mod cron;
pub mod glob;
pub mod logs;
pub mod node_ipc;
pub mod procfs;
pub mod readiness;
pub mod supervisor;
pub mod tz;
