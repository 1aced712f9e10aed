//! Whole lines out of arbitrary chunks, with a bound on how long a line may get.

/// Assembles whole lines from the chunks a pipe delivers; bounded by `max_line`.
///
/// Bytes are not interpreted except for `\n`: a `\r` before it, invalid UTF-8 or NUL bytes
/// all pass through untouched. A line longer than `max_line` is cut into `max_line`-sized
/// pieces instead of being held (and growing) until its newline arrives.
#[derive(Debug)]
pub struct LineBuffer {
    /// The start of a line whose newline hasn't arrived yet; never more than `max`.
    partial: Vec<u8>,
    max: usize,
}

impl LineBuffer {
    /// A buffer that splits lines longer than `max_line` bytes (at least 1). Memory grows
    /// only as far as an unterminated line needs.
    pub fn new(max_line: usize) -> Self {
        LineBuffer {
            partial: Vec::new(),
            max: max_line.max(1),
        }
    }

    /// The longest piece `push` emits.
    pub fn max_line(&self) -> usize {
        self.max
    }

    /// Bytes held back, waiting for their newline.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Feeds `data`. Calls `emit(piece, complete)` for every complete line (without its
    /// `\n`, `complete == true`) and for every `max_line`-sized piece cut from an over-long
    /// line (`complete == false`; the last piece of such a line, the one the newline ends,
    /// has `complete == true`). A line of exactly `max_line` bytes is not cut.
    pub fn push(&mut self, data: &[u8], mut emit: impl FnMut(&[u8], bool)) {
        let mut rest = data;
        while let Some(nl) = find_newline(rest) {
            let line = &rest[..nl];
            rest = &rest[nl + 1..];
            if self.partial.is_empty() {
                // Fast path: the whole line is in this chunk, no copy.
                let mut line = line;
                while line.len() > self.max {
                    emit(&line[..self.max], false);
                    line = &line[self.max..];
                }
                emit(line, true);
            } else {
                self.append(line, &mut emit);
                emit(&self.partial, true);
                self.partial.clear();
            }
        }
        self.append(rest, &mut emit);
    }

    /// At end of input: emits what is left without a newline (if anything) with
    /// `complete == false`, and empties the buffer.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8], bool)) {
        if !self.partial.is_empty() {
            emit(&self.partial, false);
            self.partial.clear();
        }
        // Give back the memory of a long line: a finished stream keeps nothing.
        self.partial = Vec::new();
    }

    /// Appends bytes known to contain no newline, emitting full pieces as they fill up. A
    /// full piece is held until a further byte shows it isn't followed by its newline.
    fn append(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(&[u8], bool)) {
        while !bytes.is_empty() {
            if self.partial.len() == self.max {
                emit(&self.partial, false);
                self.partial.clear();
            }
            let take = (self.max - self.partial.len()).min(bytes.len());
            self.partial.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
    }
}

/// The first `\n` in `s`: the memchr crate's vectorised search, several times faster on
/// long output than a byte-by-byte one.
fn find_newline(s: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(max: usize, chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut lb = LineBuffer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            lb.push(c, |l, done| out.push((l.to_vec(), done)));
        }
        lb.finish(|l, done| out.push((l.to_vec(), done)));
        out
    }

    fn lines(v: &[(Vec<u8>, bool)]) -> Vec<&[u8]> {
        v.iter().map(|(l, _)| l.as_slice()).collect()
    }

    #[test]
    fn lines_are_joined_across_chunk_boundaries() {
        let out = run(64, &[b"hel", b"lo\nwor", b"ld", b"\n", b"\nx\n"]);
        assert_eq!(lines(&out), vec![&b"hello"[..], b"world", b"", b"x"]);
        assert!(out.iter().all(|(_, done)| *done));
    }

    #[test]
    fn crlf_keeps_the_carriage_return() {
        let out = run(64, &[b"a\r\nb\r", b"\n"]);
        assert_eq!(lines(&out), vec![&b"a\r"[..], b"b\r"]);
    }

    #[test]
    fn overlong_line_is_cut_at_max_in_one_chunk() {
        let out = run(4, &[b"abcdefghij\nok\n"]);
        assert_eq!(
            out,
            vec![
                (b"abcd".to_vec(), false),
                (b"efgh".to_vec(), false),
                (b"ij".to_vec(), true),
                (b"ok".to_vec(), true),
            ]
        );
    }

    #[test]
    fn overlong_line_is_cut_at_max_across_chunks_without_waiting_for_newline() {
        let mut lb = LineBuffer::new(4);
        let mut out: Vec<Vec<u8>> = Vec::new();
        lb.push(b"ab", |l, _| out.push(l.to_vec()));
        lb.push(b"cdefghijk", |l, _| out.push(l.to_vec()));
        // Two full pieces are out, "ijk" waits; memory stays bounded.
        assert_eq!(out, vec![b"abcd".to_vec(), b"efgh".to_vec()]);
        assert!(lb.buffered() <= 4);
        lb.push(b"\n", |l, _| out.push(l.to_vec()));
        assert_eq!(out.last().unwrap(), b"ijk");
    }

    #[test]
    fn line_of_exactly_max_bytes_is_not_cut() {
        let out = run(4, &[b"ab", b"cd", b"\nefgh\n"]);
        assert_eq!(
            out,
            vec![(b"abcd".to_vec(), true), (b"efgh".to_vec(), true)]
        );
        let out = run(4, &[b"abcd", b"e\n"]);
        assert_eq!(out, vec![(b"abcd".to_vec(), false), (b"e".to_vec(), true)]);
    }

    #[test]
    fn finish_emits_the_unterminated_rest_once() {
        let mut lb = LineBuffer::new(64);
        let mut out = Vec::new();
        lb.push(b"one\ntwo", |l, d| out.push((l.to_vec(), d)));
        lb.finish(|l, d| out.push((l.to_vec(), d)));
        lb.finish(|l, d| out.push((l.to_vec(), d)));
        assert_eq!(out, vec![(b"one".to_vec(), true), (b"two".to_vec(), false)]);
        assert_eq!(lb.buffered(), 0);
    }

    #[test]
    fn binary_bytes_pass_through() {
        let data: Vec<u8> = (0u8..=255).filter(|&b| b != b'\n').collect();
        let mut chunk = data.clone();
        chunk.push(b'\n');
        let out = run(1024, &[&chunk[..100], &chunk[100..]]);
        assert_eq!(out, vec![(data, true)]);
    }
}
