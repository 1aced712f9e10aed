//! Node's cluster protocol, primary side, as a pure function of the messages: what a
//! worker's message means ([`classify`]) and the answers runner writes back.
//!
//! Node (lib/internal/cluster/child.js) makes a process a cluster worker when
//! `NODE_UNIQUE_ID` is set and it has an IPC channel. Every `listen()` (and `dgram`
//! `bind()`) that is not `exclusive` then sends the primary
//! `{cmd:'NODE_CLUSTER', act:'queryServer', seq, address, port, addressType, fd, flags,
//! backlog, index, data}` and waits for `{cmd:'NODE_CLUSTER', ack: seq, errno, key,
//! data}`. With a handle attached (wrapped as `{cmd:'NODE_HANDLE', type, msg}` and the
//! fd in `SCM_RIGHTS`), the worker listens on that socket itself: Node's shared-handle
//! policy (`NODE_CLUSTER_SCHED_POLICY=none`), where the kernel balances connections.
//! Without one and with `errno` set, `listen()` fails with that errno, as Node's own
//! primary reports a failed bind.

use std::net::IpAddr;
use std::path::PathBuf;

use nix::errno::Errno;
use serde_json::{json, Value};

/// Whether a message means "ready": exactly the JSON string `"ready"`, as PM2 checks.
pub fn is_ready(msg: &Value) -> bool {
    msg.as_str() == Some("ready")
}

/// What a message from an instance asks of runner.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// `process.send('ready')`.
    Ready,
    /// A worker asks for a listening socket.
    Query(Query),
    /// A worker wants its message acknowledged (`exitedAfterDisconnect` before it
    /// disconnects); the value is its `seq`.
    WantsAck(Value),
    /// A worker's server is listening (Node's `listening` message).
    Listening,
    /// The worker received the handle runner passed.
    HandleAck,
    /// The worker lost the handle runner passed: send it again.
    HandleNack,
    /// Anything else (`online`, `close`, the app's own messages): nothing
    /// to answer.
    Other,
}

/// A `queryServer` request.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The request's `seq`, echoed as `ack`.
    pub seq: Value,
    /// Node's key for this listen (`address:port:addressType:fd:index`): the same listen
    /// in every instance of an app has the same key, so it names the shared socket.
    pub key: String,
    pub target: Target,
    /// The backlog Node would listen with (its default: 511).
    pub backlog: i32,
    /// Server data (TLS session ticket keys) that every worker must share: the first
    /// worker's is kept and given to all.
    pub data: Value,
}

/// The socket a query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `ip` None: any address, IPv6 dual-stack first, then IPv4 (as Node binds).
    Tcp {
        ip: Option<IpAddr>,
        port: u16,
        v6only: bool,
    },
    Udp {
        ip: IpAddr,
        port: u16,
        reuse_addr: bool,
        v6only: bool,
    },
    Unix(PathBuf),
    /// `listen({fd: N})`: the Nth-from-3 socket runner passed (`listen` key).
    Fd(i64),
    /// Fields Node never sends: answered with this errno.
    Invalid(Errno),
}

impl Target {
    /// True for a datagram socket (the handle type Node is told).
    pub fn is_udp(&self) -> bool {
        matches!(self, Target::Udp { .. })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp { ip: None, port, .. } => write!(f, "port {port} (any address)"),
            Target::Tcp {
                ip: Some(IpAddr::V6(ip)),
                port,
                ..
            } => write!(f, "[{ip}]:{port}"),
            Target::Tcp {
                ip: Some(ip), port, ..
            } => write!(f, "{ip}:{port}"),
            Target::Udp {
                ip: IpAddr::V6(ip),
                port,
                ..
            } => write!(f, "udp [{ip}]:{port}"),
            Target::Udp { ip, port, .. } => write!(f, "udp {ip}:{port}"),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
            Target::Fd(n) => write!(f, "fd {n}"),
            Target::Invalid(e) => write!(f, "an invalid address ({e})"),
        }
    }
}

/// Node's `UV_TCP_IPV6ONLY` and `UV_UDP_IPV6ONLY`.
const IPV6ONLY: u64 = 1;
/// Node's `UV_UDP_REUSEADDR`.
const UDP_REUSEADDR: u64 = 4;
/// Node's default backlog (it passes 511 so the kernel rounds to 512).
const NODE_BACKLOG: i32 = 511;
/// Longest key kept: keys come from the app, and runner stores them.
const MAX_KEY: usize = 4096;

