//! Reading a file into a [`Config`]: YAML → env interpolation → per-section
//! strict deserialisation → validation, collecting every error on the way.

use std::path::Path;

use serde::de::DeserializeOwned;
use yaml_serde::Value;

use crate::error::{Collector, ConfigErrors};
use crate::interpolate::interpolate;
use crate::types::Config;
use crate::validate::{Sections, validate};

/// Top-level sections and what each holds, for "unknown section" hints.
const SECTIONS: &[&str] = &[
    "listen",
    "admin",
    "models",
    "auth",
    "policies",
    "log",
    "runtime",
    "ext_authz",
    "wristband",
    "extension_providers",
    "limits",
];

/// Loads and validates the configuration file at `path`, reading `${VARS}`
/// from the process environment.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let source_name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        source_name: source_name.clone(),
        errors: vec![crate::ConfigError::new(
            "",
            format!("cannot read the file: {e}"),
            "pass an existing, readable YAML file with --config",
        )],
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_str(&text, &source_name, base, &|k| std::env::var(k).ok())
}

/// Parses configuration text. Relative file paths are resolved against `base_dir`.
pub fn parse_str(
    text: &str,
    source_name: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut c = Collector::default();
    let fail = |c: Collector| ConfigErrors {
        source_name: source_name.to_string(),
        errors: c.into_errors(),
    };
    let mut root: Value = match yaml_serde::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            c.push(
                "",
                format!("not valid YAML: {e}"),
                "fix the YAML syntax at the position shown",
            );
            return Err(fail(c));
        }
    };
    interpolate(&mut root, "", env, &mut c);
    let Value::Mapping(map) = root else {
        c.push(
            "",
            "the file must be a YAML mapping with sections such as `listen:` and `models:`",
            "start from examples/modelgate.yaml",
        );
        return Err(fail(c));
    };
    let mut s = Sections::default();
    for (k, v) in map {
        let Some(key) = k.as_str().map(str::to_string) else {
            c.push(
                "",
                format!("top-level key {k:?} is not a string"),
                "use section names",
            );
            continue;
        };
        match key.as_str() {
            "listen" => s.listen = Some(v),
            "admin" => s.admin = de(v, "admin", &mut c),
            "models" => s.models = Some(v),
            "auth" => s.auth = de(v, "auth", &mut c),
            "policies" => s.policies = Some(v),
            "log" => s.log = de(v, "log", &mut c),
            "runtime" => s.runtime = de(v, "runtime", &mut c),
            "ext_authz" => s.ext_authz = de(v, "ext_authz", &mut c),
            "wristband" => s.wristband = de(v, "wristband", &mut c),
            "extension_providers" => {
                s.extension_providers = de(v, "extension_providers", &mut c);
            }
            "limits" => s.rate_limits = de(v, "limits", &mut c),
            other => c.push(
                other,
                "unknown section",
                match closest(other, SECTIONS) {
                    Some(best) => format!(
                        "did you mean `{best}`? valid sections: {}",
                        SECTIONS.join(", ")
                    ),
                    None => format!("valid sections: {}", SECTIONS.join(", ")),
                },
            ),
        }
    }
    let config = validate(s, base_dir, &mut c);
    match config {
        Some(cfg) if c.is_empty() => Ok(cfg),
        _ => Err(fail(c)),
    }
}

/// Deserialises `v` strictly, recording an error with the full key path.
pub(crate) fn de<T: DeserializeOwned>(v: Value, path: &str, c: &mut Collector) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(t) => Some(t),
        Err(e) => {
            let inner = e.path().to_string();
            let full = join_path(path, &inner);
            let message = e.inner().to_string();
            let hint = hint_for(&message);
            c.push(full, message, hint);
            None
        }
    }
}

fn join_path(base: &str, inner: &str) -> String {
    match (base.is_empty(), inner == ".") {
        (_, true) => base.to_string(),
        (true, _) => inner.to_string(),
        (false, false) if inner.starts_with('[') => format!("{base}{inner}"),
        (false, false) => format!("{base}.{inner}"),
    }
}

/// A fix for serde's message: the closest valid key for a misspelt one.
fn hint_for(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (bad, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let valid: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        return match closest(bad, &valid) {
            Some(best) => format!("did you mean `{best}`? (see docs/config.md)"),
            None => "remove the key; see docs/config.md for the keys this section takes".into(),
        };
    }
    if message.starts_with("unknown variant") {
        return "use one of the values listed".into();
    }
    if message.starts_with("missing field") {
        return "add the key; see docs/config.md".into();
    }
    if message.starts_with("invalid type") {
        return "write the value with the type shown (see docs/config.md)".into();
    }
    "see docs/config.md".into()
}

/// The candidate within edit distance 2 of `word`, or one that `word`
/// starts with (`loging` → `log`), if any.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    if let Some(c) = candidates
        .iter()
        .find(|c| c.len() >= 3 && word.starts_with(**c))
    {
        return Some(c);
    }
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
