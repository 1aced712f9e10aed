//! `listen` addresses and `ready_check` probes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use super::model::{ListenAddr, ReadyCheck};
use super::value::resolve;

/// Parses one `listen` entry: "8080" (all IPv4 interfaces), ":8080", "127.0.0.1:8080",
/// "localhost:8080", "[::]:8080" or "unix:/path" (relative to `dir`).
pub fn parse_listen(s: &str, dir: &Path) -> Result<ListenAddr, String> {
    if let Some(path) = s.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(format!(
                "`{s}`: a unix socket needs a path, like \"unix:/run/app.sock\""
            ));
        }
        if path.contains('\0') {
            return Err(format!(
                "`{s}`: a socket path must not contain a NUL character"
            ));
        }
        return Ok(ListenAddr::Unix(resolve(dir, Path::new(path))));
    }
    let bad = || {
        format!("`{s}` is not a listen address: expected PORT, IP:PORT, [IPV6]:PORT or unix:PATH")
    };
    let port = |p: &str| -> Result<u16, String> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        p.parse::<u16>()
            .map_err(|_| format!("`{s}`: port {p} is out of range (0-65535)"))
    };
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(ListenAddr::Tcp(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port(s)?,
        )));
    }
    let (host, p) = split_host_port(s).ok_or_else(bad)?;
    let p = port(p)?;
    let ip = match host {
        "" | "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => h.parse().map_err(|_| bad())?,
    };
    Ok(ListenAddr::Tcp(SocketAddr::new(ip, p)))
}

/// Parses `[runner] metrics`: a TCP address to serve `GET /metrics` on, written as a
/// `listen` entry is ("127.0.0.1:9100", "[::1]:9100", "localhost:9100", "9100").
pub fn parse_metrics(s: &str) -> Result<SocketAddr, String> {
    match parse_listen(s, Path::new("/"))? {
        ListenAddr::Tcp(a) if a.port() != 0 => Ok(a),
        ListenAddr::Tcp(_) => Err(format!("`{s}`: the metrics port must not be 0")),
        ListenAddr::Unix(_) => Err(format!(
            "`{s}`: metrics are served over TCP, like \"127.0.0.1:9100\""
        )),
    }
}

/// "host:port" or "[v6]:port" → (host without brackets, port text).
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = s.rsplit_once(':')?;
    // An unbracketed IPv6 address would be ambiguous.
    if host.contains(':') {
        return None;
    }
    Some((host, port))
}

/// Parses `ready_check`: "tcp://HOST:PORT", "http://HOST[:PORT][/PATH]" or "exec:COMMAND".
/// Hosts are kept without IPv6 brackets.
pub fn parse_ready_check(s: &str) -> Result<ReadyCheck, String> {
    let expected = "expected \"tcp://HOST:PORT\", \"http://HOST:PORT/PATH\" or \"exec:COMMAND\"";
    if let Some(cmd) = s.strip_prefix("exec:") {
        if cmd.trim().is_empty() {
            return Err(format!("`{s}`: exec: needs a command"));
        }
        return Ok(ReadyCheck::Exec(cmd.trim().to_string()));
    }
    if let Some(rest) = s.strip_prefix("tcp://") {
        let (host, port) = host_port(rest.trim_end_matches('/'), None)
            .ok_or_else(|| format!("`{s}` is not a valid probe: {expected}"))?;
        return Ok(ReadyCheck::Tcp { host, port });
    }
    if let Some(rest) = s.strip_prefix("http://") {
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = host_port(authority, Some(80))
            .ok_or_else(|| format!("`{s}` is not a valid probe: {expected}"))?;
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("`{s}`: the path must not contain spaces"));
        }
        return Ok(ReadyCheck::Http {
            host,
            port,
            path: path.to_string(),
        });
    }
    if s.starts_with("https://") {
        return Err(format!(
            "`{s}`: https probes are not supported; probe the plain port or use \"exec:curl -fsS ...\""
        ));
    }
    Err(format!("`{s}` is not a valid probe: {expected}"))
}

