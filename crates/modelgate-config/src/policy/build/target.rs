//! `to.operation`: what the request asks for (hosts, ports, methods, paths,
//! models, protocols, operations), with Istio's path templates.

use super::*;

pub(super) fn target(raw: RawOperation, key: &str, c: &mut Collector) -> Target {
    let mut f = Vec::new();
    for (list, name, neg) in [
        (raw.hosts, "hosts", false),
        (raw.not_hosts, "notHosts", true),
    ] {
        let k = format!("{key}.{name}");
        let v = nonempty(list, &k, c).map(|l| {
            TargetField::Hosts(typed(
                l,
                &k,
                c,
                host_pattern,
                "write a host name, `*.example.com` or `*`",
            ))
        });
        field(&mut f, key, name, neg, v);
    }
    for (list, name, neg) in [
        (raw.ports, "ports", false),
        (raw.not_ports, "notPorts", true),
    ] {
        let k = format!("{key}.{name}");
        let v = nonempty(list, &k, c)
            .map(|l| TargetField::Ports(typed(l, &k, c, port, "write a port number such as 8080")));
        field(&mut f, key, name, neg, v);
    }
    for (list, name, neg) in [
        (raw.methods, "methods", false),
        (raw.not_methods, "notMethods", true),
    ] {
        let k = format!("{key}.{name}");
        let v = nonempty(list, &k, c).map(|l| {
            TargetField::Methods(typed(
                l,
                &k,
                c,
                method_pattern,
                "methods are upper-case (GET, POST); gRPC is always POST",
            ))
        });
        field(&mut f, key, name, neg, v);
    }
    for (list, name, neg) in [
        (raw.paths, "paths", false),
        (raw.not_paths, "notPaths", true),
    ] {
        let k = format!("{key}.{name}");
        let v = nonempty(list, &k, c).map(|l| TargetField::Paths(typed(l, &k, c, path_match, "write a normalised path: /exact, /prefix*, *suffix, * or a template such as /v2/models/{*}/infer")));
        field(&mut f, key, name, neg, v);
    }
    for (list, name, neg) in [
        (raw.models, "models", false),
        (raw.not_models, "notModels", true),
    ] {
        let k = format!("{key}.{name}");
        let v = nonempty(list, &k, c).map(|l| TargetField::Models(str_patterns(l, &k, c)));
        field(&mut f, key, name, neg, v);
    }
    for (list, name, neg) in [
        (raw.protocols, "protocols", false),
        (raw.not_protocols, "notProtocols", true),
    ] {
        let k = format!("{key}.{name}");
        let parse = |s: &str| Protocol::parse(s).ok_or_else(|| format!("unknown protocol {s:?}"));
        let v = nonempty(list, &k, c)
            .map(|l| TargetField::Protocols(typed(l, &k, c, parse, "use v1, v2, grpc or openai")));
        field(&mut f, key, name, neg, v);
    }
    for (list, name, neg) in [
        (raw.operations, "operations", false),
        (raw.not_operations, "notOperations", true),
    ] {
        let k = format!("{key}.{name}");
        let hint = format!(
            "use one of {}",
            OPERATIONS
                .iter()
                .map(|o| o.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let parse = |s: &str| {
            OPERATIONS
                .iter()
                .copied()
                .find(|o| o.as_str() == s)
                .ok_or_else(|| format!("unknown operation {s:?}"))
        };
        let v =
            nonempty(list, &k, c).map(|l| TargetField::Operations(typed(l, &k, c, parse, &hint)));
        field(&mut f, key, name, neg, v);
    }
    Target { fields: f }
}

/// Hosts compare lower-case with the port stripped (`Example.com:8080` → `example.com`).
pub(super) fn host_pattern(s: &str) -> Result<StrPattern, String> {
    let lower = s.to_ascii_lowercase();
    let bare = match lower.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && (p == "*" || p.bytes().all(|b| b.is_ascii_digit())) => {
            h.to_string()
        }
        _ => lower,
    };
    if bare.is_empty()
        || !bare.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'*' | b'[' | b']' | b':')
        })
    {
        return Err(format!("invalid host {s:?}"));
    }
    StrPattern::parse(&bare)
}

pub(super) fn method_pattern(s: &str) -> Result<StrPattern, String> {
    if s != "*" && !s.bytes().all(|b| b.is_ascii_uppercase() || b == b'*') {
        return Err(format!(
            "{s:?} never matches: modelgate refuses methods that are not upper-case"
        ));
    }
    StrPattern::parse(s)
}

/// A path pattern, checked to be in the normalised form requests are compared
/// in: a pattern no normalised path can match is an error, not a silent no-op.
pub(super) fn path_match(s: &str) -> Result<PathMatch, String> {
    if s.contains('{') || s.contains('}') {
        return path_template(s);
    }
    let p = StrPattern::parse(s)?;
    match &p {
        StrPattern::Any => {}
        StrPattern::Exact(l) => {
            crate::validate::canonical_path(l).map_err(|e| format!("{s:?} {e}"))?
        }
        // `/v2/*` keeps its trailing slash; `/v2/x*` may end mid-segment.
        StrPattern::Prefix(l) => {
            crate::validate::canonical_path(l).map_err(|e| format!("{s:?} {e}"))?;
        }
        StrPattern::Suffix(l) => {
            crate::validate::canonical_path(&format!("/x{l}")).map_err(|e| format!("{s:?} {e}"))?;
        }
    }
    Ok(PathMatch::Str(p))
}

/// An Envoy URI template as Istio checks it (`CheckValidPathTemplate`):
/// `{*}` and `{**}` stand alone as a segment, `{**}` is the last *operator*
/// (literals may follow it, as in `/store/{**}/cart`), and a trailing `/` is
/// kept as an empty last segment.
fn path_template(s: &str) -> Result<PathMatch, String> {
    let Some(rest) = s.strip_prefix('/') else {
        return Err(format!("{s:?}: a template must start with '/'"));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let mut segs = Vec::with_capacity(parts.len());
    let mut seen_rest = false;
    for (i, p) in parts.iter().enumerate() {
        segs.push(match *p {
            "{*}" | "{**}" if seen_rest => {
                return Err(format!(
                    "{s:?}: {{**}} must be the last operator (no {{*}} or {{**}} after it)"
                ));
            }
            "{*}" => TemplateSegment::One,
            "{**}" => {
                seen_rest = true;
                TemplateSegment::Rest
            }
            lit if lit.contains(['{', '}', '*']) => {
                return Err(format!(
                    "{s:?}: {{*}} and {{**}} must stand alone as a whole segment"
                ));
            }
            "" if i + 1 == parts.len() && i > 0 => TemplateSegment::Literal(String::new()),
            lit => {
                crate::validate::canonical_path(&format!("/{lit}"))
                    .map_err(|e| format!("{s:?} {e}"))?;
                if lit.is_empty() || lit == "." || lit == ".." {
                    return Err(format!("{s:?} has an empty or dot segment"));
                }
                TemplateSegment::Literal(lit.to_string())
            }
        });
    }
    Ok(PathMatch::Template(segs))
}
