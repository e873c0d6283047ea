//! Request bodies an attacker sends: the OpenAI body's `model` (read before
//! authorization), and V2 JSON, binary tensors and gRPC messages served by
//! the built-in runtime (through its public `Runtime::handle` and
//! `Runtime::handle_grpc`, on the example iris model).

use std::sync::OnceLock;

use http::HeaderMap;
use http_body_util::BodyExt;
use modelgate_core::{ModelName, Operation, Protocol, Reject, full};
use modelgate_runtime::{BuiltinCall, BuiltinModelSpec, Runtime, RuntimeSettings};

/// The OpenAI body's `model`: an answer is a non-empty string that the body
/// names (so JSON-decoding the body gives the same value), from UTF-8 only.
pub fn openai_model(data: &[u8]) {
    match modelgate_app::parsers::openai_model(data) {
        Ok(m) => {
            assert!(!m.is_empty());
            assert!(
                std::str::from_utf8(data).is_ok(),
                "accepted a body that is not UTF-8: {data:?}"
            );
            // serde_json's Value refuses lone surrogates that an ignored
            // field may carry (and Python's json accepts): compare only when it parses.
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
                assert_eq!(
                    v.get("model").and_then(|m| m.as_str()),
                    Some(m.as_str()),
                    "{data:?}"
                );
            }
        }
        Err(e) => assert!(matches!(e, Reject::BadRequest(_))),
    }
}

/// The gateway's gRPC first-message peek: an answer names a non-empty model,
/// comes from an uncompressed message within the limit, and stays the same
/// when more bytes follow; "incomplete" means the message is not all there.
pub fn grpc_peek(data: &[u8]) {
    const LIMIT: u64 = 4096;
    match modelgate_app::parsers::grpc_first_model(data, LIMIT) {
        Ok(Some(name)) => {
            assert!(!name.is_empty());
            assert_eq!(data.first(), Some(&0));
            let mut longer = data.to_vec();
            longer.extend_from_slice(b"\0\0\0\0\x05trail");
            assert_eq!(
                modelgate_app::parsers::grpc_first_model(&longer, LIMIT),
                Ok(Some(name)),
                "{data:?}"
            );
        }
        Ok(None) => {
            if let [0, a, b, c, d, rest @ ..] = data {
                let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
                assert!(rest.len() < len, "complete message left unread: {data:?}");
            } else {
                assert!(data.len() < 5, "{data:?}");
            }
        }
        Err(e) => assert!(matches!(
            e,
            Reject::BadRequest(_) | Reject::PayloadTooLarge { .. }
        )),
    }
}

fn world() -> Option<&'static (tokio::runtime::Runtime, Runtime)> {
    static W: OnceLock<Option<(tokio::runtime::Runtime, Runtime)>> = OnceLock::new();
    W.get_or_init(|| {
        let dir = crate::crate_dir().join("../examples/models/iris");
        let spec = BuiltinModelSpec::new(ModelName::parse("iris").ok()?, dir);
        let settings = RuntimeSettings {
            threads: 1,
            queue_depth: 16,
            max_body_bytes: 64 * 1024,
        };
        let rt = Runtime::start(vec![spec], settings).ok()?;
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        Some((tokio, rt))
    })
    .as_ref()
}

fn infer(protocol: Protocol) -> BuiltinCall {
    BuiltinCall {
        protocol,
        operation: Operation::Infer,
        model: ModelName::parse("iris").unwrap_or_else(|_| unreachable!()),
        version: None,
    }
}

/// A V2 (and V1) REST inference body: an answer or a client error, never a
/// panic or a server error. The first byte picks the V2 binary tensor
/// extension: then the next two give `inference-header-content-length`.
pub fn v2_rest(data: &[u8]) {
    let Some((tokio, rt)) = world() else {
        panic!("the iris example model did not load")
    };
    let mut headers = HeaderMap::new();
    let (protocol, body) = match data.split_first() {
        Some((b'B', rest)) if rest.len() >= 2 => {
            let n = u16::from_be_bytes([rest[0], rest[1]]);
            headers.insert("inference-header-content-length", n.into());
            (Protocol::V2, &rest[2..])
        }
        Some((b'1', rest)) => (Protocol::V1, rest),
        _ => (Protocol::V2, data),
    };
    let r = tokio.block_on(async {
        let resp = rt
            .handle(infer(protocol), &headers, full(body.to_vec()))
            .await?;
        let status = resp.status();
        let _ = resp.into_body().collect().await;
        Ok::<_, Reject>(status)
    });
    match r {
        Ok(s) => assert!(s.is_success(), "{s} for {data:?}"),
        Err(e) => assert!(
            matches!(
                e,
                Reject::BadRequest(_) | Reject::PayloadTooLarge { .. } | Reject::Unavailable { .. }
            ),
            "{e:?} for {data:?}"
        ),
    }
}

