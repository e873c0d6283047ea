//! Model aliases (`upstream.model`): the client's model name is replaced by
//! the upstream's in the V1/V2 path, the OpenAI JSON body and the gRPC
//! message's `model_name`, and put back in the answers: a non-streamed OpenAI
//! JSON answer, each SSE event of a stream ([`crate::sse_alias`]), a V2 REST
//! infer answer's `model_name` and a gRPC ModelInferResponse's `model_name`.
//! Every function here is pure and bounded by its input.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::Value;

/// Replaces the model segment of a V1/V2 path (`/v1/models/{m}:predict`,
/// `/v2/models/{m}/versions/1/infer`, `/v2/models/{m}/ready`, …). Other
/// paths come back unchanged.
pub fn rewrite_path(path: &str, upstream: &str) -> String {
    for prefix in ["/v1/models/", "/v2/models/"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            let end = rest.find(['/', ':']).unwrap_or(rest.len());
            if end == 0 {
                return path.to_string();
            }
            return format!("{prefix}{upstream}{}", &rest[end..]);
        }
    }
    path.to_string()
}

/// The OpenAI JSON body with its top-level `model` set to `upstream`,
/// serialized once. The body was already checked to be one JSON object
/// naming a model.
pub fn rewrite_json_model(body: &[u8], upstream: &str) -> Result<Bytes, String> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let obj = v.as_object_mut().ok_or("the body is not a JSON object")?;
    obj.insert("model".into(), Value::String(upstream.into()));
    serde_json::to_vec(&v)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// An OpenAI JSON answer whose `model` is `from` (or starts with `from`,
/// as providers add a date suffix) with `model` set back to `to`. `None`
/// when there is nothing to change or the body is not such JSON.
pub fn rewrite_response_model(body: &[u8], from: &str, to: &str) -> Option<Bytes> {
    rewrite_field(body, "model", |m| m.starts_with(from), to)
}

/// A V2 infer answer whose `model_name` is `from` with `model_name` set to
/// `to`. `None` when there is nothing to change or the body is not such JSON.
pub fn rewrite_v2_model_name(body: &[u8], from: &str, to: &str) -> Option<Bytes> {
    rewrite_field(body, "model_name", |m| m == from, to)
}

/// The JSON object `body` with its top-level string `key` set to `to`, when
/// `matches` accepts its current value.
fn rewrite_field(
    body: &[u8],
    key: &str,
    matches: impl Fn(&str) -> bool,
    to: &str,
) -> Option<Bytes> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object_mut()?;
    match obj.get(key) {
        Some(Value::String(m)) if matches(m) => {}
        _ => return None,
    }
    obj.insert(key.into(), Value::String(to.into()));
    serde_json::to_vec(&v).ok().map(Bytes::from)
}

