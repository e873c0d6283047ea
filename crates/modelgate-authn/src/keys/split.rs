//! Splits a key file, block by block as it is read, into its entries and its
//! skeleton, so a million keys load through a few small blocks: each element
//! of the top-level `keys` array is found where it lies in its block (handed
//! on as a range, to be parsed from a slice with its strings borrowed, by
//! whichever thread takes the block), and everything else, with that array
//! left empty, is kept as the skeleton, parsed at the end for `version` and
//! unknown or duplicate fields. The scan only finds where values end
//! (strings, escapes, nesting) and the commas between elements; serde_json
//! checks the syntax of every part.

use std::ops::Range;

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

/// The scan's state between blocks.
pub(super) struct Splitter {
    mode: Mode,
    skeleton: Vec<u8>,
    /// Where the current element starts in the current block.
    elem_start: usize,
    /// Nesting inside the current element; `None` for a bare scalar.
    elem_depth: Option<usize>,
    /// Elements found so far.
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

impl Splitter {
    pub(super) fn new() -> Self {
        Self {
            mode: Mode::Outside,
            skeleton: Vec::new(),
            elem_start: 0,
            elem_depth: None,
            index: 0,
            depth: 0,
            top_is_object: None,
            in_str: false,
            esc: false,
            key: Vec::new(),
            last_is_keys: false,
            prev: 0,
        }
    }

    /// How many elements were found so far (the index of the next one).
    pub(super) fn entries(&self) -> usize {
        self.index
    }

    /// Scans `buf[from..]`; `buf` starts at file offset `base`, and
    /// `buf[..from]` is what the last call returned as unfinished (an
    /// element's start, scanned already). Appends the elements that end in
    /// `buf` to `out`, and returns where the unfinished element starts
    /// (`buf.len()` if there is none): the caller carries `buf[that..]`
    /// to the front of the next block. On an error, `out` holds the
    /// elements before it.
    pub(super) fn scan(
        &mut self,
        buf: &[u8],
        from: usize,
        base: u64,
        out: &mut Vec<Range<usize>>,
    ) -> Result<usize, String> {
        if self.mode == Mode::Elem {
            self.elem_start = 0;
        }
        let mut i = from;
        while let Some(&b) = buf.get(i) {
            if self.mode == Mode::Elem {
                i = self.elem(buf, i, out);
                continue;
            }
            self.byte(b, i, base + i as u64)?;
            i += 1;
        }
        Ok(if self.mode == Mode::Elem {
            self.elem_start.min(buf.len())
        } else {
            buf.len()
        })
    }

    /// The file ended; `buf` is the last unfinished part (`scan`'s carry).
    /// A bare scalar there is still handed over (so its own error shows
    /// first). Returns the skeleton.
    pub(super) fn finish(
        mut self,
        buf: &[u8],
        out: &mut Vec<Range<usize>>,
    ) -> Result<Vec<u8>, String> {
        match self.mode {
            Mode::Outside => Ok(self.skeleton),
            Mode::Elem if self.elem_depth.is_none() => {
                self.elem_start = 0;
                self.end_elem(buf.len(), out);
                Err("keys: the list is not closed".into())
            }
            _ => Err("keys: the list is not closed (the file ends inside it)".into()),
        }
    }