/// What `msg` asks of runner. Never fails: anything unexpected is [`Incoming::Other`].
pub fn classify(msg: &Value) -> Incoming {
    if is_ready(msg) {
        return Incoming::Ready;
    }
    let Some(obj) = msg.as_object() else {
        return Incoming::Other;
    };
    match obj.get("cmd").and_then(Value::as_str) {
        Some("NODE_HANDLE_ACK") => return Incoming::HandleAck,
        Some("NODE_HANDLE_NACK") => return Incoming::HandleNack,
        Some("NODE_CLUSTER") => {}
        _ => return Incoming::Other,
    }
    let seq = match obj.get("seq") {
        Some(s @ Value::Number(_)) => s.clone(),
        _ => return Incoming::Other,
    };
    match obj.get("act").and_then(Value::as_str) {
        Some("queryServer") => query(obj, seq).map_or(Incoming::Other, Incoming::Query),
        Some("exitedAfterDisconnect") => Incoming::WantsAck(seq),
        Some("listening") => Incoming::Listening,
        _ => Incoming::Other,
    }
}

fn query(obj: &serde_json::Map<String, Value>, seq: Value) -> Option<Query> {
    let key = [
        js_string(obj.get("address")),
        js_string(obj.get("port")),
        js_string(obj.get("addressType")),
        js_string(obj.get("fd")),
        js_string(obj.get("index")),
    ]
    .join(":");
    if key.len() > MAX_KEY {
        return None;
    }
    let backlog = obj
        .get("backlog")
        .and_then(Value::as_i64)
        .filter(|b| *b > 0)
        .map_or(NODE_BACKLOG, |b| b.min(i64::from(i32::MAX)) as i32);
    Some(Query {
        seq,
        key,
        target: target(obj),
        backlog,
        data: obj.get("data").cloned().unwrap_or(Value::Null),
    })
}

fn target(obj: &serde_json::Map<String, Value>) -> Target {
    let address = obj.get("address").and_then(Value::as_str);
    let port = obj.get("port").and_then(Value::as_i64);
    let flags = obj.get("flags").and_then(Value::as_u64).unwrap_or(0);
    let fd = obj.get("fd").and_then(Value::as_i64);
    let kind = obj.get("addressType");
    if let Some(fd) = fd.filter(|fd| *fd >= 0) {
        return Target::Fd(fd);
    }
    let port16 = |p: Option<i64>| p.and_then(|p| u16::try_from(p).ok());
    let ip = |a: Option<&str>| a.and_then(|a| a.parse::<IpAddr>().ok());
    match kind {
        Some(Value::String(s)) if s == "udp4" || s == "udp6" => match (ip(address), port16(port)) {
            (Some(ip), Some(port)) if ip.is_ipv6() == (s == "udp6") => Target::Udp {
                ip,
                port,
                reuse_addr: flags & UDP_REUSEADDR != 0,
                v6only: flags & IPV6ONLY != 0,
            },
            _ => Target::Invalid(Errno::EINVAL),
        },
        Some(Value::Number(n)) if n.as_i64() == Some(-1) => match address {
            Some(path) if path.starts_with('/') && !path.contains('\0') => {
                Target::Unix(PathBuf::from(path))
            }
            _ => Target::Invalid(Errno::EINVAL),
        },
        Some(Value::Number(n)) if matches!(n.as_i64(), Some(4 | 6)) => {
            let Some(port) = port16(port) else {
                return Target::Invalid(Errno::EINVAL);
            };
            let v6 = n.as_i64() == Some(6);
            match address {
                None => Target::Tcp {
                    ip: None,
                    port,
                    v6only: false,
                },
                Some(a) => match ip(Some(a)) {
                    Some(ip) if ip.is_ipv6() == v6 => Target::Tcp {
                        ip: Some(ip),
                        port,
                        v6only: v6 && flags & IPV6ONLY != 0,
                    },
                    _ => Target::Invalid(Errno::EINVAL),
                },
            }
        }
        _ => Target::Invalid(Errno::EINVAL),
    }
}

/// A JSON value as JavaScript's template literal prints it (the key's parts).
fn js_string(v: Option<&Value>) -> String {
    match v {
        None => "undefined".into(),
        Some(Value::Null) => "null".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Array(_) | Value::Object(_)) => "[object]".into(),
    }
}

/// The answer to `q`: `errno` 0 with the handle passed alongside, or the errno of the
/// failed bind (no handle). `seq` is runner's own message counter for this channel.
pub fn answer(q: &Query, errno: Option<Errno>, data: &Value, seq: u64) -> Value {
    // libuv's error numbers are the negated errno on Linux; the worker turns them into
    // `EADDRINUSE` and friends.
    let errno = errno.map_or(0, |e| -(e as i32));
    let msg = json!({
        "cmd": "NODE_CLUSTER",
        "errno": errno,
        "key": q.key,
        "ack": q.seq,
        "data": data,
        "seq": seq,
    });
    if errno != 0 {
        return msg;
    }
    let kind = if q.target.is_udp() {
        "dgram.Native"
    } else {
        "net.Native"
    };
    json!({ "cmd": "NODE_HANDLE", "type": kind, "msg": msg })
}

/// Acknowledges a worker's message.
pub fn ack(of: &Value, seq: u64) -> Value {
    json!({ "cmd": "NODE_CLUSTER", "ack": of, "seq": seq })
}

