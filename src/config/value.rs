//! Reading typed values out of the spanned TOML tree, collecting every error with its
//! position instead of stopping at the first.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeInteger, DeValue};
use toml::Spanned;

use super::error::{Diagnostic, Source};
use super::units;

pub(crate) type Val<'i> = Spanned<DeValue<'i>>;

/// The state of one load: where the text came from and what was found wrong so far.
pub(crate) struct Ctx<'a> {
    pub src: Source<'a>,
    /// The ecosystem file's directory: relative paths in the file resolve against it.
    pub dir: PathBuf,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    cpus: Option<u32>,
}

/// The type of a value as "found ..." messages name it: "a string", "an integer", ...
pub(crate) fn type_phrase(v: &DeValue) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

pub(crate) fn integer(i: &DeInteger) -> Option<i64> {
    let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
    i64::from_str_radix(&digits, i.radix()).ok()
}

/// Strings, numbers and booleans as text: PM2 users write `PORT = 8080` and `args = [1]`.
pub(crate) fn scalar_string(v: &DeValue) -> Option<String> {
    match v {
        DeValue::String(s) => Some(s.to_string()),
        DeValue::Integer(i) => Some(integer(i).map_or_else(|| i.to_string(), |n| n.to_string())),
        DeValue::Float(f) => Some(f.as_str().to_string()),
        DeValue::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

impl<'a> Ctx<'a> {
    pub fn new(path: &'a Path, text: &'a str, dir: PathBuf) -> Self {
        Ctx {
            src: Source::new(path, text),
            dir,
            errors: Vec::new(),
            warnings: Vec::new(),
            cpus: None,
        }
    }

    pub fn error(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let d = self.src.diagnostic(span, message);
        self.errors.push(d);
    }

    pub fn warn(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let d = self.src.diagnostic(span, message);
        self.warnings.push(d);
    }

    /// Read once per load, and only when some app asks for "max" or a relative count.
    pub fn cpus(&mut self) -> u32 {
        *self.cpus.get_or_insert_with(super::cpus::usable_cpus)
    }

    pub fn type_error(&mut self, key: &str, expected: &str, v: &Val) {
        let msg = format!(
            "`{key}` must be {expected}, found {}",
            type_phrase(v.get_ref())
        );
        self.error(&v.span(), msg);
    }

    pub fn string(&mut self, key: &str, v: &Val) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.type_error(key, "a string", v);
                None
            }
        }
    }

    /// A string that must not be empty (names, paths, variable names).
    pub fn nonempty(&mut self, key: &str, v: &Val) -> Option<String> {
        let s = self.string(key, v)?;
        if s.is_empty() {
            self.error(&v.span(), format!("`{key}` must not be empty"));
            return None;
        }
        if s.contains('\0') {
            self.error(
                &v.span(),
                format!("`{key}` must not contain a NUL character"),
            );
            return None;
        }
        Some(s)
    }

    pub fn boolean(&mut self, key: &str, v: &Val) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_error(key, "true or false", v);
                None
            }
        }
    }

    /// An integer in `min..=max`.
    pub fn int_in(&mut self, key: &str, v: &Val, min: i64, max: i64) -> Option<i64> {
        let DeValue::Integer(i) = v.get_ref() else {
            self.type_error(key, "an integer", v);
            return None;
        };
        match integer(i).filter(|n| (min..=max).contains(n)) {
            Some(n) => Some(n),
            None => {
                self.error(
                    &v.span(),
                    format!("`{key}` must be between {min} and {max}, found {i}"),
                );
                None
            }
        }
    }

    pub fn duration(&mut self, key: &str, v: &Val) -> Option<Duration> {
        let expected = "milliseconds or a string with a unit like \"1.5s\"";
        self.number_or_unit(key, v, expected, units::parse_duration, |i| {
            match integer(i) {
                Some(n) => units::duration_from_millis(n),
                None => Err(format!("`{i}` is too long a duration")),
            }
        })
    }

    pub fn size(&mut self, key: &str, v: &Val) -> Option<u64> {
        let expected = "bytes or a string like \"500M\"";
        self.number_or_unit(key, v, expected, units::parse_size, |i| match integer(i) {
            Some(n) if n >= 0 => Ok(n as u64),
            Some(n) => Err(format!("`{n}` is not a size: it must not be negative")),
            None => Err(format!("`{i}` is too large a size")),
        })
    }

    /// A value written as a bare integer (in the key's base unit) or a string with a
    /// unit; what is wrong with it is an error naming the key.
    fn number_or_unit<T>(
        &mut self,
        key: &str,
        v: &Val,
        expected: &str,
        text: impl Fn(&str) -> Result<T, String>,
        number: impl Fn(&DeInteger) -> Result<T, String>,
    ) -> Option<T> {
        let parsed = match v.get_ref() {
            DeValue::Integer(i) => number(i),
            DeValue::String(s) => text(s),
            _ => {
                self.type_error(key, expected, v);
                return None;
            }
        };
        parsed
            .map_err(|e| self.error(&v.span(), format!("`{key}`: {e}")))
            .ok()
    }

    /// A string or an array of strings, each with its span.
    pub fn string_list(&mut self, key: &str, v: &Val) -> Option<Vec<(String, Range<usize>)>> {
        match v.get_ref() {
            DeValue::String(s) => Some(vec![(s.to_string(), v.span())]),
            DeValue::Array(items) => self.each_item(items, |this, item| match item.get_ref() {
                DeValue::String(s) => Some((s.to_string(), item.span())),
                _ => this.item_not_string(key, item),
            }),
            _ => {
                self.type_error(key, "a string or an array of strings", v);
                None
            }
        }
    }

    /// Every item of an array through `item`, which reports its own errors: the whole
    /// list, or None when any item was wrong (each wrong one reported, not just the first).
    fn each_item<T>(
        &mut self,
        items: &[Val],
        mut item: impl FnMut(&mut Self, &Val) -> Option<T>,
    ) -> Option<Vec<T>> {
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for it in items {
            match item(self, it) {
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn item_not_string<T>(&mut self, key: &str, item: &Val) -> Option<T> {
        let msg = format!(
            "`{key}` items must be strings, found {}",
            type_phrase(item.get_ref())
        );
        self.error(&item.span(), msg);
        None
    }

    /// Command-line words: a string split like a shell would, or an array (numbers and
    /// booleans in it are taken as text).
    pub fn words(&mut self, key: &str, v: &Val) -> Option<Vec<String>> {
        match v.get_ref() {
            DeValue::String(s) => match super::shell_words::split(s) {
                Ok(w) => Some(w),
                Err(e) => {
                    self.error(&v.span(), format!("`{key}`: {e}"));
                    None
                }
            },
            DeValue::Array(items) => {
                self.each_item(items, |this, item| match scalar_string(item.get_ref()) {
                    Some(s) if !s.contains('\0') => Some(s),
                    Some(_) => {
                        let msg = format!("`{key}` must not contain a NUL character");
                        this.error(&item.span(), msg);
                        None
                    }
                    None => this.item_not_string(key, item),
                })
            }
            _ => {
                self.type_error(key, "a string or an array of strings", v);
                None
            }
        }
    }

    /// A path from the file, resolved against the file's directory.
    pub fn path(&mut self, key: &str, v: &Val) -> Option<PathBuf> {
        let s = self.nonempty(key, v)?;
        Some(resolve(&self.dir, Path::new(&s)))
    }
}

/// `base/p` without `.` components, or `p` when absolute.
pub(crate) fn resolve(base: &Path, p: &Path) -> PathBuf {
    base.join(p).components().collect()
}
