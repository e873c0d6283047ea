//! Authorino's `response.success.headers.<name>.wristband` → modelgate's
//! `wristband:` section. The signing keys live in Kubernetes Secrets the
//! importer cannot read: each becomes a PEM file path to mount, and the
//! report says so. Custom claims are not translated (modelgate's are fixed).

use serde::{Deserialize, Serialize};

use crate::State;
use crate::object::Object;

/// Authorino's wristband spec (v1beta2 and v1beta3 agree on these fields).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    issuer: String,
    #[serde(default)]
    token_duration: Option<u64>,
    #[serde(default)]
    signing_key_refs: Vec<KeyRef>,
    #[serde(default)]
    custom_claims: Option<yaml_serde::Value>,
}

#[derive(Debug, Deserialize)]
struct KeyRef {
    name: String,
    #[serde(default)]
    algorithm: Option<String>,
}

/// The emitted `wristband:` section.
#[derive(Debug, Serialize)]
pub(crate) struct Wristband {
    pub issuer: String,
    pub header: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    pub algorithm: String,
    pub signing_keys: Vec<String>,
}

/// Translates the wristband at `p` (`spec.response.success.headers.<header>`).
pub(crate) fn translate(obj: &mut Object, st: &mut State<'_>, header: &str, p: &str) {
    let path = format!("{p}.wristband");
    let Some(spec) = obj.read::<Spec>(&path, &mut st.report) else {
        return;
    };
    if st.config.wristband.is_some() {
        obj.drop(
            &mut st.report,
            p,
            "modelgate sends one wristband; the first one found is kept",
        );
        return;
    }
    if spec.custom_claims.is_some() {
        obj.drop(&mut st.report, &format!("{path}.customClaims"), "modelgate's wristband claims are fixed: iss, sub, aud, model, protocol, operation, decision and identity (docs/mesh.md)");
    }
    let ttl = spec.token_duration.map(|s| {
        if s > 3600 {
            obj.note(
                &mut st.report,
                &format!("{path}.tokenDuration"),
                format!("{s}s is above modelgate's 1h maximum: ttl set to 1h"),
            );
        }
        format!("{}s", s.clamp(1, 3600))
    });
    let mut algorithm = "ES256".to_string();
    let mut signing_keys = Vec::new();
    for (i, k) in spec.signing_key_refs.iter().enumerate() {
        let a = k.algorithm.as_deref().unwrap_or("ES256");
        if a != "ES256" {
            obj.drop(
                &mut st.report,
                &format!("{path}.signingKeyRefs[{i}]"),
                format!("{a} is not supported (ES256 or EdDSA): make a P-256 key for this Secret"),
            );
            continue;
        }
        if signing_keys.is_empty() {
            algorithm = a.to_string();
        }
        signing_keys.push(format!(
            "${{WRISTBAND_KEYS_DIR:-/etc/modelgate/wristband}}/{}.pem",
            k.name
        ));
    }
    obj.note(&mut st.report, &path, format!(
        "wristband in header {header}: mount each signing Secret's key as a PKCS#8 PEM file under $WRISTBAND_KEYS_DIR (default /etc/modelgate/wristband), named <secret>.pem; point the issuer at modelgate, which serves <issuer path>/.well-known/openid-configuration and jwks.json"
    ));
    st.config.wristband = Some(Wristband {
        issuer: spec.issuer,
        header: header.to_string(),
        ttl,
        algorithm,
        signing_keys,
    });
}

#[cfg(test)]
mod tests {
    use crate::report::Level;
    use crate::{Input, Options, import};

    const AUTHCONFIG: &str = "apiVersion: authorino.kuadrant.io/v1beta3
kind: AuthConfig
metadata: {name: ac, namespace: ns}
spec:
  hosts: [m.example.com]
  authentication:
    keys:
      apiKey: {selector: {matchLabels: {group: friends}}}
  response:
    success:
      headers:
        x-wristband:
          wristband:
            issuer: https://gw.example/ns/ac/x-wristband
            tokenDuration: 7200
            customClaims: {aud: {value: internal}}
            signingKeyRefs:
              - {name: wb-key, algorithm: ES256}
              - {name: rsa-key, algorithm: RS256}
";

    #[test]
    fn authorino_wristband_becomes_the_section() {
        let i = import(
            &[Input {
                name: "t.yaml".into(),
                text: AUTHCONFIG.into(),
            }],
            &Options::default(),
        )
        .unwrap();
        let c: yaml_serde::Value = yaml_serde::from_str(&i.config).unwrap();
        let w = &c["wristband"];
        assert_eq!(
            w["issuer"].as_str(),
            Some("https://gw.example/ns/ac/x-wristband")
        );
        assert_eq!(w["header"].as_str(), Some("x-wristband"));
        assert_eq!(w["ttl"].as_str(), Some("3600s"));
        assert_eq!(w["algorithm"].as_str(), Some("ES256"));
        assert_eq!(
            w["signing_keys"][0].as_str(),
            Some("${WRISTBAND_KEYS_DIR:-/etc/modelgate/wristband}/wb-key.pem")
        );
        assert!(w["signing_keys"][1].is_null());
        let dropped: Vec<String> = i
            .report
            .at(Level::Untranslated)
            .map(|f| f.path.clone())
            .collect();
        assert!(
            dropped
                .iter()
                .any(|p| p.ends_with("wristband.customClaims")),
            "{dropped:?}"
        );
        assert!(
            dropped.iter().any(|p| p.ends_with("signingKeyRefs[1]")),
            "{dropped:?}"
        );
        assert!(c["auth"]["identity_header"].is_null());
    }
}
