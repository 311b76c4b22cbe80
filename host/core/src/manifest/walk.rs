//! Machinery for walking a `toml::Table` while collecting problems: typed lookups that
//! report type mismatches, unknown-key detection with suggestions, list checks and the
//! identifier rules shared by several sections.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use toml::{Table, Value};

use super::Problem;

/// Collects problems while the document is walked.
#[derive(Default)]
pub(super) struct Ctx {
    pub problems: Vec<Problem>,
}

/// A TOML value kind that a lookup can expect.
pub(super) trait Kind<'a>: Sized {
    /// The kind with its article, for messages: "a string".
    const EXPECTED: &'static str;
    fn cast(value: &'a Value) -> Option<Self>;
}

impl<'a> Kind<'a> for &'a str {
    const EXPECTED: &'static str = "a string";
    fn cast(value: &'a Value) -> Option<Self> {
        value.as_str()
    }
}

impl<'a> Kind<'a> for bool {
    const EXPECTED: &'static str = "a boolean";
    fn cast(value: &'a Value) -> Option<Self> {
        value.as_bool()
    }
}

impl<'a> Kind<'a> for i64 {
    const EXPECTED: &'static str = "an integer";
    fn cast(value: &'a Value) -> Option<Self> {
        value.as_integer()
    }
}

impl<'a> Kind<'a> for &'a Table {
    const EXPECTED: &'static str = "a table";
    fn cast(value: &'a Value) -> Option<Self> {
        value.as_table()
    }
}

impl<'a> Kind<'a> for &'a [Value] {
    const EXPECTED: &'static str = "an array";
    fn cast(value: &'a Value) -> Option<Self> {
        value.as_array().map(Vec::as_slice)
    }
}

impl Ctx {
    pub fn report(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    /// Records `result`'s error at `path`; passes the value through.
    pub fn check<T>(&mut self, path: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.report(path, message)).ok()
    }

    /// `value` as kind `T`, reporting a type mismatch at `path` otherwise.
    pub fn expect<'a, T: Kind<'a>>(&mut self, path: &str, value: &'a Value) -> Option<T> {
        let cast = T::cast(value);
        if cast.is_none() {
            self.report(path, mismatch(T::EXPECTED, value));
        }
        cast
    }

    /// Optional `key` of `table` as kind `T`; absent is `None` without a problem.
    pub fn get<'a, T: Kind<'a>>(&mut self, table: &'a Table, prefix: &str, key: &str) -> Option<T> {
        let value = table.get(key)?;
        self.expect(&join(prefix, key), value)
    }

    /// Required `key` of `table` as kind `T`; absent is reported.
    pub fn require<'a, T: Kind<'a>>(&mut self, table: &'a Table, prefix: &str, key: &str) -> Option<T> {
        if !table.contains_key(key) {
            self.report(join(prefix, key), format!("missing required key `{key}`"));
            return None;
        }
        self.get(table, prefix, key)
    }

    /// Reports every key of `table` that is not in `known`.
    pub fn unknown_keys(&mut self, prefix: &str, table: &Table, known: &[&str]) {
        for key in table.keys().filter(|k| !known.contains(&k.as_str())) {
            let hint = closest(key, known)
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_default();
            self.report(join(prefix, key), format!("unknown key `{key}`{hint}"));
        }
    }

    /// Reports a maximum-length violation for an optional string.
    pub fn max_chars(&mut self, path: &str, text: &str, max: usize) -> bool {
        let len = text.chars().count();
        if len > max {
            self.report(path, format!("must be at most {max} characters (found {len})"));
        }
        len <= max
    }