/// Reads a protobuf varint at `buf[*at..]`, advancing `at`.
fn varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn put_varint(out: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// Rewrites every top-level field 1 (`model_name` of ModelInfer, ModelReady
/// and ModelMetadata requests) of one protobuf message to `name`, copying
/// every other field byte for byte. `None` if the message is malformed.
pub fn rewrite_message_name(msg: &[u8], name: &str) -> Option<BytesMut> {
    let mut out = BytesMut::with_capacity(msg.len() + name.len());
    let mut at = 0;
    while at < msg.len() {
        let start = at;
        let tag = varint(msg, &mut at)?;
        let field = tag >> 3;
        let end = match tag & 7 {
            0 => {
                varint(msg, &mut at)?;
                at
            }
            1 => at.checked_add(8)?,
            2 => {
                let len = usize::try_from(varint(msg, &mut at)?).ok()?;
                at.checked_add(len)?
            }
            5 => at.checked_add(4)?,
            _ => return None,
        };
        if end > msg.len() {
            return None;
        }
        if field == 1 && tag & 7 == 2 {
            out.put_u8(0x0a);
            put_varint(&mut out, name.len() as u64);
            out.put_slice(name.as_bytes());
        } else {
            out.put_slice(&msg[start..end]);
        }
        at = end;
    }
    Some(out)
}

/// Rewrites the first length-prefixed gRPC message at the start of `buf`
/// (which must hold it whole), keeping whatever follows. `None` if the
/// frame is compressed, incomplete or malformed.
pub fn rewrite_grpc_frame(buf: &[u8], name: &str) -> Option<Bytes> {
    let [0, a, b, c, d, rest @ ..] = buf else {
        return None;
    };
    let len = usize::try_from(u32::from_be_bytes([*a, *b, *c, *d])).ok()?;
    let msg = rest.get(..len)?;
    let new = rewrite_message_name(msg, name)?;
    let new_len = u32::try_from(new.len()).ok()?;
    let mut out = BytesMut::with_capacity(5 + new.len() + rest.len() - len);
    out.put_u8(0);
    out.put_u32(new_len);
    out.put_slice(&new);
    out.put_slice(&rest[len..]);
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_get_the_upstream_name() {
        assert_eq!(
            rewrite_path("/v1/models/iris-alias:predict", "iris"),
            "/v1/models/iris:predict"
        );
        assert_eq!(
            rewrite_path("/v2/models/iris-alias/versions/2/infer", "iris"),
            "/v2/models/iris/versions/2/infer"
        );
        assert_eq!(rewrite_path("/v2/models/a", "iris"), "/v2/models/iris");
        assert_eq!(rewrite_path("/v1/models/a", "iris"), "/v1/models/iris");
        assert_eq!(
            rewrite_path("/v1/chat/completions", "x"),
            "/v1/chat/completions"
        );
        assert_eq!(rewrite_path("/v2/models//ready", "x"), "/v2/models//ready");
    }

    #[test]
    fn json_model_is_replaced_and_the_rest_kept() {
        let out = rewrite_json_model(
            br#"{"model":"chat","messages":[{"role":"user"}],"n":1}"#,
            "gpt",
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "gpt");
        assert_eq!(v["messages"][0]["role"], "user");
        assert_eq!(v["n"], 1);
        assert!(rewrite_json_model(b"[1]", "gpt").is_err());
    }

    #[test]
    fn response_model_goes_back_to_the_client_name() {
        let out = rewrite_response_model(
            br#"{"model":"gpt-3.5-turbo-0125","id":"x"}"#,
            "gpt-3.5-turbo",
            "chat",
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (v["model"].as_str(), v["id"].as_str()),
            (Some("chat"), Some("x"))
        );
        assert!(rewrite_response_model(br#"{"model":"other"}"#, "gpt", "chat").is_none());
        assert!(rewrite_response_model(b"data: x", "gpt", "chat").is_none());
    }

    #[test]
    fn v2_model_name_goes_back_only_when_it_is_the_upstream_name() {
        let out = rewrite_v2_model_name(
            br#"{"model_name":"iris","id":"1","outputs":[{"name":"p","data":[1]}]}"#,
            "iris",
            "iris-alias",
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model_name"], "iris-alias");
        assert_eq!(v["outputs"][0]["data"][0], 1);
        assert!(rewrite_v2_model_name(br#"{"model_name":"iris-2"}"#, "iris", "x").is_none());
        assert!(rewrite_v2_model_name(br#"{"error":"x"}"#, "iris", "x").is_none());
    }

    fn framed(msg: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8];
        out.extend_from_slice(&u32::try_from(msg.len()).unwrap().to_be_bytes());
        out.extend_from_slice(msg);
        out
    }

    #[test]
    fn grpc_model_name_is_reencoded_and_the_rest_copied() {
        // model_name "iris-alias", model_version "1", then a second name
        // (last wins in protobuf: both are rewritten), a varint and a fixed32.
        let msg = b"\x0a\x0airis-alias\x12\x011\x0a\x01x\x18\x96\x01\x25\x01\x02\x03\x04";
        let mut buf = framed(msg);
        buf.extend_from_slice(b"tail");
        let out = rewrite_grpc_frame(&buf, "iris").unwrap();
        let want = framed(b"\x0a\x04iris\x12\x011\x0a\x04iris\x18\x96\x01\x25\x01\x02\x03\x04");
        assert_eq!(&out[..want.len()], &want[..]);
        assert_eq!(&out[want.len()..], b"tail");
    }

    #[test]
    fn malformed_grpc_frames_are_refused() {
        assert!(rewrite_grpc_frame(&framed(b"\x0a\x05ab"), "x").is_none());
        assert!(rewrite_grpc_frame(&framed(b"\x0b"), "x").is_none());
        let mut compressed = framed(b"\x0a\x01a");
        compressed[0] = 1;
        assert!(rewrite_grpc_frame(&compressed, "x").is_none());
        assert!(rewrite_grpc_frame(&[0, 0, 0, 0, 9, 1], "x").is_none());
    }
}
