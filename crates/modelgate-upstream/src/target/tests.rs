use super::*;
use http::header::AUTHORIZATION;
use modelgate_config::upstream::{UpstreamExtras, UpstreamHeader};
use modelgate_core::{Secret, full};

fn target(urls: &[&str]) -> UpstreamTarget {
    let cfg = Upstream {
        endpoints: urls.iter().map(|u| u.parse().unwrap()).collect(),
        grpc: None,
        timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        host: None,
        http2: false,
        llm: Box::new(UpstreamExtras {
            headers: vec![UpstreamHeader {
                name: AUTHORIZATION,
                value: Secret::new("Bearer upstream-key"),
            }],
            retries: 1,
            ..UpstreamExtras::default()
        }),
    };
    UpstreamTarget::new(&cfg, "chat", &UpstreamMetrics::default()).unwrap()
}

#[test]
fn injected_headers_replace_the_clients_and_are_sensitive() {
    let t = target(&["http://127.0.0.1:9"]);
    let mut h = HeaderMap::new();
    h.append(AUTHORIZATION, HeaderValue::from_static("Bearer client"));
    h.append(AUTHORIZATION, HeaderValue::from_static("Bearer other"));
    let req = t
        .request(
            &t.rest[0],
            &Method::POST,
            "/v1/chat/completions",
            &h,
            full(""),
            false,
        )
        .unwrap();
    let v: Vec<_> = req.headers().get_all(AUTHORIZATION).iter().collect();
    assert_eq!(v, ["Bearer upstream-key"]);
    assert!(v[0].is_sensitive());
    assert_eq!(req.headers()[HOST], "127.0.0.1:9");
    // The general client's request is absolute-form; plain HTTP/1 goes
    // through the pool, which writes its own head (`h1pool::codec` tests).
    assert_eq!(req.uri(), "http://127.0.0.1:9/v1/chat/completions");
}

#[tokio::test]
async fn a_refused_connection_is_retried_on_the_next_endpoint() {
    // Two endpoints that refuse connections: both are tried (one retry),
    // both marked down, and the answer is 502 naming no secret.
    let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let urls = [
        format!("http://{}", a.local_addr().unwrap()),
        format!("http://{}", b.local_addr().unwrap()),
    ];
    drop((a, b));
    let t = target(&[&urls[0], &urls[1]]);
    let out = Outgoing {
        method: Method::POST,
        path_and_query: "/v1/chat/completions".into(),
        headers: HeaderMap::new(),
        body: RequestBody::Buffered(bytes::Bytes::from_static(b"{}")),
    };
    let err = t.forward(out, ForwardOpts::default()).await.err().unwrap();
    assert_eq!(err.1, "connect");
    assert!(!err.0.log_reason().contains("upstream-key"));
    assert!(!t.health.is_up(0) && !t.health.is_up(1));
    let attempts: u64 = (0..2)
        .map(|i| {
            t.metrics
                .attempts
                .get_or_create(&AttemptLabels {
                    model: t.model.clone(),
                    upstream: t.labels[i].clone(),
                    result: "connect",
                })
                .get()
        })
        .sum();
    assert_eq!(attempts, 2);
}
