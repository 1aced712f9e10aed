//! What `runner logs` serves: each instance's recent lines (a [`Ring`] per instance id) and
//! the clients following new lines.
//!
//! A follower never slows an app or the loop: every line for it is encoded into its own
//! queue of at most [`FOLLOW_QUEUE`] bytes; the loop moves that queue to the client's
//! connection once per wake-up when the connection has room. When the queue is full the
//! line is dropped for that client alone and counted, and once there is room again the
//! client gets `{"dropped":N}` before the next line (the CLI prints `runner: N lines
//! dropped`). A client that went away is forgotten the next time its queue is moved.

use std::collections::HashMap;
use std::time::SystemTime;

use mio::Registry;

use serde::Serialize;

use crate::control::server::{ConnId, Server, Streamed};
use crate::logs::ring::{Ring, Which, RING_BYTES};
use crate::logs::Decor;

/// Bytes of encoded lines queued for one follower beyond what its connection holds.
pub const FOLLOW_QUEUE: usize = 64 * 1024;

/// The instance a stream belongs to, as `runner logs` names it.
#[derive(Debug, Clone)]
pub struct Meta {
    pub name: String,
    pub namespace: String,
    pub instance: u32,
    /// The app's time decoration (no `name[instance]`: the client adds its own).
    pub decor: Decor,
}

/// Which instances a `logs` request is about, kept as a rule so that instances started
/// later (scale, apply) are followed too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    All,
    App(String),
    Id(u32),
    Namespace(String),
}

impl Target {
    fn matches(&self, id: u32, meta: &Meta) -> bool {
        match self {
            Target::All => true,
            Target::App(n) => meta.name == *n,
            Target::Id(i) => *i == id,
            Target::Namespace(ns) => meta.namespace == *ns,
        }
    }
}

/// Which streams a request wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streams {
    Both,
    Only(Which),
}

impl Streams {
    pub fn accepts(self, w: Which) -> bool {
        match self {
            Streams::Both => true,
            Streams::Only(x) => x == w,
        }
    }
}

struct Follower {
    conn: ConnId,
    target: Target,
    streams: Streams,
    queue: Vec<u8>,
    dropped: u64,
}

/// Rings, instance names and followers.
#[derive(Default)]
pub struct Recent {
    rings: HashMap<u32, Ring>,
    meta: HashMap<u32, Meta>,
    followers: Vec<Follower>,
    /// Scratch space for decorating a line.
    scratch: Vec<u8>,
}

#[derive(Serialize)]
struct LineOut<'a> {
    id: u32,
    name: &'a str,
    instance: u32,
    stream: &'static str,
    line: &'a str,
}

impl Recent {
    /// Remembers how instance `id` is named and decorated (at each spawn).
    pub fn describe(&mut self, id: u32, meta: Meta) {
        self.meta.insert(id, meta);
    }

    /// Forgets instances that no longer exist (deleted, scaled down).
    pub fn retain(&mut self, mut exists: impl FnMut(u32) -> bool) {
        self.rings.retain(|id, _| exists(*id));
        self.meta.retain(|id, _| exists(*id));
    }

    /// One line read from instance `id`'s `which` stream.
    pub fn line(&mut self, id: u32, which: Which, line: &[u8], at: SystemTime) {
        self.rings
            .entry(id)
            .or_insert_with(|| Ring::new(RING_BYTES))
            .push(which, line, at);
        if self.followers.is_empty() {
            return;
        }
        let Some(meta) = self.meta.get(&id) else {
            return;
        };
        let mut encoded: Option<Vec<u8>> = None;
        for f in &mut self.followers {
            if !f.streams.accepts(which) || !f.target.matches(id, meta) {
                continue;
            }
            if f.queue.len() >= FOLLOW_QUEUE {
                f.dropped += 1;
                continue;
            }
            if f.dropped > 0 {
                push_dropped(&mut f.queue, f.dropped);
                f.dropped = 0;
            }
            let bytes =
                encoded.get_or_insert_with(|| encode(&mut self.scratch, id, meta, which, line, at));
            f.queue.extend_from_slice(bytes);
        }
    }

    /// The encoded last `n` lines of each instance in `ids` (in that order) that `streams`
    /// accepts, one JSON object per line.
    pub fn backlog(&mut self, ids: &[u32], n: usize, streams: Streams) -> Vec<u8> {
        let mut out = Vec::new();
        for id in ids {
            let (Some(ring), Some(meta)) = (self.rings.get(id), self.meta.get(id)) else {
                continue;
            };
            for e in ring.last(n, |w| streams.accepts(w)) {
                out.extend(encode(&mut self.scratch, *id, meta, e.which, &e.line, e.at));
            }
        }
        out
    }

