//! Recognising the inference protocols' paths. Only these shapes exist; every
//! other path is unknown and is never forwarded.

use http::Method;
use modelgate_core::{Operation, Protocol};

/// The gRPC service modelgate routes (OIP V2).
pub const GRPC_SERVICE: &str = "/inference.GRPCInferenceService/";

/// A recognised protocol path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPath<'a> {
    pub protocol: Protocol,
    pub operation: Operation,
    /// The model named in the path (unvalidated), if any.
    pub model: Option<&'a str>,
    pub version: Option<&'a str>,
    /// The model comes from the body (OpenAI JSON `model`, gRPC message).
    pub model_in_body: bool,
    /// The method the operation requires.
    pub method: Method,
}

fn p<'a>(
    protocol: Protocol,
    operation: Operation,
    method: Method,
    model: Option<&'a str>,
    version: Option<&'a str>,
) -> ParsedPath<'a> {
    ParsedPath {
        protocol,
        operation,
        model,
        version,
        model_in_body: false,
        method,
    }
}

/// Parses a normalised path. `grpc` says whether the request is gRPC
/// (`content-type: application/grpc…`). Returns `None` for unknown paths.
pub fn parse_protocol_path(path: &str, grpc: bool) -> Option<ParsedPath<'_>> {
    if grpc {
        return parse_grpc(path);
    }
    if let Some(rest) = path.strip_prefix("/v1/") {
        return parse_v1(rest);
    }
    if path == "/v2" || path == "/v2/" {
        return Some(p(
            Protocol::V2,
            Operation::ServerMetadata,
            Method::GET,
            None,
            None,
        ));
    }
    if let Some(rest) = path.strip_prefix("/v2/") {
        return parse_v2(rest);
    }
    None
}

fn parse_v1(rest: &str) -> Option<ParsedPath<'_>> {
    let body_model = |op| ParsedPath {
        model_in_body: true,
        ..p(Protocol::OpenAi, op, Method::POST, None, None)
    };
    match rest {
        "models" => {
            return Some(p(
                Protocol::V1,
                Operation::ListModels,
                Method::GET,
                None,
                None,
            ));
        }
        "completions" => return Some(body_model(Operation::Completions)),
        "chat/completions" => return Some(body_model(Operation::ChatCompletions)),
        "embeddings" => return Some(body_model(Operation::Embeddings)),
        _ => {}
    }
    let name = rest.strip_prefix("models/")?;
    if name.contains('/') {
        return None;
    }
    if let Some(m) = name.strip_suffix(":predict") {
        return Some(p(
            Protocol::V1,
            Operation::Infer,
            Method::POST,
            Some(m),
            None,
        ));
    }
    if let Some(m) = name.strip_suffix(":explain") {
        return Some(p(
            Protocol::V1,
            Operation::Explain,
            Method::POST,
            Some(m),
            None,
        ));
    }
    if name.contains(':') {
        return None;
    }
    Some(p(
        Protocol::V1,
        Operation::ModelReady,
        Method::GET,
        Some(name),
        None,
    ))
}

fn parse_v2(rest: &str) -> Option<ParsedPath<'_>> {
    match rest {
        "health/live" => {
            return Some(p(
                Protocol::V2,
                Operation::ServerLive,
                Method::GET,
                None,
                None,
            ));
        }
        "health/ready" => {
            return Some(p(
                Protocol::V2,
                Operation::ServerReady,
                Method::GET,
                None,
                None,
            ));
        }
        "models" => {
            return Some(p(
                Protocol::V2,
                Operation::ListModels,
                Method::GET,
                None,
                None,
            ));
        }
        _ => {}
    }
    let rest = rest.strip_prefix("models/")?;
    let segs: Vec<&str> = rest.split('/').collect();
    let (model, version, tail) = match segs.as_slice() {
        [m, "versions", v, tail @ ..] if !v.is_empty() => (*m, Some(*v), tail),
        [m, tail @ ..] => (*m, None, tail),
        [] => return None,
    };
    if model.is_empty() {
        return None;
    }
    let (op, method) = match tail {
        [] => (Operation::ModelMetadata, Method::GET),
        ["ready"] => (Operation::ModelReady, Method::GET),
        ["infer"] => (Operation::Infer, Method::POST),
        _ => return None,
    };
    Some(p(Protocol::V2, op, method, Some(model), version))
}

