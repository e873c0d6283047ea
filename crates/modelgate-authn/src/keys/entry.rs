//! The key file as the loader parses it: one entry at a time from a slice
//! (strings borrowed, unknown fields refused, as [`super::KeyEntry`]), and
//! the skeleton left when the splitter took the entries out (`version`, and
//! `keys` if it was spelled with escapes).

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::file::KeyFileError;
use super::part::{EntryView, Part};

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

/// Parses the document, feeding each entry of `keys` to `part` (only
/// there when `keys` was spelled with escapes, so the splitter left it in).
/// The parse stops at an entry the part refuses.
struct Document<'b> {
    part: &'b mut Part,
    path: &'b Path,
}

impl<'de> DeserializeSeed<'de> for Document<'_> {
    type Value = Option<u32>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Document<'_> {
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
                        part: &mut *self.part,
                        path: self.path,
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

struct Keys<'b> {
    part: &'b mut Part,
    path: &'b Path,
}

impl<'de> DeserializeSeed<'de> for Keys<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Keys<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of keys")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(e) = seq.next_element::<Entry<'de>>()? {
            e.add_to(self.part, self.path, index);
            if self.part.error.is_some() {
                return Err(de::Error::custom("refused entry"));
            }
            index += 1;
        }
        Ok(())
    }
}

impl Entry<'_> {
    fn add_to(&self, part: &mut Part, path: &Path, index: usize) {
        let view = EntryView {
            name: self.name.as_ref(),
            id: self.id.as_ref(),
            sha256: self.sha256.as_ref(),
            models: &self.models,
            expires_at: self.expires_at.as_ref().map(AsRef::as_ref),
            revoked_at: self.revoked_at.as_ref().map(AsRef::as_ref),
            previous: self
                .previous
                .iter()
                .map(|p| (p.id.as_ref(), p.sha256.as_ref(), p.valid_until.as_ref()))
                .collect(),
        };
        part.add(path, index, &view);
    }
}

/// Parses entry `index` of the file (at byte `at`; its text, or its bytes
/// if they are not known to be UTF-8) into `part`; a malformed one is
/// `part`'s error.
pub(super) fn add_entry(
    part: &mut Part,
    path: &Path,
    index: usize,
    entry: Result<&str, &[u8]>,
    at: u64,
) {
    let parsed = match entry {
        Ok(text) => serde_json::from_str::<Entry<'_>>(text),
        Err(bytes) => serde_json::from_slice::<Entry<'_>>(bytes),
    };
    match parsed {
        Ok(e) => e.add_to(part, path, index),
        Err(e) => {
            let message = format!("keys[{index}] (at byte {at}): {e}");
            let err = KeyFileError::Corrupt {
                path: path.into(),
                message,
            };
            part.error = Some(err.into());
        }
    }
}

/// Parses the skeleton (the document with `keys` emptied): its `version`.
/// Entries still in it go to `part`; one it refuses stops the parse.
pub(super) fn parse_skeleton(
    skeleton: &[u8],
    path: &Path,
    part: &mut Part,
) -> Result<Option<u32>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(skeleton);
    let version = Document { part, path }.deserialize(&mut de)?;
    de.end()?;
    Ok(version)
}
