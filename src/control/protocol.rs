//! The control protocol: one JSON object per line each way (documented in the README).

use serde::{Deserialize, Serialize};

/// A request from a client. `{"cmd":"stop","target":"api"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    List,
    Status,
    Start {
        target: String,
    },
    Stop {
        target: String,
    },
    Restart {
        target: String,
    },
    Reload {
        target: String,
    },
    Delete {
        target: String,
    },
    Scale {
        name: String,
        instances: u32,
    },
    Signal {
        signal: String,
        target: String,
    },
    Apply,
    /// `runner logs`: the last `lines` lines of each instance of `target`, then (with
    /// `follow`) new lines until the client leaves. `stream`: `"out"`, `"err"` or absent
    /// for both. Answered with one [`LogLine`] object per line (and `{"dropped":N}` when a
    /// follower lost lines), then — without `follow` — a [`Reply`].
    Logs {
        #[serde(default = "all")]
        target: String,
        #[serde(default = "default_lines")]
        lines: usize,
        #[serde(default)]
        follow: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream: Option<String>,
    },
}

fn all() -> String {
    "all".to_string()
}

/// PM2's `pm2 logs --lines` default.
pub const DEFAULT_LOG_LINES: usize = 15;

fn default_lines() -> usize {
    DEFAULT_LOG_LINES
}

/// One line of an instance's output, as `logs` sends it. `line` has the app's time
/// decoration (`time`, `log_date_format`) but not `name[instance]`; bytes that are not
/// UTF-8 arrive as U+FFFD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub id: u32,
    pub name: String,
    pub instance: u32,
    /// `"out"` or `"err"`.
    pub stream: String,
    pub line: String,
}

/// One row of `list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub id: u32,
    pub name: String,
    pub namespace: String,
    /// `"fork"` or `"cluster"`.
    pub mode: String,
    pub pid: Option<i32>,
    /// One of `launching`, `online`, `stopping`, `stopped`, `waiting restart`, `errored`.
    pub status: String,
    pub restarts: u32,
    pub uptime_ms: u64,
    /// Percent of one CPU over the last measurement interval.
    pub cpu: f64,
    /// Resident memory of the instance's process tree, bytes.
    pub memory: u64,
    /// Instance number within its app (`instance_var`).
    pub instance: u32,
    /// Last sd_notify `STATUS=` text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_text: Option<String>,
    /// The last thing that went wrong (spawn failure, last exit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer to one request. `{"ok":true,"message":"..."}` or `{"ok":false,"error":"..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<InstanceInfo>>,
}

impl Reply {
    pub fn ok(message: impl Into<String>) -> Reply {
        Reply {
            ok: true,
            message: Some(message.into()),
            ..Reply::default()
        }
    }

    pub fn error(error: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(error.into()),
            ..Reply::default()
        }
    }

    pub fn instances(list: Vec<InstanceInfo>) -> Reply {
        Reply {
            ok: true,
            instances: Some(list),
            ..Reply::default()
        }
    }
}

/// Parses one request line; the error text goes back to the client as is.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("bad request: {e}"))?;
    // serde's deny_unknown_fields does not reach the field-less variants of an internally
    // tagged enum, so a typo like {"cmd":"list","jsn":true} would pass silently.
    if let Some(obj) = value.as_object() {
        let bare = matches!(
            obj.get("cmd").and_then(|c| c.as_str()),
            Some("list" | "status" | "apply")
        );
        if let Some(extra) = obj.keys().find(|k| bare && *k != "cmd") {
            return Err(format!("bad request: unknown field `{extra}`"));
        }
    }
    serde_json::from_value(value).map_err(|e| format!("bad request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_one_json_object() {
        let r = Request::Signal {
            signal: "SIGUSR2".into(),
            target: "api".into(),
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"cmd":"signal","signal":"SIGUSR2","target":"api"}"#
        );
        assert_eq!(parse_request(text.as_bytes()).unwrap(), r);
    }

    #[test]
    fn a_logs_request_has_pm2_defaults() {
        let r = parse_request(br#"{"cmd":"logs"}"#).unwrap();
        assert_eq!(
            r,
            Request::Logs {
                target: "all".into(),
                lines: DEFAULT_LOG_LINES,
                follow: false,
                stream: None
            }
        );
        assert!(parse_request(br#"{"cmd":"logs","lines":-1}"#).is_err());
        assert!(parse_request(br#"{"cmd":"logs","folow":true}"#).is_err());
    }

    #[test]
    fn garbage_and_unknown_fields_are_errors_not_panics() {
        assert!(parse_request(b"\xff\xfe").is_err());
        assert!(parse_request(br#"{"cmd":"list","x":1}"#).is_err());
        assert!(parse_request(br#"{"cmd":"explode"}"#).is_err());
        assert!(parse_request(b"[]").is_err());
    }
}
