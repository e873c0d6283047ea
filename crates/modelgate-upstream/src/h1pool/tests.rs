//! The pool against a real hyper HTTP/1 server: reuse, release at the end
//! of a body (sized and chunked), no reuse after an early drop or a
//! `Connection: close`, and connect failures.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::header::CONNECTION;
use http::{HeaderMap, HeaderValue, Request};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::service::service_fn;
use modelgate_core::full;
use tokio::net::TcpListener;

use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;

use super::*;

/// An upstream counting the connections it accepted.
async fn upstream() -> (Authority, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = l.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<Incoming>| async move {
                    let path = req.uri().path().to_owned();
                    let resp: Response<BoxBody> = match path.as_str() {
                        "/chunked" => {
                            let chunks = futures_util::stream::iter(
                                ["a", "b", "c"]
                                    .map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from(c)))),
                            );
                            Response::new(StreamBody::new(chunks).boxed_unsync())
                        }
                        "/echo" => {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            Response::new(full(body))
                        }
                        "/close" => {
                            let mut r = Response::new(full("bye"));
                            r.headers_mut().insert(CONNECTION, "close".parse().unwrap());
                            r
                        }
                        "/big" => Response::new(
                            Full::new(Bytes::from(vec![b'x'; 1 << 20]))
                                .map_err(|e| -> BoxError { match e {} })
                                .boxed_unsync(),
                        ),
                        _ => Response::new(full(format!("ok {path}"))),
                    };
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr.to_string().parse().unwrap(), accepted)
}

/// Sends `method path` with `body` through `pool`.
async fn send_with(
    pool: &Arc<H1Pool>,
    method: Method,
    path: &str,
    host: &Authority,
    body: BoxBody,
) -> Result<Response<BoxBody>, Failure> {
    let host = HeaderValue::from_str(host.as_str()).unwrap();
    let headers = HeaderMap::new();
    let head = Head {
        method: &method,
        path_and_query: path,
        host: &host,
        headers: &headers,
        inject: &[],
    };
    pool.send(head, body, Duration::from_secs(10)).await
}

async fn get(
    pool: &Arc<H1Pool>,
    path: &str,
    host: &Authority,
) -> Result<Response<BoxBody>, Failure> {
    send_with(pool, Method::GET, path, host, empty()).await
}

async fn text(resp: Response<BoxBody>) -> String {
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(b.to_vec()).unwrap()
}

fn send_ok(r: Result<Response<BoxBody>, Failure>) -> Response<BoxBody> {
    match r {
        Ok(r) => r,
        Err(f) => panic!("send failed (connect: {}): {}", f.connect, f.error),
    }
}

