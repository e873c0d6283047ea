//! The key set the watch maintains: one record per Secret, rotated-out keys
//! kept until their grace ends, whole namespaces replaced after a (re)list.
//! Pure: time comes in as an argument.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use modelgate_authn::keys::SecretKeyEntry;

use crate::secret::{Record, SecretId};

/// A key replaced by patching its Secret, still accepted until `until`.
struct Retired {
    from: SecretId,
    record: Record,
    until: SystemTime,
}

/// Keys from Secrets, by Secret.
pub struct KeySet {
    grace: Duration,
    current: BTreeMap<SecretId, Record>,
    retired: Vec<Retired>,
}

impl KeySet {
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            current: BTreeMap::new(),
            retired: Vec::new(),
        }
    }

    /// A Secret was created or changed. A changed key keeps working for the
    /// rotation grace; an unusable Secret (`None`) loses its key at once.
    pub fn apply(&mut self, id: SecretId, record: Option<Record>, now: SystemTime) {
        let old = match record {
            Some(r) => self.current.insert(id.clone(), r),
            None => self.current.remove(&id),
        };
        let new_digest = self.current.get(&id).map(|r| r.digest);
        if let Some(old) = old
            && new_digest.is_some_and(|d| d != old.digest)
            && !self.grace.is_zero()
        {
            self.retired.push(Retired {
                from: id,
                record: old,
                until: now + self.grace,
            });
        }
    }

    /// A Secret was deleted: its key, and any key in grace from it, stop now.
    pub fn delete(&mut self, id: &SecretId) {
        self.current.remove(id);
        self.retired.retain(|r| &r.from != id);
    }

    /// After a (re)list of `namespace` (`None`: every namespace): the listed
    /// Secrets are the whole truth for it.
    pub fn replace(
        &mut self,
        namespace: Option<&str>,
        listed: Vec<(SecretId, Option<Record>)>,
        now: SystemTime,
    ) {
        let in_scope = |id: &SecretId| namespace.is_none_or(|ns| id.0 == ns);
        let gone: Vec<SecretId> = self
            .current
            .keys()
            .filter(|id| in_scope(id) && !listed.iter().any(|(l, _)| l == *id))
            .cloned()
            .collect();
        for id in &gone {
            self.delete(id);
        }
        for (id, record) in listed {
            self.apply(id, record, now);
        }
    }

    /// The keys in force at `now` (dropping rotated-out keys whose grace ended).
    pub fn entries(&mut self, now: SystemTime) -> Vec<SecretKeyEntry> {
        self.retired.retain(|r| r.until > now);
        let current = self.current.values().map(|r| SecretKeyEntry {
            name: r.identity.clone(),
            models: r.models.clone(),
            digest: r.digest,
            not_after: None,
        });
        let retired = self.retired.iter().map(|r| SecretKeyEntry {
            name: r.record.identity.clone(),
            models: r.record.models.clone(),
            digest: r.record.digest,
            not_after: Some(r.until),
        });
        current.chain(retired).collect()
    }
}

#[cfg(test)]
mod tests {
    use modelgate_authn::keys::KeyDigest;

    use super::*;

    fn id(ns: &str, name: &str) -> SecretId {
        (ns.into(), name.into())
    }

    fn rec(key: &str) -> Option<Record> {
        Some(Record {
            identity: "svc".into(),
            models: vec!["*".into()],
            digest: KeyDigest::of(key),
        })
    }

    fn digests(set: &mut KeySet, now: SystemTime) -> Vec<(KeyDigest, Option<SystemTime>)> {
        set.entries(now)
            .into_iter()
            .map(|e| (e.digest, e.not_after))
            .collect()
    }

    #[test]
    fn rotation_keeps_the_old_key_for_the_grace_only() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut s = KeySet::new(Duration::from_secs(10));
        s.apply(id("a", "k"), rec("one"), t0);
        s.apply(id("a", "k"), rec("one"), t0); // unchanged: no grace entry
        assert_eq!(digests(&mut s, t0), [(KeyDigest::of("one"), None)]);
        s.apply(id("a", "k"), rec("two"), t0);
        let until = t0 + Duration::from_secs(10);
        assert_eq!(
            digests(&mut s, t0),
            [
                (KeyDigest::of("two"), None),
                (KeyDigest::of("one"), Some(until))
            ]
        );
        assert_eq!(digests(&mut s, until), [(KeyDigest::of("two"), None)]);
    }

    #[test]
    fn without_grace_rotation_and_bad_updates_end_the_old_key_at_once() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut s = KeySet::new(Duration::ZERO);
        s.apply(id("a", "k"), rec("one"), t0);
        s.apply(id("a", "k"), rec("two"), t0);
        assert_eq!(digests(&mut s, t0), [(KeyDigest::of("two"), None)]);
        s.apply(id("a", "k"), None, t0);
        assert!(digests(&mut s, t0).is_empty());
    }

    #[test]
    fn delete_ends_the_key_and_its_grace() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut s = KeySet::new(Duration::from_secs(60));
        s.apply(id("a", "k"), rec("one"), t0);
        s.apply(id("a", "k"), rec("two"), t0);
        s.delete(&id("a", "k"));
        assert!(digests(&mut s, t0).is_empty());
    }

    #[test]
    fn relist_replaces_only_its_namespace() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut s = KeySet::new(Duration::ZERO);
        s.apply(id("a", "x"), rec("ax"), t0);
        s.apply(id("a", "y"), rec("ay"), t0);
        s.apply(id("b", "z"), rec("bz"), t0);
        s.replace(Some("a"), vec![(id("a", "y"), rec("ay2"))], t0);
        let got = digests(&mut s, t0);
        assert_eq!(got.len(), 2);
        assert!(got.contains(&(KeyDigest::of("ay2"), None)));
        assert!(got.contains(&(KeyDigest::of("bz"), None)));
        s.replace(None, Vec::new(), t0);
        assert!(digests(&mut s, t0).is_empty());
    }
}
