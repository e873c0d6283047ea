//! Input text → Kubernetes objects: shell variables from `--var`, several
//! documents per file, `kind: List`, a first line indented differently from
//! the rest (YAML pasted out of a web page), and `<PLACEHOLDER>` values.

use std::collections::BTreeMap;

use serde::Deserialize;
use yaml_serde::Value;

use crate::report::{Level, Report};
use crate::{ImportError, Input};

/// The objects found in one input, in order.
pub(crate) fn objects(
    input: &Input,
    vars: &BTreeMap<String, String>,
    report: &mut Report,
) -> Result<Vec<Value>, ImportError> {
    let text = blank_lines(&expand_vars(&input.text, vars));
    for name in unset_vars(&text) {
        report.push(
            Level::Note,
            &input.name,
            "",
            format!("shell variable ${name} is not set; pass --var {name}=VALUE (as the shell would have)"),
        );
    }
    let docs = match parse_all(&text) {
        Ok(d) => d,
        Err(first) => match realign_first_line(&text).map(|t| parse_all(&t)) {
            Some(Ok(d)) => {
                report.push(
                    Level::Note,
                    &input.name,
                    "",
                    "the first line is indented differently from the rest (pasted from a page); read as aligned",
                );
                d
            }
            _ => {
                return Err(ImportError {
                    source_name: input.name.clone(),
                    message: format!("not valid YAML: {first}"),
                });
            }
        },
    };
    let mut out = Vec::new();
    for mut doc in docs {
        placeholders(&mut doc, "", &input.name, report);
        match doc {
            Value::Null => {}
            Value::Mapping(ref m) if m.get("kind").and_then(Value::as_str) == Some("List") => {
                if let Some(Value::Sequence(items)) = m.get("items") {
                    out.extend(items.iter().cloned());
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Lines of only whitespace (a page's non-breaking spaces too) become empty.
fn blank_lines(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| {
            if l.chars().all(char::is_whitespace) {
                ""
            } else {
                l
            }
        })
        .collect();
    lines.join("\n")
}

fn parse_all(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for de in yaml_serde::Deserializer::from_str(text) {
        docs.push(Value::deserialize(de).map_err(|e| e.to_string())?);
    }
    Ok(docs)
}

/// Indents the first non-blank line like the second one, if they differ.
fn realign_first_line(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut content = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let (first, first_line) = content.next()?;
    let (_, second_line) = content.next()?;
    let indent = |l: &str| l.len() - l.trim_start().len();
    if indent(first_line) == indent(second_line) {
        return None;
    }
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_string()).collect();
    out[first] = format!(
        "{}{}",
        " ".repeat(indent(second_line)),
        first_line.trim_start()
    );
    Some(out.join("\n"))
}

fn is_var_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_var_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Replaces `$NAME` and `${NAME}` for the names given (others stay as written).
pub(crate) fn expand_vars(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, len) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) if inner[..end].chars().all(is_var_char) => (&inner[..end], end + 2),
                _ => ("", 0),
            }
        } else {
            let end = after.find(|c: char| !is_var_char(c)).unwrap_or(after.len());
            (&after[..end], end)
        };
        match vars.get(name) {
            Some(value) if name.starts_with(is_var_start) => {
                out.push_str(value);
                rest = &after[len..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Shell variables (`$NAME`, `${NAME}`) still in the text, without repeats.
fn unset_vars(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (pos, _) in text.match_indices('$') {
        let after = text[pos + 1..].trim_start_matches('{');
        let end = after.find(|c: char| !is_var_char(c)).unwrap_or(after.len());
        let name = &after[..end];
        if name.starts_with(is_var_start) && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

/// `<OIDC_TOKEN_ISSUER>` (a documentation placeholder) → `${OIDC_TOKEN_ISSUER}`,
/// an environment reference modelgate resolves at load.
fn placeholders(value: &mut Value, path: &str, source: &str, report: &mut Report) {
    match value {
        Value::String(s) => {
            let inner = s.strip_prefix('<').and_then(|r| r.strip_suffix('>'));
            if let Some(name) = inner.filter(|n| {
                n.starts_with(is_var_start)
                    && n.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            }) {
                report.push(
                    Level::Note,
                    source,
                    path,
                    format!("placeholder {s} written as ${{{name}}}: set the environment variable {name} when serving"),
                );
                *s = format!("${{{name}}}");
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                placeholders(item, &format!("{path}[{i}]"), source, report);
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = k.as_str().unwrap_or("?");
                let p = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                placeholders(v, &p, source, report);
            }
        }
        Value::Tagged(t) => placeholders(&mut t.value, path, source, report),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_only_given_variables() {
        let vars = BTreeMap::from([("NS".to_string(), "team".to_string())]);
        assert_eq!(
            expand_vars("a: $NS/${NS}-$OTHER $", &vars),
            "a: team/team-$OTHER $"
        );
        assert_eq!(unset_vars("x: $OTHER ${B} $1"), vec!["OTHER", "B"]);
    }

    #[test]
    fn realigns_a_pasted_first_line() {
        let text = "   apiVersion: v1\n    kind: X\n    metadata: {name: a}\n";
        assert!(parse_all(text).is_err());
        let fixed = realign_first_line(text).unwrap();
        assert_eq!(parse_all(&fixed).unwrap().len(), 1);
    }

    #[test]
    fn lists_and_multi_documents_are_flattened() {
        let input = Input {
            name: "f.yaml".into(),
            text: "kind: List\nitems: [{kind: A}, {kind: B}]\n---\nkind: C\n---\n".into(),
        };
        let mut report = Report::default();
        let objs = objects(&input, &BTreeMap::new(), &mut report).unwrap();
        assert_eq!(objs.len(), 3);
    }

    #[test]
    fn placeholders_become_env_references() {
        let mut v: Value = yaml_serde::from_str("a: {b: <OIDC_ISSUER>, c: <not this>}").unwrap();
        let mut report = Report::default();
        placeholders(&mut v, "", "f", &mut report);
        assert_eq!(v["a"]["b"].as_str(), Some("${OIDC_ISSUER}"));
        assert_eq!(v["a"]["c"].as_str(), Some("<not this>"));
        assert_eq!(report.findings.len(), 1);
        assert_eq!(report.findings[0].path, "a.b");
    }
}
