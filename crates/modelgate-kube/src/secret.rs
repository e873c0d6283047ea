//! One Kubernetes Secret → one API-key record: the key (from `data.<key_field>`)
//! hashed at once, the identity (`modelgate.io/name` or the Secret's name) and
//! the model grants (`modelgate.io/models` or the configured default). Pure.

use k8s_openapi::api::core::v1::Secret;
use modelgate_authn::keys::KeyDigest;
use modelgate_config::kube_keys::{KubeKeys, MODELS_ANNOTATION, NAME_ANNOTATION};

/// Where a Secret lives: (namespace, name).
pub type SecretId = (String, String);

/// A usable key from one Secret. Holds no plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub identity: String,
    pub models: Vec<String>,
    pub digest: KeyDigest,
}

/// The longest key accepted (Authorino's are 32 characters; tokens are longer).
const MAX_KEY_LEN: usize = 4096;

/// Identity names as the key file allows them.
fn valid_identity(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b':'))
}

/// The Secret's (namespace, name); `default_ns` when the object has none.
pub fn id_of(secret: &Secret, default_ns: &str) -> SecretId {
    let m = &secret.metadata;
    (
        m.namespace
            .clone()
            .unwrap_or_else(|| default_ns.to_string()),
        m.name.clone().unwrap_or_default(),
    )
}

/// Reads a Secret's key. `Err` says why the Secret gives no key (never
/// quoting the key itself).
pub fn record(secret: &Secret, cfg: &KubeKeys) -> Result<Record, String> {
    let annotations = secret.metadata.annotations.as_ref();
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let identity = match annotations.and_then(|a| a.get(NAME_ANNOTATION)) {
        Some(n) if valid_identity(n) => n.clone(),
        Some(_) => {
            return Err(format!(
                "annotation {NAME_ANNOTATION} is not a valid identity name \
                 (1-253 letters, digits, '.', '_', '-', '@', ':')"
            ));
        }
        None => name.to_string(),
    };
    let models = match annotations.and_then(|a| a.get(MODELS_ANNOTATION)) {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(String::from)
            .collect(),
        None => cfg.default_models.clone(),
    };
    let Some(bytes) = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&cfg.key_field))
        .map(|b| &b.0)
    else {
        return Err(format!("has no data.{}", cfg.key_field));
    };
    let key = std::str::from_utf8(bytes)
        .map_err(|_| format!("data.{} is not UTF-8 text", cfg.key_field))?;
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(format!(
            "data.{} is empty or longer than {MAX_KEY_LEN} bytes",
            cfg.key_field
        ));
    }
    if key
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(format!(
            "data.{} contains whitespace (a trailing newline from `echo` without -n?)",
            cfg.key_field
        ));
    }
    Ok(Record {
        identity,
        models,
        digest: KeyDigest::of(key),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    pub(crate) fn cfg() -> KubeKeys {
        KubeKeys {
            namespaces: Vec::new(),
            match_labels: BTreeMap::from([("group".into(), "friends".into())]),
            key_field: "api_key".into(),
            default_models: vec!["iris".into()],
            rotation_grace: Duration::ZERO,
            kubeconfig: None,
            initial_sync_timeout: Duration::from_secs(1),
        }
    }

    pub(crate) fn secret(name: &str, key: &[u8], annotations: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                annotations: (!annotations.is_empty()).then(|| {
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                }),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "api_key".to_string(),
                ByteString(key.to_vec()),
            )])),
            ..Default::default()
        }
    }

    #[test]
    fn plain_authorino_secret_uses_its_name_and_default_grants() {
        let r = record(
            &secret("api-key-1", b"ndyBzreUzF4zqDQsqSPMHkRhriEOtcRx", &[]),
            &cfg(),
        )
        .unwrap();
        assert_eq!(r.identity, "api-key-1");
        assert_eq!(r.models, ["iris"]);
        assert_eq!(r.digest, KeyDigest::of("ndyBzreUzF4zqDQsqSPMHkRhriEOtcRx"));
        assert_eq!(
            id_of(&secret("x", b"k", &[]), "d"),
            ("ns".into(), "x".into())
        );
    }

    #[test]
    fn annotations_name_the_identity_and_grants() {
        let s = secret(
            "s",
            b"key",
            &[
                (NAME_ANNOTATION, "team-a"),
                (MODELS_ANNOTATION, " llama3, iris ,"),
            ],
        );
        let r = record(&s, &cfg()).unwrap();
        assert_eq!(r.identity, "team-a");
        assert_eq!(r.models, ["llama3", "iris"]);
    }

    #[test]
    fn unusable_secrets_say_why_without_the_key() {
        let mut c = cfg();
        for (s, want) in [
            (secret("a", b"", &[]), "empty"),
            (secret("b", b"key\n", &[]), "whitespace"),
            (secret("c", &[0xff, 0xfe], &[]), "UTF-8"),
            (
                secret("d", b"k", &[(NAME_ANNOTATION, "bad name")]),
                "identity",
            ),
        ] {
            let e = record(&s, &c).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
        c.key_field = "token".into();
        let e = record(&secret("e", b"secret-value", &[]), &c).unwrap_err();
        assert_eq!(e, "has no data.token");
    }
}
