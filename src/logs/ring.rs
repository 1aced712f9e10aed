//! The recent output of one instance, for `runner logs`: a byte-bounded ring of whole lines.
//!
//! Bounded by bytes rather than lines because lines may be up to 64 KiB: memory is what
//! must stay predictable (SPEC: RSS of 50 instances within 3 MiB). The buffer is allocated
//! on the first line, so an instance that prints nothing costs nothing. Each line is stored
//! with its stream and the time it was read, so `runner logs` can show the timestamp the
//! app's decoration asks for.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Default bytes kept per instance (about 200 lines of 60 bytes).
pub const RING_BYTES: usize = 16 * 1024;

/// length (u32) + stream (u8) + milliseconds since the epoch (i64).
const HEADER: usize = 4 + 1 + 8;

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Which {
    Out,
    Err,
}

impl Which {
    /// `"out"` or `"err"`, as in the protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Which::Out => "out",
            Which::Err => "err",
        }
    }
}

/// One stored line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub which: Which,
    pub at: SystemTime,
    pub line: Vec<u8>,
}

/// The last lines of one instance, at most `cap` bytes including a small header per line.
#[derive(Debug)]
pub struct Ring {
    /// `cap` bytes once the first line arrived; records wrap around its end.
    buf: Box<[u8]>,
    /// Offset of the oldest record and bytes in use.
    head: usize,
    used: usize,
    cap: usize,
    lines: usize,
}

impl Default for Ring {
    fn default() -> Self {
        Ring::new(RING_BYTES)
    }
}

impl Ring {
    /// An empty ring holding at most `cap` bytes (at least one header and one byte).
    pub fn new(cap: usize) -> Ring {
        Ring {
            buf: Box::default(),
            head: 0,
            used: 0,
            cap: cap.max(HEADER + 1),
            lines: 0,
        }
    }

    /// Lines stored.
    pub fn len(&self) -> usize {
        self.lines
    }

