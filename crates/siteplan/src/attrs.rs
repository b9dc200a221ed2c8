//! A start tag's attributes, scanned with a word-at-a-time quote search.
//!
//! quick-xml's attribute iterator walks values byte by byte; in a siteplan most bytes are path
//! data inside `d="..."`, so that walk was the largest single cost of a parse. This scanner
//! applies XML's attribute syntax (whitespace before each attribute, `name = "value"` or
//! `'value'`, no duplicate names) and leaves the value raw, as quick-xml does.

use std::collections::HashSet;

/// Past this many attributes, duplicates are found through a hash set instead of a linear scan.
const LINEAR_LIMIT: usize = 16;

/// A syntax error: byte offset within the scanned text and a message.
pub(crate) type AttrError = (usize, String);

/// Iterator over `(name, raw value)` pairs of the text after an element name.
pub(crate) struct Attrs<'s> {
    s: &'s str,
    i: usize,
    /// Names seen so far in small tags, as byte ranges (a buffer the caller lends, so scanning
    /// a tag allocates nothing).
    seen: Vec<(usize, usize)>,
    /// Names seen so far (large tags).
    set: Option<HashSet<&'s str>>,
    failed: bool,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl<'s> Attrs<'s> {
    /// Scans `raw`, the start tag's content after its name (quick-xml's `attributes_raw`).
    #[cfg(test)]
    pub(crate) fn new(raw: &'s str) -> Attrs<'s> {
        Attrs::with_buffer(raw, Vec::new())
    }

    /// Like `new`, reusing `seen` (returned by [`Attrs::into_buffer`]).
    pub(crate) fn with_buffer(raw: &'s str, mut seen: Vec<(usize, usize)>) -> Attrs<'s> {
        seen.clear();
        Attrs {
            s: raw,
            i: 0,
            seen,
            set: None,
            failed: false,
        }
    }

    /// Gives the lent buffer back.
    pub(crate) fn into_buffer(self) -> Vec<(usize, usize)> {
        self.seen
    }

    fn fail(&mut self, at: usize, msg: String) -> Option<Result<(&'s str, &'s str), AttrError>> {
        self.failed = true;
        Some(Err((at, msg)))
    }

    fn is_duplicate(&mut self, start: usize, key: &'s str) -> bool {
        if let Some(set) = &mut self.set {
            return !set.insert(key);
        }
        // Byte slices: no character-boundary checks, and most names differ in length.
        let s = self.s.as_bytes();
        let k = key.as_bytes();
        if self
            .seen
            .iter()
            .any(|&(a, b)| b - a == k.len() && s.get(a..b) == Some(k))
        {
            return true;
        }
        let s = self.s;
        self.seen.push((start, start + key.len()));
        if self.seen.len() > LINEAR_LIMIT {
            self.set = Some(self.seen.drain(..).map(|(a, b)| &s[a..b]).collect());
        }
        false
    }
}

impl<'s> Iterator for Attrs<'s> {
    type Item = Result<(&'s str, &'s str), AttrError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let b = self.s.as_bytes();
        let mut i = self.i;
        let ws_start = i;
        while i < b.len() && is_ws(b[i]) {
            i += 1;
        }
        if i >= b.len() {
            return None;
        }
        if i == ws_start {
            return self.fail(i, "attributes must be separated by whitespace".to_string());
        }
        let key_start = i;
        while i < b.len() && b[i] != b'=' && !is_ws(b[i]) {
            i += 1;
        }
        let key = &self.s[key_start..i];
        while i < b.len() && is_ws(b[i]) {
            i += 1;
        }
        if key.is_empty() || i >= b.len() || b[i] != b'=' {
            let shown: String = key.chars().take(64).collect();
            return self.fail(
                key_start,
                format!("attribute `{shown}` has no `=\"value\"`"),
            );
        }
        i += 1;
        while i < b.len() && is_ws(b[i]) {
            i += 1;
        }
        let quote = match b.get(i) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => return self.fail(i, "attribute values must be quoted".to_string()),
        };
        let value_start = i + 1;
        // Values (path data) are most of the bytes: a SIMD search, not a byte walk.
        let Some(len) = memchr::memchr(quote, &b[value_start..]) else {
            return self.fail(i, "attribute value is never closed".to_string());
        };
        let value = &self.s[value_start..value_start + len];
        self.i = value_start + len + 1;
        if self.is_duplicate(key_start, key) {
            let shown: String = key.chars().take(64).collect();
            return self.fail(key_start, format!("duplicate attribute `{shown}`"));
        }
        Some(Ok((key, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &str) -> Result<Vec<(&str, &str)>, AttrError> {
        Attrs::new(s).collect()
    }

    #[test]
    fn well_formed() {
        assert_eq!(all("").unwrap(), vec![]);
        assert_eq!(all("  ").unwrap(), vec![]);
        assert_eq!(
            all(" a=\"1\"\n\tb = 'x\"y' c=\"\"").unwrap(),
            vec![("a", "1"), ("b", "x\"y"), ("c", "")]
        );
    }

    #[test]
    fn malformed() {
        assert_eq!(all(" a").unwrap_err().0, 1);
        assert!(all(" a=1").is_err());
        assert!(all(" a=\"1").is_err());
        assert!(all(" a=\"1\"b=\"2\"").is_err());
        assert!(all(" =\"1\"").is_err());
        assert!(all(" a=\"1\" a='2'").unwrap_err().1.contains("duplicate"));
        let many: String = (0..40).map(|i| format!(" k{i}=\"v\"")).collect();
        assert_eq!(all(&many).unwrap().len(), 40);
        let dup = format!("{many} k7=\"x\"");
        assert!(all(&dup).is_err());
    }
}