/// gRPC `:path` must be exactly `/inference.GRPCInferenceService/<Method>`.
fn parse_grpc(path: &str) -> Option<ParsedPath<'_>> {
    let method = path.strip_prefix(GRPC_SERVICE)?;
    let (op, in_body) = match method {
        "ServerLive" => (Operation::ServerLive, false),
        "ServerReady" => (Operation::ServerReady, false),
        "ServerMetadata" => (Operation::ServerMetadata, false),
        "ModelReady" => (Operation::ModelReady, true),
        "ModelMetadata" => (Operation::ModelMetadata, true),
        "ModelInfer" => (Operation::Infer, true),
        _ => return None,
    };
    Some(ParsedPath {
        model_in_body: in_body,
        ..p(Protocol::Grpc, op, Method::POST, None, None)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(path: &str) -> Option<(Protocol, Operation, Option<&str>, Option<&str>)> {
        parse_protocol_path(path, false).map(|p| (p.protocol, p.operation, p.model, p.version))
    }

    #[test]
    fn kserve_v1() {
        assert_eq!(
            parse("/v1/models/sklearn-iris:predict"),
            Some((Protocol::V1, Operation::Infer, Some("sklearn-iris"), None))
        );
        assert_eq!(
            parse("/v1/models/iris:explain"),
            Some((Protocol::V1, Operation::Explain, Some("iris"), None))
        );
        assert_eq!(
            parse("/v1/models/iris"),
            Some((Protocol::V1, Operation::ModelReady, Some("iris"), None))
        );
        assert_eq!(
            parse("/v1/models"),
            Some((Protocol::V1, Operation::ListModels, None, None))
        );
        assert_eq!(parse("/v1/models/iris:unload"), None);
        assert_eq!(parse("/v1/models/iris/x"), None);
    }

    #[test]
    fn oip_v2() {
        assert_eq!(
            parse("/v2"),
            Some((Protocol::V2, Operation::ServerMetadata, None, None))
        );
        assert_eq!(
            parse("/v2/health/live"),
            Some((Protocol::V2, Operation::ServerLive, None, None))
        );
        assert_eq!(
            parse("/v2/health/ready"),
            Some((Protocol::V2, Operation::ServerReady, None, None))
        );
        assert_eq!(
            parse("/v2/models/iris"),
            Some((Protocol::V2, Operation::ModelMetadata, Some("iris"), None))
        );
        assert_eq!(
            parse("/v2/models/iris/ready"),
            Some((Protocol::V2, Operation::ModelReady, Some("iris"), None))
        );
        assert_eq!(
            parse("/v2/models/iris/infer"),
            Some((Protocol::V2, Operation::Infer, Some("iris"), None))
        );
        assert_eq!(
            parse("/v2/models/iris/versions/1/infer"),
            Some((Protocol::V2, Operation::Infer, Some("iris"), Some("1")))
        );
        assert_eq!(
            parse("/v2/models/iris/versions/1"),
            Some((
                Protocol::V2,
                Operation::ModelMetadata,
                Some("iris"),
                Some("1")
            ))
        );
    }

    #[test]
    fn admin_and_side_routes_are_unknown() {
        for path in [
            "/v2/repository/models/iris/load",
            "/v2/repository/index",
            "/tokenize",
            "/invocations",
            "/metrics",
            "/v2/models/iris/infer/x",
            "/v2/models/iris/generate",
            "/v1/audio/transcriptions",
            "/reset_prefix_cache",
            "/V2/models/iris/infer",
            "/",
        ] {
            assert_eq!(parse(path), None, "{path}");
        }
    }

    #[test]
    fn openai_model_comes_from_body() {
        let parsed = parse_protocol_path("/v1/chat/completions", false).unwrap();
        assert_eq!(parsed.protocol, Protocol::OpenAi);
        assert!(parsed.model_in_body);
    }

    #[test]
    fn grpc_paths_must_be_canonical() {
        assert_eq!(
            parse_protocol_path("/inference.GRPCInferenceService/ModelInfer", true)
                .map(|p| p.operation),
            Some(Operation::Infer)
        );
        assert!(parse_protocol_path("inference.GRPCInferenceService/ModelInfer", true).is_none());
        assert!(
            parse_protocol_path("/inference.GRPCInferenceService/RepositoryModelLoad", true)
                .is_none()
        );
        assert!(
            parse_protocol_path("/inference.GRPCInferenceService/ModelStreamInfer", true).is_none()
        );
        assert!(parse_protocol_path("/v2/models/iris/infer", true).is_none());
    }
}
