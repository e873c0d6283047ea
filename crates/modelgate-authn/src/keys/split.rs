//! Splits a key file, as it is read, into its entries and its skeleton, so a
//! million keys load through a small buffer: each element of the top-level
//! `keys` array is handed over on its own (to be parsed from a slice, its
//! strings borrowed), and everything else, with that array left empty, is
//! kept as the skeleton, parsed at the end for `version` and unknown or
//! duplicate fields. The scan only finds where values end (strings, escapes,
//! nesting) and the commas between elements; serde_json checks the syntax
//! of every part.

use std::io::BufRead;

#[derive(Debug)]
pub(super) enum SplitError<E> {
    Io(std::io::Error),
    /// The `keys` array is not a comma-separated list, or is not closed.
    Syntax(String),
    /// What the entry callback returned.
    Entry(E),
}

/// Where the scan is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Outside the `keys` array: bytes go to the skeleton.
    Outside,
    /// Just after the array's `[`.
    First,
    /// After a `,` between elements.
    Next,
    /// After an element.
    After,
    /// Inside an element.
    Elem,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

struct Scan<F> {
    entry: F,
    mode: Mode,
    skeleton: Vec<u8>,
    elem: Vec<u8>,
    /// Byte offset of the current element in the file (for messages).
    elem_at: u64,
    /// Nesting inside the current element; `None` for a bare scalar.
    elem_depth: Option<usize>,
    index: usize,
    /// Nesting of the skeleton.
    depth: usize,
    top_is_object: Option<bool>,
    in_str: bool,
    esc: bool,
    /// The start of the last string at depth 1 (enough to tell `keys`).
    key: Vec<u8>,
    last_is_keys: bool,
    prev: u8,
}

/// Reads `r` to its end, calling `entry(index, bytes, offset)` for each
/// element of the top-level object's `keys` array; returns the skeleton.
pub(super) fn split<R: BufRead, E>(
    mut r: R,
    entry: impl FnMut(usize, &[u8], u64) -> Result<(), E>,
) -> Result<Vec<u8>, SplitError<E>> {
    let mut s = Scan {
        entry,
        mode: Mode::Outside,
        skeleton: Vec::new(),
        elem: Vec::new(),
        elem_at: 0,
        elem_depth: None,
        index: 0,
        depth: 0,
        top_is_object: None,
        in_str: false,
        esc: false,
        key: Vec::new(),
        last_is_keys: false,
        prev: 0,
    };
    let mut offset = 0u64;
    loop {
        let buf = match r.fill_buf() {
            Ok([]) => break,
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SplitError::Io(e)),
        };
        let n = buf.len();
        s.chunk(buf, offset)?;
        r.consume(n);
        offset += n as u64;
    }
    match s.mode {
        Mode::Outside => Ok(s.skeleton),
        Mode::Elem if s.elem_depth.is_none() => {
            s.finish_elem()?;
            Err(SplitError::Syntax("keys: the list is not closed".into()))
        }
        _ => Err(SplitError::Syntax(
            "keys: the list is not closed (the file ends inside it)".into(),
        )),
    }
}

impl<E, F: FnMut(usize, &[u8], u64) -> Result<(), E>> Scan<F> {
    fn chunk(&mut self, buf: &[u8], offset: u64) -> Result<(), SplitError<E>> {
        let mut i = 0;
        while let Some(&b) = buf.get(i) {
            if self.mode == Mode::Elem && self.in_str && !self.esc {
                // Most of the file is the entries' strings: copy up to the
                // next quote or backslash at once.
                let rest = buf.get(i..).unwrap_or_default();
                let span = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
                self.elem
                    .extend_from_slice(rest.get(..span).unwrap_or_default());
                i += span;
                let Some(&q) = buf.get(i) else { break };
                self.elem.push(q);
                if q == b'\\' {
                    self.esc = true;
                } else {
                    self.in_str = false;
                    if self.elem_depth == Some(0) {
                        self.finish_elem()?;
                    }
                }
                i += 1;
                continue;
            }
            self.byte(b, offset + i as u64)?;
            i += 1;
        }
        Ok(())
    }

    fn byte(&mut self, b: u8, at: u64) -> Result<(), SplitError<E>> {
        match self.mode {
            Mode::Outside => self.outside(b),
            Mode::Elem => self.in_elem(b, at)?,
            Mode::First | Mode::Next | Mode::After if is_ws(b) => {}
            Mode::First | Mode::After if b == b']' => {
                self.skeleton.push(b']');
                self.depth = self.depth.saturating_sub(1);
                self.prev = b']';
                self.mode = Mode::Outside;
            }
            Mode::After if b == b',' => self.mode = Mode::Next,
            Mode::After => {
                return Err(SplitError::Syntax(format!(
                    "keys[{}] (at byte {at}): expected `,` or `]` after the entry",
                    self.index.saturating_sub(1)
                )));
            }
            Mode::Next if b == b']' => {
                return Err(SplitError::Syntax(format!(
                    "keys (at byte {at}): a trailing comma after the last entry"
                )));
            }
            Mode::First | Mode::Next => {
                self.elem.clear();
                self.elem_at = at;
                self.elem.push(b);
                self.mode = Mode::Elem;
                self.elem_depth = match b {
                    b'{' | b'[' => Some(1),
                    b'"' => {
                        self.in_str = true;
                        Some(0)
                    }
                    _ => None,
                };
            }
        }
        Ok(())
    }

