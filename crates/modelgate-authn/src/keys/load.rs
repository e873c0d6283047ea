//! Loads the key file straight into a [`KeyStore`]: the file is read through
//! a small buffer and split as it comes (`split.rs`) into its entries, each
//! parsed from a slice (strings borrowed) and added to the store at once,
//! and its skeleton (the document with `keys` emptied), parsed last. So
//! neither the file's bytes (168 MB for a million keys) nor a
//! `Vec<KeyEntry>` are ever held, and the store's tables are sized from the
//! file's length up front instead of regrown: a large transient buffer's
//! memory is not given back to the OS at once by every allocator (mimalloc
//! purges freed memory after a delay, and only when it next runs).
//! Same checks as [`super::KeyFile::read`] + [`KeyStore::from_file`].

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::file::KeyFileError;
use super::split::{SplitError, split};
use super::store::{Builder, EntryView, KeyStore, KeyStoreError};

/// A string borrowed from the input when it can be.
#[derive(Deserialize)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

impl AsRef<str> for Str<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// [`super::KeyEntry`], borrowed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry<'a> {
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow)]
    sha256: Str<'a>,
    #[serde(borrow)]
    models: Vec<Str<'a>>,
    #[serde(borrow, rename = "created_at")]
    _created_at: Str<'a>,
    #[serde(default, borrow)]
    expires_at: Option<Str<'a>>,
    #[serde(default, borrow)]
    revoked_at: Option<Str<'a>>,
    #[serde(default, borrow)]
    previous: Vec<Previous<'a>>,
    /// Read by the rate-limit step, not by the store.
    #[serde(default, rename = "limits")]
    _limits: Option<serde::de::IgnoredAny>,
}

/// [`super::PreviousKey`], borrowed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Previous<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow)]
    sha256: Str<'a>,
    #[serde(borrow)]
    valid_until: Str<'a>,
}

/// Parses the document, feeding each entry to the builder. An entry the
/// builder refuses is kept in `failed` (the parse stops there).
struct Document<'b, 'p> {
    builder: &'b mut Builder<'p>,
    failed: &'b mut Option<KeyStoreError>,
}

impl<'de> DeserializeSeed<'de> for Document<'_, '_> {
    type Value = Option<u32>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Document<'_, '_> {
    type Value = Option<u32>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key file document")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut version = None;
        let mut keys_seen = false;
        while let Some(field) = map.next_key::<Str<'de>>()? {
            match field.as_ref() {
                "version" if version.is_none() => version = Some(map.next_value::<u32>()?),
                "keys" if !keys_seen => {
                    keys_seen = true;
                    map.next_value_seed(Keys {
                        builder: &mut *self.builder,
                        failed: &mut *self.failed,
                    })?;
                }
                "version" | "keys" => {
                    return Err(de::Error::custom(format_args!(
                        "duplicate field `{}`",
                        field.as_ref()
                    )));
                }
                other => return Err(de::Error::unknown_field(other, &["version", "keys"])),
            }
        }
        Ok(version)
    }
}

struct Keys<'b, 'p> {
    builder: &'b mut Builder<'p>,
    failed: &'b mut Option<KeyStoreError>,
}

impl<'de> DeserializeSeed<'de> for Keys<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Keys<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of keys")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(e) = seq.next_element::<Entry<'de>>()? {
            if let Err(err) = add(self.builder, index, &e) {
                *self.failed = Some(err);
                return Err(de::Error::custom("refused entry"));
            }
            index += 1;
        }
        Ok(())
    }
}

fn add(builder: &mut Builder<'_>, index: usize, e: &Entry<'_>) -> Result<(), KeyStoreError> {
    let view = EntryView {
        name: e.name.as_ref(),
        id: e.id.as_ref(),
        sha256: e.sha256.as_ref(),
        models: &e.models,
        expires_at: e.expires_at.as_ref().map(AsRef::as_ref),
        revoked_at: e.revoked_at.as_ref().map(AsRef::as_ref),
        previous: e
            .previous
            .iter()
            .map(|p| (p.id.as_ref(), p.sha256.as_ref(), p.valid_until.as_ref()))
            .collect(),
    };
    builder.add(index, &view)
}

/// Why an entry of the `keys` list was not added.
enum EntryError {
    Corrupt(String),
    Refused(KeyStoreError),
}

/// Bytes read from the file at a time.
const READ_BUFFER: usize = 64 * 1024;