/// The address a `tcp://` or `http://` probe connects to, resolved now (at load time) so
/// that no check waits for a resolver inside the event loop. `localhost` is 127.0.0.1, as
/// in `listen`; a name with IPv4 and IPv6 addresses uses the first IPv4 one, which is what
/// an app listening on `0.0.0.0` accepts. None for `exec:`.
pub fn resolve_probe(probe: &ReadyCheck) -> Result<Option<SocketAddr>, String> {
    let (host, port) = match probe {
        ReadyCheck::Tcp { host, port } | ReadyCheck::Http { host, port, .. } => (host, *port),
        ReadyCheck::Exec(_) => return Ok(None),
    };
    if host == "localhost" {
        return Ok(Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Some(SocketAddr::new(ip, port)));
    }
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .map(Some)
        .ok_or_else(|| format!("`{host}` has no address"))
}

fn host_port(s: &str, default_port: Option<u16>) -> Option<(String, u16)> {
    let (host, port) = match split_host_port(s) {
        Some((h, p)) => (h, p.parse::<u16>().ok()?),
        None => (s, default_port?),
    };
    let bad = host.is_empty()
        || host.contains(['[', ']', '/', '@'])
        || host.chars().any(|c| c.is_whitespace() || c.is_control());
    (!bad && port != 0).then(|| (host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn listen_forms() {
        let d = Path::new("/etc/app");
        assert_eq!(
            parse_listen("8080", d),
            Ok(ListenAddr::Tcp(tcp("0.0.0.0:8080")))
        );
        assert_eq!(
            parse_listen(":8080", d),
            Ok(ListenAddr::Tcp(tcp("0.0.0.0:8080")))
        );
        assert_eq!(
            parse_listen("127.0.0.1:80", d),
            Ok(ListenAddr::Tcp(tcp("127.0.0.1:80")))
        );
        assert_eq!(
            parse_listen("localhost:80", d),
            Ok(ListenAddr::Tcp(tcp("127.0.0.1:80")))
        );
        assert_eq!(
            parse_listen("[::]:8080", d),
            Ok(ListenAddr::Tcp(tcp("[::]:8080")))
        );
        assert_eq!(
            parse_listen("[::1]:1", d),
            Ok(ListenAddr::Tcp(tcp("[::1]:1")))
        );
        assert_eq!(
            parse_listen("unix:/run/a.sock", d),
            Ok(ListenAddr::Unix("/run/a.sock".into()))
        );
        assert_eq!(
            parse_listen("unix:./run/a.sock", d),
            Ok(ListenAddr::Unix("/etc/app/run/a.sock".into()))
        );
    }

    #[test]
    fn bad_listen_addresses_are_explained() {
        let d = Path::new("/");
        for s in [
            "",
            "x",
            "host.example:80",
            "1.2.3.4",
            "::1:80",
            "[::1]80",
            "unix:",
            "1.2.3.4:http",
        ] {
            assert!(parse_listen(s, d).is_err(), "{s}");
        }
        assert!(parse_listen("70000", d)
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_listen("1.2.3.4:99999", d)
            .unwrap_err()
            .contains("out of range"));
    }

    #[test]
    fn ready_check_forms() {
        assert_eq!(
            parse_ready_check("tcp://127.0.0.1:5432"),
            Ok(ReadyCheck::Tcp {
                host: "127.0.0.1".into(),
                port: 5432
            })
        );
        assert_eq!(
            parse_ready_check("tcp://[::1]:5432"),
            Ok(ReadyCheck::Tcp {
                host: "::1".into(),
                port: 5432
            })
        );
        assert_eq!(
            parse_ready_check("http://localhost:8080"),
            Ok(ReadyCheck::Http {
                host: "localhost".into(),
                port: 8080,
                path: "/".into()
            })
        );
        assert_eq!(
            parse_ready_check("http://localhost:8080/health?x=1"),
            Ok(ReadyCheck::Http {
                host: "localhost".into(),
                port: 8080,
                path: "/health?x=1".into()
            })
        );
        assert_eq!(
            parse_ready_check("http://svc/health"),
            Ok(ReadyCheck::Http {
                host: "svc".into(),
                port: 80,
                path: "/health".into()
            })
        );
        assert_eq!(
            parse_ready_check("exec:pg_isready -q"),
            Ok(ReadyCheck::Exec("pg_isready -q".into()))
        );
    }

    #[test]
    fn bad_ready_checks_are_explained() {
        for s in [
            "",
            "tcp://host",
            "tcp://:80",
            "tcp://h:0",
            "tcp://h:x",
            "exec:",
            "ftp://x",
            "http://",
            "http://h:80/a b",
        ] {
            assert!(parse_ready_check(s).is_err(), "{s}");
        }
        assert!(parse_ready_check("https://x")
            .unwrap_err()
            .contains("https"));
    }
}