    fn in_elem(&mut self, b: u8, at: u64) -> Result<(), SplitError<E>> {
        let Some(depth) = self.elem_depth else {
            // A bare scalar ends where the next token starts.
            if is_ws(b) || b == b',' || b == b']' {
                self.finish_elem()?;
                return self.byte(b, at);
            }
            self.elem.push(b);
            return Ok(());
        };
        self.elem.push(b);
        if self.in_str {
            // Only reached after a backslash (see `chunk`).
            self.esc = false;
            return Ok(());
        }
        match b {
            b'"' => self.in_str = true,
            b'{' | b'[' => self.elem_depth = Some(depth + 1),
            b'}' | b']' => {
                let depth = depth.saturating_sub(1);
                self.elem_depth = Some(depth);
                if depth == 0 {
                    self.finish_elem()?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn finish_elem(&mut self) -> Result<(), SplitError<E>> {
        (self.entry)(self.index, &self.elem, self.elem_at).map_err(SplitError::Entry)?;
        self.index += 1;
        self.mode = Mode::After;
        Ok(())
    }

    fn outside(&mut self, b: u8) {
        self.skeleton.push(b);
        if self.in_str {
            if self.esc {
                self.esc = false;
            } else if b == b'\\' {
                self.esc = true;
            } else if b == b'"' {
                self.in_str = false;
                self.prev = b'"';
                if self.depth == 1 {
                    self.last_is_keys = self.key == b"keys";
                }
                return;
            }
            if self.depth == 1 && self.key.len() <= 4 {
                self.key.push(b);
            }
            return;
        }
        if is_ws(b) {
            return;
        }
        match b {
            b'"' => {
                self.in_str = true;
                self.key.clear();
            }
            b'[' if self.depth == 1
                && self.top_is_object == Some(true)
                && self.last_is_keys
                && self.prev == b':' =>
            {
                self.depth += 1;
                self.mode = Mode::First;
            }
            b'{' | b'[' => {
                if self.depth == 0 && self.top_is_object.is_none() {
                    self.top_is_object = Some(b == b'{');
                }
                self.depth += 1;
            }
            b'}' | b']' => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
        self.prev = b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, chunk: usize) -> Result<(String, Vec<String>), String> {
        let mut entries = Vec::new();
        let reader = std::io::BufReader::with_capacity(chunk, text.as_bytes());
        split(reader, |i, b, at| {
            assert_eq!(i, entries.len());
            let t = String::from_utf8(b.to_vec()).unwrap();
            assert_eq!(
                text.get(at as usize..at as usize + t.len()),
                Some(t.as_str())
            );
            entries.push(t);
            Ok::<(), ()>(())
        })
        .map(|s| (String::from_utf8(s).unwrap(), entries))
        .map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn entries_are_cut_out_whatever_the_read_size() {
        let text = r#" { "version" : 1, "keys" : [ {"name":"a\"]}","m":["x",{}]} ,
            {"name":"b\\"} ,"s", 12 ,[1,[2]],true ] , "x": {"keys":[1]} } "#;
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let (skeleton, entries) = run(text, chunk).unwrap();
            assert_eq!(
                entries,
                [
                    r#"{"name":"a\"]}","m":["x",{}]}"#,
                    r#"{"name":"b\\"}"#,
                    r#""s""#,
                    "12",
                    "[1,[2]]",
                    "true"
                ],
                "read size {chunk}"
            );
            assert_eq!(
                skeleton, r#" { "version" : 1, "keys" : [] , "x": {"keys":[1]} } "#,
                "read size {chunk}"
            );
        }
    }

    #[test]
    fn only_the_top_level_objects_keys_field_is_split() {
        for text in [
            r#"["keys", [1, 2]]"#,
            r#"{"a": {"keys": [1]}, "b": "keys", "c": [2]}"#,
            r#"{"k\u0065ys": [1]}"#,
        ] {
            let (skeleton, entries) = run(text, 5).unwrap();
            assert_eq!(skeleton, text);
            assert!(entries.is_empty(), "{text}");
        }
        let (skeleton, entries) = run(r#"{"keys":[]}"#, 3).unwrap();
        assert_eq!((skeleton.as_str(), entries.len()), (r#"{"keys":[]}"#, 0));
    }

    #[test]
    fn a_malformed_list_is_refused() {
        for text in [
            r#"{"keys":[{} {}]}"#,
            r#"{"keys":[{},]}"#,
            r#"{"keys":[{}"#,
            r#"{"keys":[{"a":"]"#,
            r#"{"keys":[1"#,
            r#"{"keys":[1 2]}"#,
        ] {
            assert!(run(text, 4).is_err(), "{text}");
        }
    }

    #[test]
    fn the_entry_callbacks_error_stops_the_read() {
        let mut seen = 0;
        let r = split(r#"{"keys":[1,2,3]}"#.as_bytes(), |i, _, _| {
            seen += 1;
            if i == 1 { Err("refused") } else { Ok(()) }
        });
        assert!(matches!(r, Err(SplitError::Entry("refused"))));
        assert_eq!(seen, 2);
    }
}
