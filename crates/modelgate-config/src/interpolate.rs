//! `${ENV_VAR}` interpolation in string values (after YAML parsing, so an
//! environment value can never change the structure of the file).
//!
//! `${NAME}` must be set; `${NAME:-default}` falls back; `$${` is a literal `${`.

use yaml_serde::Value;

use crate::error::Collector;

/// Replaces `${…}` references in every string scalar of `value`.
pub fn interpolate(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Collector,
) {
    match value {
        Value::String(s) => {
            if s.contains('$') {
                match expand(s, env) {
                    Ok(new) => *s = new,
                    Err(msg) => errors.push(
                        path,
                        msg,
                        "export the variable before starting modelgate, or write ${NAME:-default}",
                    ),
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, &format!("{path}[{i}]"), env, errors);
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                interpolate(v, &child, env, errors);
            }
        }
        Value::Tagged(tagged) => interpolate(&mut tagged.value, path, env, errors),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(inner_start) = after.strip_prefix('{') {
            let end = inner_start
                .find('}')
                .ok_or_else(|| format!("unterminated ${{ in {s:?}"))?;
            let inner = &inner_start[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("invalid environment variable name {name:?}"));
            }
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!("environment variable {name} is not set"));
                }
            }
            rest = &inner_start[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("10.0.0.1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands() {
        assert_eq!(
            expand("http://${HOST}:8080", &env).unwrap(),
            "http://10.0.0.1:8080"
        );
        assert_eq!(expand("${MISSING:-x}", &env).unwrap(), "x");
        assert_eq!(expand("$${HOST}", &env).unwrap(), "${HOST}");
        assert_eq!(expand("cost $5", &env).unwrap(), "cost $5");
        assert_eq!(expand("${EMPTY}", &env).unwrap(), "");
    }

    #[test]
    fn errors_name_the_variable() {
        assert!(expand("${MISSING}", &env).unwrap_err().contains("MISSING"));
        assert!(expand("${HOST", &env).is_err());
        assert!(expand("${A-B}", &env).is_err());
    }

    #[test]
    fn errors_name_the_key() {
        let mut v: Value =
            yaml_serde::from_str("models:\n  - upstream:\n      url: ${NOPE}\n").unwrap();
        let mut c = Collector::default();
        interpolate(&mut v, "", &env, &mut c);
        let errs = c.into_errors();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "models[0].upstream.url");
    }

    #[test]
    fn values_cannot_inject_structure() {
        let evil = |_: &str| Some("x\nadmin: {address: 0.0.0.0:1}".to_string());
        let mut v: Value = yaml_serde::from_str("a: ${X}\n").unwrap();
        let mut c = Collector::default();
        interpolate(&mut v, "", &evil, &mut c);
        assert_eq!(v["a"].as_str().unwrap(), "x\nadmin: {address: 0.0.0.0:1}");
        assert!(v.get("admin").is_none());
    }
}
