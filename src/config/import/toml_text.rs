//! Writing ecosystem TOML by hand, as every converter does: values through the `toml`
//! crate so escaping is right, keys and comments escaped so that no input can break out
//! of them.

use std::fmt::Write as _;

use serde::Serialize as _;

/// A value in TOML syntax, through the `toml` crate so escaping is right. Its `Display`
/// unwraps internally; this path reports instead, as converted input must never panic.
pub(crate) fn toml_value(v: &toml::Value) -> Option<String> {
    let mut s = String::new();
    v.serialize(toml::ser::ValueSerializer::new(&mut s)).ok()?;
    Some(s)
}

/// A TOML string.
pub(crate) fn quoted(s: &str) -> String {
    toml_value(&toml::Value::String(s.to_string())).unwrap_or_else(|| "\"\"".to_string())
}

/// A key as TOML needs it: bare when it can be, quoted otherwise (env names like
/// `npm_config_x.y` or keys with spaces). Written by hand because the `toml` crate
/// quotes strings with newlines as multi-line strings, which TOML forbids for keys.
pub(crate) fn fmt_key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return k.to_string();
    }
    let mut q = String::with_capacity(k.len() + 2);
    q.push('"');
    for c in k.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            '\r' => q.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{:04X}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// A one-line TOML comment. TOML forbids control characters in comments, and a newline
/// would end the comment and let PM2 data through as TOML: escape them all.
pub(crate) fn comment(text: &str) -> String {
    let mut line = String::with_capacity(text.len() + 2);
    line.push_str("# ");
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(line, "\\u{:04x}", c as u32);
        } else {
            line.push(c);
        }
    }
    line
}
