//! Arbitrary bytes on a node instance's IPC channel: framing, the cluster protocol and
//! the answers runner builds. Must never panic nor allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    runner::node_ipc::exercise(data);
});
