//! Authorino pattern expressions (`{selector, operator, value}`, `all`,
//! `any`) → one modelgate CEL condition over `request` and `auth`.

use yaml_serde::Value;

/// The patterns of a list, all of which must hold, as one CEL expression.
pub(crate) fn all_cel(patterns: &Value) -> Result<String, String> {
    let Value::Sequence(items) = patterns else {
        return Err("patterns is not a list".into());
    };
    if items.is_empty() {
        return Ok("true".into());
    }
    let parts: Result<Vec<String>, String> = items.iter().map(one).collect();
    Ok(parts?.join(" && "))
}

fn any_cel(patterns: &Value) -> Result<String, String> {
    let Value::Sequence(items) = patterns else {
        return Err("`any` is not a list".into());
    };
    let parts: Result<Vec<String>, String> = items.iter().map(one).collect();
    Ok(format!("({})", parts?.join(" || ")))
}

fn one(p: &Value) -> Result<String, String> {
    if let Some(all) = p.get("all") {
        return all_cel(all).map(|c| format!("({c})"));
    }
    if let Some(any) = p.get("any") {
        return any_cel(any);
    }
    if p.get("patternRef").is_some() {
        return Err("named pattern references (patternRef) are not translated".into());
    }
    if p.get("predicate").is_some() {
        return Err("Authorino CEL predicates use Authorino's variables; not translated".into());
    }
    let selector = p.get("selector").and_then(Value::as_str).unwrap_or("");
    let operator = p.get("operator").and_then(Value::as_str).unwrap_or("");
    let value = match p.get("value") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    };
    let subject = selector_cel(selector)
        .ok_or_else(|| format!("selector {selector:?} has no modelgate equivalent"))?;
    let v = quote(&value);
    Ok(match operator {
        "eq" => format!("{subject} == {v}"),
        "neq" => format!("{subject} != {v}"),
        "incl" => format!("{v} in {subject}"),
        "excl" => format!("!({v} in {subject})"),
        "matches" => format!("{subject}.matches({v})"),
        other => {
            return Err(format!(
                "operator {other:?} is not one of eq, neq, incl, excl, matches"
            ));
        }
    })
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn ident(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !p.starts_with(|c: char| c.is_ascii_digit())
        })
}

/// Authorino's authorization-JSON paths → modelgate's CEL variables.
fn selector_cel(sel: &str) -> Option<String> {
    let sel = sel
        .strip_prefix("context.request.http.")
        .map(|r| format!("request.{r}"))
        .unwrap_or_else(|| sel.to_string());
    Some(match sel.as_str() {
        "request.method" => "request.method".into(),
        "request.path" | "request.url_path" => "request.path".into(),
        "request.host" => "request.host".into(),
        "auth.identity.sub" => "auth.subject".into(),
        "auth.identity.iss" => "auth.issuer".into(),
        "auth.identity.username" | "auth.identity.user.username" => "auth.name".into(),
        "auth.identity.groups" | "auth.identity.user.groups" => "auth.groups".into(),
        s => {
            if let Some(h) = s.strip_prefix("request.headers.") {
                if h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Some(format!(
                        "request.headers[{}][0]",
                        quote(&h.to_ascii_lowercase())
                    ));
                }
                return None;
            }
            let claim = s.strip_prefix("auth.identity.")?;
            if !ident(claim) {
                return None;
            }
            format!("auth.claims.{claim}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cel(yaml: &str) -> Result<String, String> {
        all_cel(&yaml_serde::from_str(yaml).unwrap())
    }

    #[test]
    fn operators_and_selectors() {
        assert_eq!(
            cel("[{selector: request.method, operator: eq, value: GET}, {selector: auth.identity.groups, operator: incl, value: ml}]").unwrap(),
            "request.method == \"GET\" && \"ml\" in auth.groups"
        );
        assert_eq!(
            cel("[{selector: context.request.http.path, operator: matches, value: '^/v2/.*'}]")
                .unwrap(),
            "request.path.matches(\"^/v2/.*\")"
        );
        assert_eq!(
            cel("[{selector: request.headers.X-Team, operator: neq, value: a}]").unwrap(),
            "request.headers[\"x-team\"][0] != \"a\""
        );
        assert_eq!(
            cel("[{selector: auth.identity.email_verified, operator: eq, value: 'true'}]").unwrap(),
            "auth.claims.email_verified == \"true\""
        );
    }

    #[test]
    fn all_and_any_nest() {
        assert_eq!(
            cel("[{any: [{selector: auth.identity.sub, operator: eq, value: a}, {selector: auth.identity.sub, operator: eq, value: 'b\"'}]}]").unwrap(),
            "(auth.subject == \"a\" || auth.subject == \"b\\\"\")"
        );
    }

    #[test]
    fn untranslatable_patterns_are_errors() {
        assert!(cel("[{patternRef: admins}]").is_err());
        assert!(cel("[{predicate: 'true'}]").is_err());
        assert!(cel("[{selector: 'metadata.x|@case:upper', operator: eq, value: a}]").is_err());
        assert!(cel("[{selector: request.method, operator: gt, value: a}]").is_err());
    }
}