/// The hand-written V2 `/infer` reader: on any body it either declines or
/// reads exactly what the serde reader reads.
pub fn v2_reader(data: &[u8]) {
    if let Err(e) = modelgate_runtime::v2_readers_agree(data) {
        panic!("the V2 readers disagree on {:?}: {e}", String::from_utf8_lossy(data));
    }
}

/// A gRPC request to the runtime. The first byte picks the call (`% 4`:
/// 1 `ModelReady`, 2 `ModelMetadata`, else `ModelInfer`) and whether the rest
/// is one message to frame (high bit clear) or the raw body, frames and all.
pub fn grpc_body(data: &[u8]) {
    let Some((tokio, rt)) = world() else {
        panic!("the iris example model did not load")
    };
    let Some((&sel, msg)) = data.split_first() else {
        return;
    };
    let method = match sel % 4 {
        1 => "ModelReady",
        2 => "ModelMetadata",
        _ => "ModelInfer",
    };
    let mut body = Vec::with_capacity(msg.len() + 5);
    if sel & 0x80 != 0 {
        body.extend_from_slice(msg);
    } else {
        body.push(0);
        body.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(u32::MAX).to_be_bytes());
        body.extend_from_slice(msg);
    }
    let req = http::Request::post(format!("/inference.GRPCInferenceService/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(full(body));
    let Ok(req) = req else { return };
    tokio.block_on(async {
        let resp = rt.handle_grpc(req).await;
        assert_eq!(resp.status(), 200);
        let _ = resp.into_body().collect().await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(target: &str, name: &str) -> Vec<u8> {
        let p = crate::crate_dir().join("corpus").join(target).join(name);
        std::fs::read(p).unwrap()
    }

    /// The seeds reach inference (not only the parsers' refusals).
    #[test]
    fn rest_and_binary_seeds_are_answered() {
        let (tokio, rt) = world().unwrap();
        for (name, binary) in [("iris", false), ("binary", true)] {
            let data = seed("v2_rest", name);
            let mut headers = HeaderMap::new();
            let body = if binary {
                let n = u16::from_be_bytes([data[1], data[2]]);
                headers.insert("inference-header-content-length", n.into());
                data[3..].to_vec()
            } else {
                data
            };
            let resp = tokio.block_on(rt.handle(infer(Protocol::V2), &headers, full(body)));
            assert_eq!(
                resp.map(|r| r.status().as_u16())
                    .map_err(|e| format!("{e:?}")),
                Ok(200),
                "{name}"
            );
        }
    }

    #[test]
    fn grpc_infer_seed_is_answered() {
        let (tokio, rt) = world().unwrap();
        let data = seed("grpc_body", "infer");
        let mut body = vec![0];
        body.extend_from_slice(&u32::try_from(data.len() - 1).unwrap().to_be_bytes());
        body.extend_from_slice(&data[1..]);
        let req = http::Request::post("/inference.GRPCInferenceService/ModelInfer")
            .header("content-type", "application/grpc")
            .body(full(body))
            .unwrap();
        let resp = tokio.block_on(rt.handle_grpc(req));
        assert_eq!(
            resp.headers().get("grpc-status"),
            None,
            "{:?}",
            resp.headers()
        );
        let trailers = tokio
            .block_on(resp.into_body().collect())
            .ok()
            .and_then(|c| c.trailers().cloned());
        assert_eq!(
            trailers
                .and_then(|t| t.get("grpc-status").cloned())
                .as_ref()
                .map(|v| v.as_bytes()),
            Some(&b"0"[..])
        );
    }
}
