//! The wire format against hand-written messages: request heads, response
//! heads (framing, keep-alive, 1xx, limits), chunked bodies split anywhere.

use super::*;

fn head_bytes(method: Method, pq: &str, headers: &[(&str, &str)], sending: Sending) -> String {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let host = HeaderValue::from_static("up:8080");
    let inject = [(
        HeaderName::from_static("authorization"),
        HeaderValue::from_static("Bearer master"),
    )];
    let mut buf = Vec::new();
    Head {
        method: &method,
        path_and_query: pq,
        host: &host,
        headers: &map,
        inject: &inject,
    }
    .encode(sending, &mut buf);
    String::from_utf8(buf).unwrap()
}

#[test]
fn request_head_replaces_host_framing_and_injected_names() {
    let got = head_bytes(
        Method::POST,
        "/v2/models/m/infer?x=1",
        &[
            ("host", "client.example"),
            ("authorization", "Bearer client"),
            ("content-type", "application/json"),
            ("content-length", "999"),
            ("transfer-encoding", "chunked"),
            ("x-a", "1"),
            ("x-a", "2"),
        ],
        Sending::Length(7),
    );
    assert_eq!(
        got,
        "POST /v2/models/m/infer?x=1 HTTP/1.1\r\nhost: up:8080\r\ncontent-type: application/json\r\n\
         x-a: 1\r\nx-a: 2\r\nauthorization: Bearer master\r\ncontent-length: 7\r\n\r\n"
    );
}

#[test]
fn request_framing_follows_the_body() {
    let get = head_bytes(Method::GET, "/", &[], Sending::Nothing);
    assert!(!get.contains("content-length") && !get.contains("transfer-encoding"));
    let post = head_bytes(Method::POST, "/", &[], Sending::Nothing);
    assert!(post.contains("content-length: 0\r\n"));
    let chunked = head_bytes(Method::POST, "/", &[], Sending::Chunked);
    assert!(chunked.ends_with("transfer-encoding: chunked\r\n\r\n"));

    let map = HeaderMap::new();
    let host = HeaderValue::from_static("h");
    let head = Head {
        method: &Method::POST,
        path_and_query: "/",
        host: &host,
        headers: &map,
        inject: &[],
    };
    assert_eq!(
        head.sending(&SizeHint::with_exact(0), true),
        Sending::Nothing
    );
    assert_eq!(
        head.sending(&SizeHint::with_exact(5), false),
        Sending::Length(5)
    );
    assert_eq!(head.sending(&SizeHint::new(), false), Sending::Chunked);
    let mut with_len = HeaderMap::new();
    with_len.insert(CONTENT_LENGTH, HeaderValue::from_static("12"));
    let head = Head {
        headers: &with_len,
        ..head
    };
    assert_eq!(head.sending(&SizeHint::new(), false), Sending::Length(12));
}

#[test]
fn request_target_with_spaces_or_controls_is_refused() {
    let map = HeaderMap::new();
    let host = HeaderValue::from_static("h");
    for pq in ["", "x", "/a b", "/a\r\nx: y", "/\x7f"] {
        let r = Head {
            method: &Method::GET,
            path_and_query: pq,
            host: &host,
            headers: &map,
            inject: &[],
        }
        .check_target();
        assert!(r.is_err(), "{pq:?}");
    }
}

#[test]
fn numbers_are_written_like_fmt() {
    for n in [0u64, 7, 10, 4096, 1 << 40, u64::MAX] {
        let mut d = Vec::new();
        push_decimal(&mut d, n);
        assert_eq!(d, n.to_string().as_bytes());
        let Ok(u) = usize::try_from(n) else { continue };
        let mut h = Vec::new();
        push_chunk_size(&mut h, u);
        assert_eq!(h, format!("{u:x}\r\n").as_bytes());
    }
}

fn parse(raw: &[u8], head: bool) -> Result<Option<ResponseHead>, WireError> {
    let mut buf = BytesMut::from(raw);
    parse_response(&mut buf, head)
}