/// Node's `worker.disconnect()` from the primary: the worker closes its servers, lets
/// its connections finish, then closes the channel.
pub fn disconnect(seq: u64) -> Value {
    json!({ "cmd": "NODE_CLUSTER", "act": "disconnect", "seq": seq })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(v: Value) -> Query {
        match classify(&v) {
            Incoming::Query(q) => q,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn is_ready_exact_string_only() {
        assert!(is_ready(&json!("ready")));
        assert!(!is_ready(&json!("Ready")));
        assert!(!is_ready(&json!("ready ")));
        assert!(!is_ready(&json!({"type": "ready"})));
        assert!(!is_ready(&json!({"type": "process:msg", "data": "ready"})));
        assert!(!is_ready(&json!(["ready"])));
        assert!(!is_ready(&json!(null)));
    }

    #[test]
    fn listen_on_a_port_without_host_asks_for_any_address_with_nodes_key() {
        let q = q(
            json!({"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,
            "address":null,"port":3456,"addressType":4,"backlog":null,"seq":1}),
        );
        assert_eq!(q.key, "null:3456:4:undefined:0");
        assert_eq!(
            q.target,
            Target::Tcp {
                ip: None,
                port: 3456,
                v6only: false
            }
        );
        assert_eq!(q.backlog, 511);
        assert_eq!(q.seq, json!(1));
    }

    #[test]
    fn hosts_ipv6_only_unix_paths_udp_and_fds_are_told_apart() {
        let t = |v: Value| q(v).target;
        let base = json!({"cmd":"NODE_CLUSTER","act":"queryServer","seq":0,"index":0});
        let with = |extra: Value| {
            let mut b = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                b[k] = v.clone();
            }
            b
        };
        assert_eq!(
            t(with(
                json!({"address":"::1","port":80,"addressType":6,"flags":1})
            )),
            Target::Tcp {
                ip: Some("::1".parse().unwrap()),
                port: 80,
                v6only: true
            }
        );
        assert_eq!(
            t(with(
                json!({"address":"/tmp/s.sock","port":-1,"addressType":-1})
            )),
            Target::Unix("/tmp/s.sock".into())
        );
        assert_eq!(
            t(with(
                json!({"address":"0.0.0.0","port":5353,"addressType":"udp4","flags":4})
            )),
            Target::Udp {
                ip: "0.0.0.0".parse().unwrap(),
                port: 5353,
                reuse_addr: true,
                v6only: false
            }
        );
        assert_eq!(
            t(with(
                json!({"address":null,"port":null,"addressType":null,"fd":3})
            )),
            Target::Fd(3)
        );
        for bad in [
            json!({"address":"x","port":1,"addressType":4}),
            json!({"address":"::1","port":1,"addressType":4}),
            json!({"address":null,"port":70000,"addressType":4}),
            json!({"address":"rel/path","port":-1,"addressType":-1}),
            json!({"address":null,"port":1,"addressType":"tcp"}),
        ] {
            assert_eq!(
                t(with(bad.clone())),
                Target::Invalid(Errno::EINVAL),
                "{bad}"
            );
        }
    }

    #[test]
    fn anything_unexpected_is_other_never_a_panic() {
        for v in [
            json!(null),
            json!(1),
            json!("hello"),
            json!({"cmd": 5}),
            json!({"cmd":"NODE_CLUSTER","act":"queryServer"}),
            json!({"cmd":"NODE_CLUSTER","act":"queryServer","seq":"x"}),
            json!({"cmd":"NODE_CLUSTER","act":"online","seq":0}),
            json!({"cmd":"NODE_CLUSTER","act":"close","seq":3,"key":"k"}),
            json!({"cmd":"NODE_OTHER"}),
        ] {
            assert_eq!(classify(&v), Incoming::Other, "{v}");
        }
        assert_eq!(
            classify(&json!({"cmd":"NODE_HANDLE_ACK"})),
            Incoming::HandleAck
        );
        assert_eq!(
            classify(&json!({"cmd":"NODE_CLUSTER","act":"exitedAfterDisconnect","seq":7})),
            Incoming::WantsAck(json!(7))
        );
    }

    #[test]
    fn answers_carry_the_ack_key_data_and_negated_errno() {
        let q = q(json!({"cmd":"NODE_CLUSTER","act":"queryServer","index":0,
            "address":null,"port":80,"addressType":4,"seq":4}));
        let ok = answer(&q, None, &json!({"ticketKeys":"ab"}), 9);
        assert_eq!(ok["cmd"], "NODE_HANDLE");
        assert_eq!(ok["type"], "net.Native");
        assert_eq!(ok["msg"]["ack"], 4);
        assert_eq!(ok["msg"]["errno"], 0);
        assert_eq!(ok["msg"]["key"], "null:80:4:undefined:0");
        assert_eq!(ok["msg"]["data"]["ticketKeys"], "ab");
        let err = answer(&q, Some(Errno::EADDRINUSE), &Value::Null, 10);
        assert_eq!(err["cmd"], "NODE_CLUSTER");
        assert_eq!(err["errno"], -98);
    }
}