    /// Whether no line is stored.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// Stores `line` (without its newline), dropping the oldest lines to make room. A line
    /// longer than the whole ring keeps its beginning.
    pub fn push(&mut self, which: Which, line: &[u8], at: SystemTime) {
        let line = &line[..line.len().min(self.cap - HEADER)];
        let need = HEADER + line.len();
        while self.used + need > self.cap && self.lines > 0 {
            self.pop_front();
        }
        if self.buf.is_empty() {
            self.buf = vec![0u8; self.cap].into_boxed_slice();
        }
        let ms = match at.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(_) => 0,
        };
        let mut header = [0u8; HEADER];
        header[..4].copy_from_slice(&(line.len() as u32).to_le_bytes());
        header[4] = match which {
            Which::Out => 0,
            Which::Err => 1,
        };
        header[5..].copy_from_slice(&ms.to_le_bytes());
        let end = (self.head + self.used) % self.cap;
        self.write_at(end, &header);
        self.write_at((end + HEADER) % self.cap, line);
        self.used += need;
        self.lines += 1;
    }

    /// Copies `data` into the ring at offset `at`, wrapping at the end.
    fn write_at(&mut self, at: usize, data: &[u8]) {
        let first = data.len().min(self.cap - at);
        self.buf[at..at + first].copy_from_slice(&data[..first]);
        self.buf[..data.len() - first].copy_from_slice(&data[first..]);
    }

    /// Copies `out.len()` bytes from the ring at logical offset `at` (from the oldest).
    fn read_at(&self, at: usize, out: &mut [u8]) {
        let start = (self.head + at) % self.cap;
        let first = out.len().min(self.cap - start);
        out[..first].copy_from_slice(&self.buf[start..start + first]);
        let rest = out.len() - first;
        out[first..].copy_from_slice(&self.buf[..rest]);
    }

    fn pop_front(&mut self) {
        let n = HEADER + self.record_len(0);
        self.head = (self.head + n) % self.cap;
        self.used -= n;
        self.lines -= 1;
    }

    fn record_len(&self, at: usize) -> usize {
        let mut n = [0u8; 4];
        self.read_at(at, &mut n);
        u32::from_le_bytes(n) as usize
    }

    /// The last `n` lines that `filter` accepts, oldest first.
    pub fn last(&self, n: usize, filter: impl Fn(Which) -> bool) -> Vec<Entry> {
        let mut starts = Vec::with_capacity(self.lines);
        let mut at = 0;
        while at < self.used {
            starts.push(at);
            at += HEADER + self.record_len(at);
        }
        let mut picked: Vec<Entry> = starts
            .iter()
            .rev()
            .map(|&s| self.entry(s))
            .filter(|e| filter(e.which))
            .take(n)
            .collect();
        picked.reverse();
        picked
    }

    fn entry(&self, at: usize) -> Entry {
        let mut header = [0u8; HEADER];
        self.read_at(at, &mut header);
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let which = if header[4] == 0 {
            Which::Out
        } else {
            Which::Err
        };
        let mut ms = [0u8; 8];
        ms.copy_from_slice(&header[5..]);
        let ms = i64::from_le_bytes(ms).max(0) as u64;
        let mut line = vec![0u8; len];
        self.read_at(at + HEADER, &mut line);
        Entry {
            which,
            at: UNIX_EPOCH + Duration::from_millis(ms),
            line,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn texts(v: &[Entry]) -> Vec<String> {
        v.iter()
            .map(|e| String::from_utf8_lossy(&e.line).into_owned())
            .collect()
    }

    #[test]
    fn keeps_the_last_lines_in_order_within_its_bytes() {
        let mut r = Ring::new(HEADER * 3 + 6);
        for (i, l) in ["a1", "b2", "c3", "d4"].iter().enumerate() {
            r.push(Which::Out, l.as_bytes(), t(i as u64));
        }
        assert_eq!(r.len(), 3);
        assert_eq!(texts(&r.last(10, |_| true)), ["b2", "c3", "d4"]);
        assert_eq!(texts(&r.last(2, |_| true)), ["c3", "d4"]);
        assert_eq!(r.last(1, |_| true)[0].at, t(3));
        assert!(r.used <= r.cap);
    }

    #[test]
    fn filters_by_stream_and_keeps_order_across_streams() {
        let mut r = Ring::new(4096);
        r.push(Which::Out, b"o1", t(1));
        r.push(Which::Err, b"e1", t(2));
        r.push(Which::Out, b"o2", t(3));
        r.push(Which::Err, b"", t(4));
        assert_eq!(texts(&r.last(3, |_| true)), ["e1", "o2", ""]);
        assert_eq!(texts(&r.last(5, |w| w == Which::Out)), ["o1", "o2"]);
        assert_eq!(texts(&r.last(1, |w| w == Which::Err)), [""]);
        assert_eq!(r.last(0, |_| true), vec![]);
    }

    #[test]
    fn a_line_longer_than_the_ring_keeps_its_start_and_evicts_all_else() {
        let mut r = Ring::new(HEADER + 4);
        r.push(Which::Out, b"ab", t(0));
        r.push(Which::Err, b"0123456789", t(1));
        assert_eq!(texts(&r.last(5, |_| true)), ["0123"]);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn nothing_is_allocated_before_the_first_line() {
        let r = Ring::default();
        assert!(r.buf.is_empty());
        assert!(r.is_empty());
    }

    #[test]
    fn wraps_many_times_without_losing_track() {
        let mut r = Ring::new(200);
        for i in 0..10_000u64 {
            r.push(Which::Out, format!("line {i}").as_bytes(), t(i));
        }
        let last = r.last(3, |_| true);
        assert_eq!(texts(&last), ["line 9997", "line 9998", "line 9999"]);
        assert_eq!(last[2].at, t(9999));
    }
}
