//! `/proc/PID/stat` parsing with a hostile `comm` (any bytes a process may name itself
//! with: spaces, parentheses, newlines, invalid UTF-8). Raw input must never panic, and a
//! well-formed line around any comm must parse to exactly the fields written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runner::procfs::parse_stat_bytes;

fuzz_target!(|data: &[u8]| {
    // 1. The bytes as a whole stat file.
    let _ = parse_stat_bytes(data);

    // 2. The bytes (after 8 bytes of numbers) as the comm of a well-formed line.
    if data.len() < 8 {
        return;
    }
    let (nums, comm) = data.split_at(8);
    let pid = 1 + i32::from(u16::from_le_bytes([nums[0], nums[1]]));
    let ppid = i32::from(u16::from_le_bytes([nums[2], nums[3]]));
    let pgid = i32::from(nums[4]);
    let utime = u64::from(nums[5]);
    let start = u64::from(u16::from_le_bytes([nums[6], nums[7]]));
    let state = b"RSDZTtXx"[usize::from(nums[0]) % 8];
    let mut line = format!("{pid} (").into_bytes();
    line.extend_from_slice(comm);
    line.extend_from_slice(
        format!(
            ") {} {ppid} {pgid} {pgid} 0 -1 4194560 0 0 0 0 {utime} 3 0 0 20 0 1 0 {start} 1000 5 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n",
            state as char
        )
        .as_bytes(),
    );
    let info = parse_stat_bytes(&line).expect("a well-formed stat line parses, whatever its comm");
    assert_eq!(info.pid, pid);
    assert_eq!(info.ppid, ppid);
    assert_eq!(info.pgid, pgid);
    assert_eq!(info.sid, pgid);
    assert_eq!(info.state, state);
    assert_eq!(info.cpu_ticks, utime + 3);
    assert_eq!(info.start_ticks, start);
});