#[test]
fn response_head_framing_and_keep_alive() {
    let h = parse(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.framing, Framing::Length(5));
    assert!(h.keep_alive);
    assert_eq!(h.headers["x-a"], "b");

    let h = parse(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(h.framing, Framing::Chunked);
    let h = parse(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(h.framing, Framing::Close);
    assert!(!h.keep_alive);

    let h = parse(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert!(!h.keep_alive);
    let h = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false)
        .unwrap()
        .unwrap();
    assert!(!h.keep_alive);
    let h = parse(
        b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert!(h.keep_alive && h.version == Version::HTTP_10);

    let h = parse(b"HTTP/1.1 200 OK\r\n\r\n", false).unwrap().unwrap();
    assert_eq!(h.framing, Framing::Close);
    assert!(!h.keep_alive);

    for raw in [
        &b"HTTP/1.1 204 No Content\r\n\r\n"[..],
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
    ] {
        assert_eq!(parse(raw, false).unwrap().unwrap().framing, Framing::Empty);
    }
    let h = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true)
        .unwrap()
        .unwrap();
    assert_eq!(h.framing, Framing::Empty);
    assert_eq!(h.headers["content-length"], "10");
}

#[test]
fn connection_and_keep_alive_fields_are_left_out_unless_connection_names_others() {
    // The usual `Connection: keep-alive` (and `Keep-Alive`) never reach the map.
    let h = parse(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-A: b\r\nContent-Length: 0\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert!(h.keep_alive);
    let names: Vec<&str> = h.headers.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["x-a", "content-length"]);
    let h = parse(
        b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert!(!h.keep_alive && !h.headers.contains_key("connection"));
    // A Connection naming other fields stays, so that they are removed too.
    let raw = b"HTTP/1.1 200 OK\r\nX-Secret: 1\r\nConnection: keep-alive, x-secret\r\nContent-Length: 0\r\n\r\n";
    let mut h = parse(raw, false).unwrap().unwrap();
    assert!(h.keep_alive);
    assert_eq!(h.headers["connection"], "keep-alive, x-secret");
    crate::headers::remove_hop_by_hop(&mut h.headers);
    let names: Vec<&str> = h.headers.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["content-length"]);
}

/// The fields of answer `raw` as `name=value`, parsed with a connection's
/// kept `names`.
fn fields_with(raw: &[u8], names: &mut Names) -> Vec<String> {
    let mut buf = BytesMut::from(raw);
    let h = parse_response_with(&mut buf, false, names)
        .unwrap()
        .unwrap();
    h.headers
        .iter()
        .map(|(k, v)| format!("{k}={}", v.to_str().unwrap()))
        .collect()
}

#[test]
fn names_kept_from_the_previous_answer_give_the_same_fields() {
    let mut names = Names::default();
    let mut fields = |raw: &[u8]| fields_with(raw, &mut names);
    let first = fields(b"HTTP/1.1 200 OK\r\nServer: a\r\nX-Custom: b\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(first, ["server=a", "x-custom=b", "content-length=0"]);
    // Same names in other spellings, another name in between, one more.
    let second = fields(
        b"HTTP/1.1 200 OK\r\nSERVER: c\r\nX-Other: d\r\nx-custom: e\r\nContent-Length: 0\r\nX-Z: f\r\n\r\n",
    );
    assert_eq!(
        second,
        [
            "server=c",
            "x-other=d",
            "x-custom=e",
            "content-length=0",
            "x-z=f"
        ]
    );
    // A name that only starts like the kept one is not taken for it.
    let third = fields(b"HTTP/1.1 200 OK\r\nServe: g\r\nX-Othe: h\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(third, ["serve=g", "x-othe=h", "content-length=0"]);
    // More fields than are kept.
    let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..40 {
        raw.extend_from_slice(format!("X-F{i}: {i}\r\n").as_bytes());
    }
    raw.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    for _ in 0..2 {
        let got = fields(&raw);
        assert_eq!(got.len(), 41);
        assert_eq!(got[39], "x-f39=39");
    }
}

#[test]
fn both_delimiters_use_chunked_and_close_after() {
    let h = parse(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(h.framing, Framing::Chunked);
    assert!(!h.keep_alive);
}

#[test]
fn bad_content_lengths_are_refused() {
    for raw in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n",
    ] {
        assert!(
            parse(raw, false).is_err(),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
    let h = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n", false)
        .unwrap()
        .unwrap();
    assert_eq!(h.framing, Framing::Length(3));
}

#[test]
fn interim_answers_are_skipped_and_partial_heads_wait() {
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"[..],
    );
    let h = parse_response(&mut buf, false).unwrap().unwrap();
    assert_eq!(h.status, StatusCode::CREATED);
    assert_eq!(&buf[..], b"ok");

    let full = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Long: abcdef\r\n\r\nok";
    for cut in 0..full.len() - 2 {
        let mut buf = BytesMut::from(&full[..cut]);
        assert!(
            parse_response(&mut buf, false).unwrap().is_none(),
            "cut at {cut}"
        );
        assert_eq!(buf.len(), cut, "nothing consumed while partial");
    }
    assert!(parse(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", false).is_err());
}

#[test]
fn oversized_and_malformed_heads_fail_cleanly() {
    let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
    while big.len() < MAX_HEAD + 10 {
        big.extend_from_slice(b"x-filler: ");
        big.extend_from_slice(&[b'v'; 2000]);
        big.extend_from_slice(b"\r\n");
    }
    assert_eq!(
        parse(&big, false).unwrap_err(),
        WireError("response head larger than 64 KiB")
    );
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        many.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert!(parse(&many, false).is_err());
    for raw in [
        &b"HTTP/1.1 2000 OK\r\n\r\n"[..],
        b"HTTP/2 200 OK\r\n\r\n",
        b"hello world\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx: a\x00b\r\n\r\n",
    ] {
        assert!(
            parse(raw, false).is_err(),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
}

/// Decodes `raw` fed in pieces of `step` bytes.
fn dechunk(raw: &[u8], step: usize) -> Result<(Vec<u8>, Option<HeaderMap>), WireError> {
    let mut c = Chunked::new();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut trailers = None;
    let mut fed = 0;
    loop {
        match c.decode(&mut buf)? {
            Decoded::Data(d) => body.extend_from_slice(&d),
            Decoded::Trailers(t) => trailers = Some(t),
            Decoded::End => return Ok((body, trailers)),
            Decoded::More => {
                if fed >= raw.len() {
                    return Err(WireError("test: input ended"));
                }
                let to = (fed + step).min(raw.len());
                buf.extend_from_slice(&raw[fed..to]);
                fed = to;
            }
        }
    }
}

#[test]
fn chunked_bodies_decode_whatever_the_split() {
    let raw = b"5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n";
    for step in 1..=raw.len() {
        let (body, trailers) = dechunk(raw, step).unwrap();
        assert_eq!(body, b"hello 0123456789", "step {step}");
        assert!(trailers.is_none());
    }
    let raw = b"3\r\nabc\r\n0\r\nGrpc-Status: 0\r\nX-T: 1\r\n\r\n";
    for step in 1..=raw.len() {
        let (body, trailers) = dechunk(raw, step).unwrap();
        assert_eq!(body, b"abc");
        let t = trailers.unwrap();
        assert_eq!(t["grpc-status"], "0");
        assert_eq!(t["x-t"], "1");
    }
}

#[test]
fn bad_chunks_fail_cleanly() {
    for raw in [
        &b"g\r\nabc\r\n0\r\n\r\n"[..],
        b"3\r\nabcd\r\n0\r\n\r\n",
        b"3\r\nabc\rx0\r\n\r\n",
        b"ffffffffffffffff\r\n",
        b"\r\n",
        b"3 x\r\nabc\r\n0\r\n\r\n",
        b"0\r\nbad trailer\r\n\r\n",
    ] {
        assert!(dechunk(raw, 3).is_err(), "{}", String::from_utf8_lossy(raw));
    }
    let long = vec![b'0'; MAX_CHUNK_LINE + 1];
    assert_eq!(
        dechunk(&long, 1024).unwrap_err(),
        WireError("chunk-size line too long")
    );
}

#[test]
fn values_kept_from_the_previous_answer_give_the_same_fields() {
    let mut names = Names::default();
    let mut fields = |raw: &[u8]| fields_with(raw, &mut names);
    let long = "v".repeat(100);
    let answer = |date: &str, length: &str, long: &str| {
        format!(
            "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: {date}\r\nX-Long: {long}\r\nContent-Length: {length}\r\n\r\n"
        )
    };
    // The same values, then one that changes every time, then one that comes
    // back after a change: every answer reads as it was sent.
    let rounds = [
        ("d1", "0", long.as_str()),
        ("d1", "0", long.as_str()),
        ("d2", "0", "w"),
        ("d3", "0", long.as_str()),
        ("d3", "0", "w"),
        ("d1", "0", "w"),
    ];
    for (date, length, x) in rounds {
        assert_eq!(
            fields(answer(date, length, x).as_bytes()),
            [
                "server=nginx".to_string(),
                format!("date={date}"),
                format!("x-long={x}"),
                format!("content-length={length}"),
            ]
        );
    }
    // A value that held for a while and then changed (a date at the next
    // second) is taken anew each time, on a fresh connection's names too.
    let mut fresh = Names::default();
    for date in ["s1", "s1", "s2", "s2", "s2", "s3", "s4", "s4"] {
        let raw = format!("HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Length: 0\r\n\r\n");
        let mut buf = BytesMut::from(raw.as_bytes());
        let h = parse_response_with(&mut buf, false, &mut fresh)
            .unwrap()
            .unwrap();
        assert_eq!(h.headers["date"], date);
    }
    // A name that changes case keeps its value right too.
    assert_eq!(
        fields(b"HTTP/1.1 200 OK\r\nSERVER: nginx\r\nDate: d1\r\n\r\n"),
        ["server=nginx", "date=d1"]
    );
    assert_eq!(
        fields(b"HTTP/1.1 200 OK\r\nserver: other\r\nDate: d1\r\n\r\n"),
        ["server=other", "date=d1"]
    );
}

#[test]
fn a_kept_value_does_not_hold_the_read_buffer() {
    let mut names = Names::default();
    for _ in 0..3 {
        let mut buf = BytesMut::with_capacity(256);
        let base = buf.as_ptr();
        buf.extend_from_slice(b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 0\r\n\r\n");
        let h = parse_response_with(&mut buf, false, &mut names)
            .unwrap()
            .unwrap();
        drop(h);
        // Nothing else shares the buffer, so asking for more than is left
        // after the head reuses its front (a shared one would be copied to a
        // new allocation): a kept value is a copy, not a view of it.
        assert!(buf.is_empty() && buf.capacity() < 240);
        buf.reserve(240);
        assert_eq!(buf.as_ptr(), base);
    }
}

#[test]
fn a_value_that_comes_twice_in_a_row_is_kept_until_it_changes() {
    let mut names = Names::default();
    // (date, whether the answer's value is a view of the read buffer).
    let rounds = [
        ("s1", true),  // first seen: not kept
        ("s1", false), // twice in a row: kept from now on
        ("s1", false),
        ("s2", true), // changed: read from the answer again
        ("s3", true),
        ("s3", false),
        ("s1", true),
    ];
    for (date, view) in rounds {
        let raw = format!("HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Length: 0\r\n\r\n");
        let mut buf = BytesMut::from(raw.as_bytes());
        let (lo, hi) = (buf.as_ptr() as usize, buf.as_ptr() as usize + buf.len());
        let h = parse_response_with(&mut buf, false, &mut names)
            .unwrap()
            .unwrap();
        assert_eq!(h.headers["date"], date);
        let at = h.headers["date"].as_bytes().as_ptr() as usize;
        assert_eq!((lo..hi).contains(&at), view, "{date}");
    }
}