    /// Validates a list of strings: at most `max` entries, each accepted by `parse`, no two
    /// with the same `identity`. Returns the entries that passed.
    pub fn string_list<T, K: Eq + std::hash::Hash>(
        &mut self,
        path: &str,
        items: &[Value],
        max: usize,
        parse: impl Fn(&str) -> Result<T, String>,
        identity: impl Fn(&T) -> K,
    ) -> Vec<T> {
        if items.len() > max {
            self.report(path, format!("must have at most {max} entries (found {})", items.len()));
        }
        let mut seen = HashMap::new();
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            let Some(text) = self.expect::<&str>(&item_path, item) else {
                continue;
            };
            let Some(parsed) = self.check(&item_path, parse(text)) else {
                continue;
            };
            match seen.entry(identity(&parsed)) {
                Entry::Occupied(first) => self.report(
                    item_path,
                    format!("duplicate entry `{text}` (same as {path}[{}])", first.get()),
                ),
                Entry::Vacant(slot) => {
                    slot.insert(i);
                    out.push(parsed);
                }
            }
        }
        out
    }
}

/// Joins a parent path and a key, quoting keys that are not TOML bare keys so that paths
/// stay unambiguous (`dependencies."a.b"`).
pub(super) fn join(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare { key.to_owned() } else { format!("{key:?}") };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

fn mismatch(expected: &str, found: &Value) -> String {
    let found = match found {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    };
    format!("expected {expected}, found {found}")
}

/// The known key nearest to `key`, if it is near enough to be a plausible typo.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= k.chars().count().div_ceil(3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = Vec::with_capacity(b.len() + 1);
        row.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            row.push(substitute.min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

/// The plugin/publisher id rule; the error says which part of the rule failed.
pub(super) fn check_id(id: &str) -> Result<(), String> {
    let len = id.chars().count();
    if !(2..=64).contains(&len) {
        return Err(format!("`{id}` must be 2–64 characters long (found {len})"));
    }
    if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!("`{id}` must start with a lowercase ASCII letter"));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "`{id}` contains {bad:?}; only lowercase letters, digits and `-` are allowed"
        ));
    }
    if id.ends_with('-') {
        return Err(format!("`{id}` must not end with `-`"));
    }
    if id.contains("--") {
        return Err(format!("`{id}` must not contain `--`"));
    }
    Ok(())
}

/// `^[a-z][a-z0-9_]{0,62}$`: CRM object and field names.
pub(super) fn is_ident(s: &str) -> bool {
    is_word(s, 63, |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `^[a-z][a-z0-9-]{0,39}$`: marketplace categories.
pub(super) fn is_category(s: &str) -> bool {
    is_word(s, 40, |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A lowercase ASCII letter, then bytes accepted by `tail`, at most `max` bytes in all.
fn is_word(s: &str, max: usize, tail: impl Fn(u8) -> bool) -> bool {
    match s.as_bytes().split_first() {
        Some((first, rest)) => s.len() <= max && first.is_ascii_lowercase() && rest.iter().all(|b| tail(*b)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("verison", "version"), 2);
        assert_eq!(closest("verison", &["id", "version"]), Some("version"));
        assert_eq!(closest("zzz", &["id", "version"]), None);
    }

    #[test]
    fn identifier_length_boundaries() {
        assert!(check_id("ab").is_ok());
        assert!(check_id(&format!("a{}", "0".repeat(63))).is_ok());
        assert!(check_id(&format!("a{}", "0".repeat(64))).is_err());
        assert!(is_ident(&format!("a{}", "_".repeat(62))));
        assert!(!is_ident(&format!("a{}", "_".repeat(63))));
        assert!(!is_ident(""));
        assert!(is_category(&format!("a{}", "-".repeat(39))));
        assert!(!is_category(&format!("a{}", "-".repeat(40))));
        assert!(!is_category("1a"));
    }

    #[test]
    fn join_quotes_non_bare_keys() {
        assert_eq!(join("", "plugin"), "plugin");
        assert_eq!(join("dependencies", "a-b"), "dependencies.a-b");
        assert_eq!(join("dependencies", "a.b"), "dependencies.\"a.b\"");
        assert_eq!(join("x", ""), "x.\"\"");
    }
}