    /// Starts streaming new lines to `conn`.
    pub fn follow(&mut self, conn: ConnId, target: Target, streams: Streams) {
        self.followers.push(Follower {
            conn,
            target,
            streams,
            queue: Vec::new(),
            dropped: 0,
        });
    }

    /// Whether any client follows.
    pub fn has_followers(&self) -> bool {
        !self.followers.is_empty()
    }

    /// Once per wake-up: hands each follower's queue to its connection when that has room,
    /// tells a follower that lost lines once it can take the notice, and forgets followers
    /// whose connection closed.
    pub fn deliver(&mut self, registry: &Registry, server: &mut Server) {
        self.followers.retain_mut(|f| loop {
            if f.dropped > 0 && f.queue.len() < FOLLOW_QUEUE {
                push_dropped(&mut f.queue, f.dropped);
                f.dropped = 0;
            }
            if f.queue.is_empty() {
                return server.is_open(f.conn);
            }
            match server.stream(registry, f.conn, &f.queue) {
                Streamed::Queued => {
                    f.queue.clear();
                    if f.queue.capacity() > FOLLOW_QUEUE * 2 {
                        f.queue.shrink_to(FOLLOW_QUEUE);
                    }
                    // Room now: a pending drop notice goes out at once, since no event
                    // may come to prompt it.
                }
                Streamed::Full => return true,
                Streamed::Gone => return false,
            }
        });
    }
}

fn push_dropped(queue: &mut Vec<u8>, n: u64) {
    queue.extend_from_slice(format!("{{\"dropped\":{n}}}\n").as_bytes());
}

/// One line as the protocol's JSON object, newline included. Bytes that are not UTF-8
/// become U+FFFD (JSON strings are Unicode).
fn encode(
    scratch: &mut Vec<u8>,
    id: u32,
    meta: &Meta,
    which: Which,
    line: &[u8],
    at: SystemTime,
) -> Vec<u8> {
    scratch.clear();
    meta.decor.format(line, at, scratch);
    scratch.pop(); // the newline
    let text = String::from_utf8_lossy(scratch);
    let out = LineOut {
        id,
        name: &meta.name,
        instance: meta.instance,
        stream: which.as_str(),
        line: &text,
    };
    let mut v = serde_json::to_vec(&out).unwrap_or_else(|_| b"{}".to_vec());
    v.push(b'\n');
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn meta(name: &str, i: u32) -> Meta {
        Meta {
            name: name.into(),
            namespace: "default".into(),
            instance: i,
            decor: Decor::default(),
        }
    }

    fn lines(bytes: &[u8]) -> Vec<serde_json::Value> {
        bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn backlog_gives_the_last_lines_of_each_instance_in_order() {
        let mut r = Recent::default();
        r.describe(0, meta("api", 0));
        r.describe(1, meta("api", 1));
        for i in 0..10 {
            r.line(0, Which::Out, format!("a{i}").as_bytes(), UNIX_EPOCH);
            r.line(1, Which::Err, format!("b{i}").as_bytes(), UNIX_EPOCH);
        }
        let got = lines(&r.backlog(&[0, 1], 2, Streams::Both));
        let text: Vec<&str> = got.iter().map(|v| v["line"].as_str().unwrap()).collect();
        assert_eq!(text, ["a8", "a9", "b8", "b9"]);
        assert_eq!(got[2]["name"], "api");
        assert_eq!(got[2]["instance"], 1);
        assert_eq!(got[2]["stream"], "err");
        let only_out = lines(&r.backlog(&[0, 1], 5, Streams::Only(Which::Out)));
        assert_eq!(only_out.len(), 5);
    }

    #[test]
    fn a_follower_queue_is_bounded_and_counts_what_it_drops() {
        let mut r = Recent::default();
        r.describe(0, meta("api", 0));
        r.follow(7, Target::App("api".into()), Streams::Both);
        let line = vec![b'x'; 1000];
        for _ in 0..1000 {
            r.line(0, Which::Out, &line, UNIX_EPOCH);
        }
        let f = &r.followers[0];
        assert!(f.queue.len() < FOLLOW_QUEUE + 2000);
        assert!(f.dropped > 900, "{}", f.dropped);
        // Another app's lines are not for this follower.
        r.describe(1, meta("web", 0));
        let before = r.followers[0].dropped;
        r.line(1, Which::Out, b"x", UNIX_EPOCH);
        assert_eq!(r.followers[0].dropped, before);
    }

    #[test]
    fn non_utf8_bytes_become_replacement_characters() {
        let mut r = Recent::default();
        r.describe(0, meta("api", 0));
        r.line(0, Which::Out, b"ok \xff end", UNIX_EPOCH);
        let got = lines(&r.backlog(&[0], 1, Streams::Both));
        assert_eq!(got[0]["line"], "ok \u{fffd} end");
    }
}