    /// Scans the current element from `i` to its end or the block's end;
    /// returns where the scan stopped.
    fn elem(&mut self, buf: &[u8], mut i: usize, out: &mut Vec<Range<usize>>) -> usize {
        let Some(mut depth) = self.elem_depth else {
            // A bare scalar ends where the next token starts.
            while let Some(&b) = buf.get(i) {
                if is_ws(b) || b == b',' || b == b']' {
                    self.end_elem(i, out);
                    return i;
                }
                i += 1;
            }
            return i;
        };
        while let Some(&b) = buf.get(i) {
            i += 1;
            if self.in_str {
                if self.esc {
                    self.esc = false;
                    continue;
                }
                // Most of the file is the entries' strings: jump to the
                // next quote or backslash.
                let rest = buf.get(i - 1..).unwrap_or_default();
                let Some(k) = memchr::memchr2(b'"', b'\\', rest) else {
                    self.elem_depth = Some(depth);
                    return buf.len();
                };
                i += k;
                if rest.get(k) == Some(&b'\\') {
                    self.esc = true;
                    continue;
                }
                self.in_str = false;
                if depth == 0 {
                    self.end_elem(i, out);
                    return i;
                }
                continue;
            }
            match b {
                b'"' => self.in_str = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        self.end_elem(i, out);
                        return i;
                    }
                }
                _ => {}
            }
        }
        self.elem_depth = Some(depth);
        i
    }

    fn end_elem(&mut self, end: usize, out: &mut Vec<Range<usize>>) {
        out.push(self.elem_start..end);
        self.index += 1;
        self.mode = Mode::After;
    }

    /// One byte outside any element; `i` is its place in the block.
    fn byte(&mut self, b: u8, i: usize, at: u64) -> Result<(), String> {
        match self.mode {
            Mode::Outside => self.outside(b),
            Mode::Elem => {} // scanned by `elem`
            Mode::First | Mode::Next | Mode::After if is_ws(b) => {}
            Mode::First | Mode::After if b == b']' => {
                self.skeleton.push(b']');
                self.depth = self.depth.saturating_sub(1);
                self.prev = b']';
                self.mode = Mode::Outside;
            }
            Mode::After if b == b',' => self.mode = Mode::Next,
            Mode::After => {
                return Err(format!(
                    "keys[{}] (at byte {at}): expected `,` or `]` after the entry",
                    self.index.saturating_sub(1)
                ));
            }
            Mode::Next if b == b']' => {
                return Err(format!(
                    "keys (at byte {at}): a trailing comma after the last entry"
                ));
            }
            Mode::First | Mode::Next => {
                self.elem_start = i;
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

/// Splits `text` read `block` bytes at a time, as the loader does: the
/// elements found (with their file offsets), and the skeleton or the error.
#[cfg(test)]
pub(super) type Split = (Vec<(u64, Vec<u8>)>, Result<Vec<u8>, String>);

#[cfg(test)]
pub(super) fn split_all(text: &[u8], block: usize) -> Split {
    let mut s = Splitter::new();
    let mut entries = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let (mut base, mut read) = (0u64, 0);
    let mut out = Vec::new();
    let take = |buf: &[u8], out: &mut Vec<Range<usize>>, base: u64, entries: &mut Vec<_>| {
        for r in out.drain(..) {
            entries.push((base + r.start as u64, buf[r].to_vec()));
        }
    };
    while read < text.len() {
        let from = buf.len();
        let end = (read + block).min(text.len());
        buf.extend_from_slice(&text[read..end]);
        read = end;
        let r = s.scan(&buf, from, base, &mut out);
        take(&buf, &mut out, base, &mut entries);
        match r {
            Ok(carry) => {
                buf.drain(..carry);
                base += carry as u64;
            }
            Err(e) => return (entries, Err(e)),
        }
    }
    let r = s.finish(&buf, &mut out);
    take(&buf, &mut out, base, &mut entries);
    (entries, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, block: usize) -> Result<(String, Vec<String>), String> {
        let (entries, skeleton) = split_all(text.as_bytes(), block);
        let skeleton = skeleton?;
        let mut out = Vec::new();
        for (at, bytes) in entries {
            let t = String::from_utf8(bytes).unwrap();
            assert_eq!(
                text.get(at as usize..at as usize + t.len()),
                Some(t.as_str())
            );
            out.push(t);
        }
        Ok((String::from_utf8(skeleton).unwrap(), out))
    }

    #[test]
    fn entries_are_cut_out_whatever_the_block_size() {
        let text = r#" { "version" : 1, "keys" : [ {"name":"a\"]}","m":["x",{}]} ,
            {"name":"b\\"} ,"s", 12 ,[1,[2]],true ] , "x": {"keys":[1]} } "#;
        for block in [1, 2, 3, 7, 64, 4096] {
            let (skeleton, entries) = run(text, block).unwrap();
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
                "block size {block}"
            );
            assert_eq!(
                skeleton, r#" { "version" : 1, "keys" : [] , "x": {"keys":[1]} } "#,
                "block size {block}"
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
            for block in [1, 4, 100] {
                assert!(run(text, block).is_err(), "{text}");
            }
        }
    }

    #[test]
    fn elements_before_an_error_are_still_handed_over() {
        for (text, first) in [
            (r#"{"keys":[{"a":1},{"b":2} 3]}"#, 2),
            (r#"{"keys":[{"a":1},{"b":2},]}"#, 2),
            // The bare scalar the file ends in is handed over, then the error.
            (r#"{"keys":[{"a":1},7"#, 2),
            (r#"{"keys":[{"a":1},{"#, 1),
        ] {
            for block in [1, 3, 100] {
                let (entries, r) = split_all(text.as_bytes(), block);
                assert!(r.is_err(), "{text}");
                assert_eq!(entries.len(), first, "{text} block {block}");
                assert_eq!(entries[0].1, br#"{"a":1}"#);
            }
        }
        let (entries, _) = split_all(br#"{"keys":[{"a":1},7"#, 2);
        assert_eq!(entries[1], (17, b"7".to_vec()));
    }
}