pub(super) fn load(path: &Path) -> Result<KeyStore, KeyStoreError> {
    let read_error = |source| KeyFileError::Read {
        path: path.into(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(KeyStore::empty()),
        Err(source) => return Err(read_error(source).into()),
    };
    let len = file.metadata().map_err(read_error)?.len();
    let corrupt = |message: String| KeyFileError::Corrupt {
        path: path.into(),
        message,
    };
    let mut builder = Builder::new(path);
    builder.reserve_for_file(len);
    let reader = std::io::BufReader::with_capacity(READ_BUFFER, file);
    let skeleton = split(reader, |index, bytes, at| {
        let e: Entry<'_> = serde_json::from_slice(bytes)
            .map_err(|e| EntryError::Corrupt(format!("keys[{index}] (at byte {at}): {e}")))?;
        add(&mut builder, index, &e).map_err(EntryError::Refused)
    });
    let skeleton = match skeleton {
        Ok(s) => s,
        Err(SplitError::Io(e)) => return Err(read_error(e).into()),
        Err(SplitError::Syntax(m) | SplitError::Entry(EntryError::Corrupt(m))) => {
            return Err(corrupt(m).into());
        }
        Err(SplitError::Entry(EntryError::Refused(e))) => return Err(e),
    };
    // The rest of the document: `keys` is empty here (unless it was spelled
    // with escapes, then its entries are parsed and added from here).
    let mut failed = None;
    let parsed = {
        let mut de = serde_json::Deserializer::from_slice(&skeleton);
        let seed = Document {
            builder: &mut builder,
            failed: &mut failed,
        };
        seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v))
    };
    if let Some(err) = failed {
        return Err(err);
    }
    let version = parsed.map_err(|e| corrupt(e.to_string()))?;
    match version {
        Some(1) => {}
        Some(v) => {
            return Err(corrupt(format!(
                "unsupported version {v}; this modelgate reads version 1"
            ))
            .into());
        }
        None => return Err(corrupt("missing field `version`".into()).into()),
    }
    builder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyFile;

    /// The streaming loader and `KeyFile::read` + `from_file` agree on
    /// what they accept and refuse.
    #[test]
    fn streaming_load_matches_the_document_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let entry = r#"{"name":"x","id":"AAAAAAAAAAAA","sha256":"00000000000000000000000000000000000000000000000000000000000000ff","models":["*"],"created_at":"2026-01-01T00:00:00Z"}"#;
        let cases = [
            (format!(r#"{{"version":1,"keys":[{entry}]}}"#), true),
            (format!(r#"{{"keys":[{entry}],"version":1}}"#), true),
            (r#"{"version":1}"#.to_string(), true),
            (
                format!("{{\n  \"version\": 1,\n  \"keys\": [\n    {entry}\n  ]\n}}\n"),
                true,
            ),
            (format!(r#"{{"version":1,"k\u0065ys":[{entry}]}}"#), true),
            (format!(r#"{{"version":1,"keys":[{entry},]}}"#), false),
            (
                format!(r#"{{"version":1,"keys":[{entry} {entry}]}}"#),
                false,
            ),
            (format!(r#"{{"version":1,"keys":[{entry}"#), false),
            (
                format!(r#"{{"version":1,"keys":[{entry}],"keys":[]}}"#),
                false,
            ),
            (r#"{"version":1,"keys":{}}"#.to_string(), false),
            (r#"{"version":1,"keys":[1]}"#.to_string(), false),
            (format!("[{entry}]"), false),
            (format!(r#"{{"version":2,"keys":[{entry}]}}"#), false),
            (format!(r#"{{"keys":[{entry}]}}"#), false),
            (format!(r#"{{"version":1,"keys":[{entry}],"x":1}}"#), false),
            (
                format!(r#"{{"version":1,"keys":[{entry},{entry}]}}"#),
                false,
            ),
            (
                format!(r#"{{"version":1,"keys":[{entry}]}} trailing"#),
                false,
            ),
            (
                format!(
                    r#"{{"version":1,"keys":[{}]}}"#,
                    entry.replace(r#""models""#, r#""extra":1,"models""#)
                ),
                false,
            ),
            (
                format!(
                    r#"{{"version":1,"keys":[{}]}}"#,
                    entry.replace("\"x\"", r#""\u0078""#)
                ),
                true,
            ),
        ];
        for (text, ok) in cases {
            std::fs::write(&path, &text).unwrap();
            let streamed = KeyStore::load(&path);
            let via_doc = KeyFile::read(&path)
                .map_err(KeyStoreError::from)
                .and_then(|d| KeyStore::from_file(&d, &path));
            assert_eq!(streamed.is_ok(), ok, "{text}");
            assert_eq!(via_doc.is_ok(), ok, "{text}");
            if let (Ok(a), Ok(b)) = (streamed, via_doc) {
                assert_eq!(a.len(), b.len());
                assert_eq!(
                    a.assume("x", std::time::SystemTime::now()).is_some(),
                    a.len() == 1
                );
            }
        }
    }
}
