//! The Node.js IPC channel runner opens for every node instance (`NODE_CHANNEL_FD`, JSON
//! lines), and everything said on it:
//!
//! - `process.send('ready')`, PM2's readiness message (SPEC §3);
//! - in cluster mode, Node's cluster protocol: runner is the cluster primary, answers a
//!   worker's `queryServer` with a listening socket it binds once per app and passes as
//!   an fd (`SCM_RIGHTS`), so every instance's own `listen()` shares one socket.
//!
//! [`channel`] owns the bytes (framing, bounded reads, queued writes with fd passing);
//! [`cluster`] is the pure protocol: what a message means and what to answer.

pub mod channel;
pub mod cluster;

pub use channel::NodeChannel;
pub use cluster::Incoming;

use nix::errno::Errno;

/// Arbitrary bytes as an instance would write them on its channel: split into chunks
/// (the first byte picks the size, as reads split a stream), framed, every message
/// classified and answered the way runner would. Returns the number of messages. What the
/// `node_ipc` fuzz target runs; it must never panic nor allocate without bound.
pub fn exercise(data: &[u8]) -> usize {
    let (chunk, rest) = match data.split_first() {
        Some((b, rest)) => (usize::from(*b).max(1), rest),
        None => (1, data),
    };
    let mut reader = channel::LineReader::default();
    let mut msgs = Vec::new();
    for part in rest.chunks(chunk) {
        reader.feed(part, &mut msgs);
    }
    reader.close();
    for m in &msgs {
        match cluster::classify(m) {
            Incoming::Query(q) => {
                let ok = cluster::answer(&q, None, &q.data, 1);
                let err = cluster::answer(&q, Some(Errno::EADDRINUSE), &q.data, 2);
                assert_eq!(ok["msg"]["ack"], q.seq);
                assert_eq!(err["ack"], q.seq);
                let _ = q.target.to_string();
            }
            Incoming::WantsAck(seq) => {
                let _ = cluster::ack(&seq, 3);
            }
            _ => {}
        }
    }
    msgs.len()
}

#[cfg(test)]
mod tests {
    /// The fuzz target's body over a corpus of real worker messages, cut at every chunk
    /// size, plus pseudo-random mutations of them (cargo-fuzz is not needed to run it).
    #[test]
    fn the_reader_survives_real_messages_cut_anywhere_and_mutated() {
        let corpus: &[&[u8]] = &[
            b"\"ready\"\n",
            b"{\"cmd\":\"NODE_CLUSTER\",\"act\":\"online\",\"seq\":0}\n",
            b"{\"cmd\":\"NODE_CLUSTER\",\"act\":\"queryServer\",\"index\":0,\"data\":null,\"address\":null,\"port\":3456,\"addressType\":4,\"backlog\":511,\"seq\":1}\n",
            b"{\"cmd\":\"NODE_CLUSTER\",\"act\":\"queryServer\",\"index\":0,\"data\":null,\"address\":\"/tmp/x.sock\",\"port\":-1,\"addressType\":-1,\"seq\":2}\n",
            b"{\"cmd\":\"NODE_CLUSTER\",\"act\":\"queryServer\",\"index\":0,\"address\":\"::\",\"port\":53,\"addressType\":\"udp6\",\"flags\":5,\"seq\":3}\n",
            b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n{\"cmd\":\"NODE_HANDLE_NACK\"}\n",
            b"{\"cmd\":\"NODE_CLUSTER\",\"act\":\"listening\",\"port\":3456,\"seq\":4}\n",
            b"{\"cmd\":\"NODE_CLUSTER\",\"act\":\"exitedAfterDisconnect\",\"seq\":5}\n",
            b"{\"cmd\":\"NODE_CLUSTER\",\"act\":\"queryServer\",\"seq\":1e400,\"port\":1e99,\"addressType\":[4]}\n",
            b"not json\n\xff\xfe\n{\"cmd\":\"NODE_CLUSTER\",\"act\":\"queryServer\",\"seq\":-1,\"fd\":-7}\n",
        ];
        let all: Vec<u8> = corpus.concat();
        for chunk in 0..=255u8 {
            let mut input = vec![chunk];
            input.extend_from_slice(&all);
            assert_eq!(super::exercise(&input), 10, "chunk {chunk}");
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut input = corpus[(next() % corpus.len() as u64) as usize].to_vec();
            for _ in 0..(next() % 8) {
                let at = (next() % input.len() as u64) as usize;
                match next() % 3 {
                    0 => input[at] = next() as u8,
                    1 => {
                        input.remove(at);
                    }
                    _ => input.insert(at, b"{}[]\",:0-\n"[(next() % 10) as usize]),
                }
                if input.is_empty() {
                    break;
                }
            }
            super::exercise(&input);
        }
    }
}