#[tokio::test]
async fn sequential_requests_share_one_connection() {
    let (auth, accepted) = upstream().await;
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    for i in 0..5 {
        let path = if i % 2 == 0 { "/sized" } else { "/chunked" };
        let resp = send_ok(get(&pool, path, &auth).await);
        let want = if i % 2 == 0 { "ok /sized" } else { "abc" };
        assert_eq!(text(resp).await, want);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(pool.idle_count(worker::current_slot()), 1);
}

#[tokio::test]
async fn concurrent_requests_open_separate_connections_then_pool_them() {
    let (auth, accepted) = upstream().await;
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    // `a`'s body is still being read: `b` needs a connection of its own.
    let a = send_ok(get(&pool, "/big", &auth).await);
    let b = send_ok(get(&pool, "/b", &auth).await);
    assert_eq!(text(a).await.len(), 1 << 20);
    assert_eq!(text(b).await, "ok /b");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    assert_eq!(pool.idle_count(worker::current_slot()), 2);
    assert_eq!(text(send_ok(get(&pool, "/c", &auth).await)).await, "ok /c");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_answer_read_with_its_head_frees_the_connection_at_once() {
    let (auth, accepted) = upstream().await;
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    // Both answers are whole when their heads arrive: the second request
    // reuses the first one's connection before that body is read.
    let a = send_ok(get(&pool, "/a", &auth).await);
    let b = send_ok(get(&pool, "/b", &auth).await);
    assert_eq!(text(a).await, "ok /a");
    assert_eq!(text(b).await, "ok /b");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_dropped_early_closes_its_connection() {
    let (auth, accepted) = upstream().await;
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    let mut resp = send_ok(get(&pool, "/big", &auth).await);
    let first = resp.body_mut().frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(resp);
    assert_eq!(pool.idle_count(worker::current_slot()), 0);
    assert_eq!(text(send_ok(get(&pool, "/x", &auth).await)).await, "ok /x");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connection_close_is_not_reused() {
    let (auth, accepted) = upstream().await;
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    assert_eq!(
        text(send_ok(get(&pool, "/close", &auth).await)).await,
        "bye"
    );
    assert_eq!(text(send_ok(get(&pool, "/y", &auth).await)).await, "ok /y");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_failure() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let auth: Authority = l.local_addr().unwrap().to_string().parse().unwrap();
    drop(l);
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    let err = get(&pool, "/", &auth).await.err().unwrap();
    assert!(err.connect);
}

#[tokio::test]
async fn request_bodies_go_out_sized_or_chunked() {
    let (auth, accepted) = upstream().await;
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    let sized = send_with(&pool, Method::POST, "/echo", &auth, full("hello")).await;
    assert_eq!(text(send_ok(sized)).await, "hello");
    // A body of unknown length, arriving in parts: chunked.
    let parts = futures_util::stream::iter(
        ["ab", "", "cd", "e"].map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from(c)))),
    );
    let streamed = StreamBody::new(parts).boxed_unsync();
    assert!(streamed.size_hint().exact().is_none());
    let chunked = send_with(&pool, Method::POST, "/echo", &auth, streamed).await;
    assert_eq!(text(send_ok(chunked)).await, "abcde");
    let big = Bytes::from(vec![b'y'; 200_000]);
    let resp = send_with(&pool, Method::PUT, "/echo", &auth, full(big.clone())).await;
    assert_eq!(text(send_ok(resp)).await.len(), big.len());
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failing_request_body_is_the_clients_failure() {
    let (auth, _) = upstream().await;
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    let parts = futures_util::stream::iter([
        Ok::<_, BoxError>(Frame::data(Bytes::from("ab"))),
        Err("client went away".into()),
    ]);
    let err = send_with(
        &pool,
        Method::POST,
        "/echo",
        &auth,
        StreamBody::new(parts).boxed_unsync(),
    )
    .await
    .err()
    .unwrap();
    assert!(err.body && !err.connect);
    assert_eq!(pool.idle_count(worker::current_slot()), 0);
}

/// `POST /echo` with a `Content-Length` of `declared` and `body`.
async fn send_declared(
    pool: &Arc<H1Pool>,
    auth: &Authority,
    declared: u64,
    body: BoxBody,
) -> Result<Response<BoxBody>, Failure> {
    let host = HeaderValue::from_str(auth.as_str()).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(declared));
    let head = Head {
        method: &Method::POST,
        path_and_query: "/echo",
        host: &host,
        headers: &headers,
        inject: &[],
    };
    pool.send(head, body, Duration::from_secs(2)).await
}

#[tokio::test]
async fn a_body_whose_declared_length_came_first_is_not_polled_again() {
    use futures_util::StreamExt;
    let (auth, _) = upstream().await;
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    // After its declared bytes the body would never end (and never fail):
    // the answer comes anyway, so it was not waited for.
    let parts = futures_util::stream::iter([Ok::<_, BoxError>(Frame::data(Bytes::from("ab")))])
        .chain(futures_util::stream::pending());
    let resp = send_declared(&pool, &auth, 2, StreamBody::new(parts).boxed_unsync()).await;
    assert_eq!(text(send_ok(resp)).await, "ab");
    // More bytes than declared: refused before anything is written.
    let err = send_declared(&pool, &auth, 2, full("abc"))
        .await
        .err()
        .unwrap();
    assert!(err.body && !err.connect);
    // Fewer, and the body ends: refused too.
    let err = send_declared(&pool, &auth, 3, full("ab"))
        .await
        .err()
        .unwrap();
    assert!(err.body && !err.connect);
}

/// A raw upstream answering every request on a connection with `answer`
/// (then closing if `close`), recording what it read.
async fn raw_upstream(answer: &'static [u8], close: bool) -> Authority {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                loop {
                    let n = tcp.read(&mut tmp).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        buf.clear();
                        if tcp.write_all(answer).await.is_err() || close {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr.to_string().parse().unwrap()
}

#[tokio::test]
async fn chunked_trailers_arrive_as_a_trailers_frame() {
    let auth = raw_upstream(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Checksum: 42\r\n\r\n",
        false,
    )
    .await;
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    let resp = send_ok(get(&pool, "/", &auth).await);
    let collected = resp.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["x-checksum"], "42");
    assert_eq!(collected.to_bytes(), "abc");
    assert_eq!(pool.idle_count(worker::current_slot()), 1);
}

#[tokio::test]
async fn a_body_until_close_is_read_whole_and_not_reused() {
    let auth = raw_upstream(b"HTTP/1.1 200 OK\r\n\r\nall of it", true).await;
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    let resp = send_ok(get(&pool, "/", &auth).await);
    assert_eq!(text(resp).await, "all of it");
    assert_eq!(pool.idle_count(worker::current_slot()), 0);
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_upstream_is_skipped() {
    // Keep-alive announced, then closed right after the answer.
    let auth = raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true).await;
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    assert_eq!(text(send_ok(get(&pool, "/", &auth).await)).await, "ok");
    assert_eq!(pool.idle_count(worker::current_slot()), 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(text(send_ok(get(&pool, "/", &auth).await)).await, "ok");
}

#[tokio::test]
async fn a_truncated_or_garbled_answer_fails_cleanly() {
    let auth = raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", true).await;
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    let resp = send_ok(get(&pool, "/", &auth).await);
    assert!(resp.into_body().collect().await.is_err());
    let auth = raw_upstream(b"SMTP ready\r\n\r\n", true).await;
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    let err = get(&pool, "/", &auth).await.err().unwrap();
    assert!(!err.connect && !err.body);
    assert!(err.error.to_string().contains("malformed"), "{}", err.error);
}

#[tokio::test]
async fn a_head_answer_has_no_body() {
    let auth = raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", false).await;
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    let resp = send_ok(send_with(&pool, Method::HEAD, "/", &auth, empty()).await);
    assert_eq!(resp.headers()["content-length"], "10");
    assert_eq!(text(resp).await, "");
    assert_eq!(pool.idle_count(worker::current_slot()), 1);
}

/// An upstream answering the first request on each connection, then
/// reading and never answering again.
async fn answers_once() -> Authority {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                let mut answered = false;
                loop {
                    let n = tcp.read(&mut tmp).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    if !answered && buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        answered = true;
                        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if tcp.write_all(ok).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr.to_string().parse().unwrap()
}

/// Sends a GET with `timeout`; returns the outcome and how long it took.
async fn timed_get(
    pool: &Arc<H1Pool>,
    auth: &Authority,
    timeout: Duration,
) -> (Result<Response<BoxBody>, Failure>, Duration) {
    let host = HeaderValue::from_str(auth.as_str()).unwrap();
    let headers = HeaderMap::new();
    let head = Head {
        method: &Method::GET,
        path_and_query: "/",
        host: &host,
        headers: &headers,
        inject: &[],
    };
    let started = std::time::Instant::now();
    let r = pool.send(head, empty(), timeout).await;
    (r, started.elapsed())
}

fn assert_timed_out(r: Result<Response<BoxBody>, Failure>, took: Duration) {
    match r {
        Ok(_) => panic!("answered, expected a timeout"),
        Err(f) => assert!(f.timed_out && !f.connect && !f.body, "{}", f.error),
    }
    assert!(
        took >= Duration::from_millis(100),
        "gave up early: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "waited too long: {took:?}");
}

#[tokio::test]
async fn an_answer_that_never_comes_times_out_at_the_deadline() {
    let auth = answers_once().await;
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    let timeout = Duration::from_millis(150);
    // Fresh connection: answered. Reused at once (its timer moved later): silent.
    let (r, _) = timed_get(&pool, &auth, timeout).await;
    assert_eq!(text(send_ok(r)).await, "ok");
    let (r, took) = timed_get(&pool, &auth, timeout).await;
    assert_timed_out(r, took);
    // A timed-out connection is not kept.
    assert_eq!(pool.idle_count(worker::current_slot()), 0);
}

#[tokio::test]
async fn a_reused_connection_whose_old_deadline_passed_gets_a_new_one() {
    let auth = answers_once().await;
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    let timeout = Duration::from_millis(150);
    let (r, _) = timed_get(&pool, &auth, timeout).await;
    assert_eq!(text(send_ok(r)).await, "ok");
    // The connection's timer fires while it is idle in the pool ...
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(pool.idle_count(worker::current_slot()), 1);
    // ... and is set again for the next exchange: neither an instant
    // timeout from the old deadline nor an unbounded wait.
    let (r, took) = timed_get(&pool, &auth, timeout).await;
    assert_timed_out(r, took);
}
