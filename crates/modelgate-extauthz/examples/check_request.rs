//! Writes one gRPC-framed `CheckRequest` (as Envoy sends it for
//! `POST <path>` with `authorization: <value>`) to a file, for h2load:
//! `check_request OUT PATH AUTHORIZATION`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, path, auth] = args.as_slice() else {
        return Err("usage: check_request OUT PATH AUTHORIZATION".into());
    };
    let msg = modelgate_extauthz::bench_support::check_request(path, auth);
    let bytes = prost::Message::encode_to_vec(&msg);
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(bytes.len())?.to_be_bytes());
    framed.extend_from_slice(&bytes);
    std::fs::write(out, framed)?;
    Ok(())
}
