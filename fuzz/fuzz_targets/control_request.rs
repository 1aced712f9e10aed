//! Arbitrary bytes as one control-socket request line. Must return Ok or Err, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runner::control::protocol::parse_request;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse_request(data) {
        // A request that parses must survive the round trip the client does.
        let line = serde_json::to_vec(&req).expect("a parsed request serialises");
        let again = parse_request(&line).expect("a serialised request parses");
        assert_eq!(req, again);
    }
});
