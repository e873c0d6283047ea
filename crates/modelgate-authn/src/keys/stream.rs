//! Reading a key file straight into a [`KeyStore`]: each entry is checked and
//! stored as the JSON parser reaches it, so a million-key file never exists
//! as a `Vec<KeyEntry>` beside the store (issue 14: load in under 2 s, hold
//! under 300 MB). The document's rules are [`super::KeyFile`]'s: `version`
//! must be 1, no other top-level field.

use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::file::{KeyEntry, KeyFileError};
use super::store::{Builder, KeyStore, KeyStoreError};

/// Loads the file at `path`; a missing file is an empty store.
pub(super) fn load(path: &Path) -> Result<KeyStore, KeyStoreError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(KeyStore::empty()),
        Err(source) => {
            return Err(KeyFileError::Read {
                path: path.into(),
                source,
            }
            .into());
        }
    };
    let corrupt = |message: String| KeyFileError::Corrupt {
        path: path.into(),
        message,
    };
    let mut doc = Doc {
        builder: Builder::default(),
        path,
        refused: None,
        version: None,
    };
    let mut de = serde_json::Deserializer::from_slice(&text);
    let parsed = (&mut doc).deserialize(&mut de).and_then(|()| de.end());
    if let Some(e) = doc.refused {
        return Err(e);
    }
    parsed.map_err(|e| corrupt(e.to_string()))?;
    match doc.version {
        Some(1) => Ok(doc.builder.finish()),
        Some(v) => Err(corrupt(format!(
            "unsupported version {v}; this modelgate reads version 1"
        ))
        .into()),
        None => Err(corrupt("missing field `version`".into()).into()),
    }
}

struct Doc<'p> {
    builder: Builder,
    path: &'p Path,
    /// The first entry the store refused (the parse stops there).
    refused: Option<KeyStoreError>,
    version: Option<u32>,
}

impl<'de> DeserializeSeed<'de> for &mut Doc<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &mut Doc<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key file object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(field) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*field {
                "version" if self.version.is_none() => self.version = Some(map.next_value()?),
                "keys" => map.next_value_seed(Entries(&mut *self))?,
                "version" => return Err(de::Error::duplicate_field("version")),
                other => return Err(de::Error::unknown_field(other, &["version", "keys"])),
            }
        }
        Ok(())
    }
}

struct Entries<'a, 'p>(&'a mut Doc<'p>);

impl<'de> DeserializeSeed<'de> for Entries<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of keys")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        let doc = self.0;
        let mut index = 0;
        while let Some(e) = seq.next_element::<KeyEntry>()? {
            if let Err(refused) = doc.builder.add(index, &e, doc.path) {
                doc.refused = Some(refused);
                return Err(de::Error::custom("entry refused"));
            }
            index += 1;
        }
        Ok(())
    }
}
