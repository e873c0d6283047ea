//! The pool against a real hyper HTTP/1 server: reuse, release at the end
//! of a body (sized and chunked), no reuse after an early drop or a
//! `Connection: close`, and connect failures.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::header::{CONNECTION, HOST};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::service::service_fn;
use modelgate_core::full;
use tokio::net::TcpListener;

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

fn get(path: &str, host: &Authority) -> Request<BoxBody> {
    let mut r = Request::new(full(""));
    *r.uri_mut() = path.parse().unwrap();
    r.headers_mut().insert(HOST, host.as_str().parse().unwrap());
    r
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
        let resp = send_ok(pool.send(get(path, &auth)).await);
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
    let a = send_ok(pool.send(get("/a", &auth)).await);
    let b = send_ok(pool.send(get("/b", &auth)).await);
    assert_eq!(text(a).await, "ok /a");
    assert_eq!(text(b).await, "ok /b");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    assert_eq!(pool.idle_count(worker::current_slot()), 2);
    assert_eq!(
        text(send_ok(pool.send(get("/c", &auth)).await)).await,
        "ok /c"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_body_dropped_early_closes_its_connection() {
    let (auth, accepted) = upstream().await;
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    let mut resp = send_ok(pool.send(get("/big", &auth)).await);
    let first = resp.body_mut().frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(resp);
    assert_eq!(pool.idle_count(worker::current_slot()), 0);
    assert_eq!(
        text(send_ok(pool.send(get("/x", &auth)).await)).await,
        "ok /x"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connection_close_is_not_reused() {
    let (auth, accepted) = upstream().await;
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    assert_eq!(
        text(send_ok(pool.send(get("/close", &auth)).await)).await,
        "bye"
    );
    assert_eq!(
        text(send_ok(pool.send(get("/y", &auth)).await)).await,
        "ok /y"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_failure() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let auth: Authority = l.local_addr().unwrap().to_string().parse().unwrap();
    drop(l);
    let pool = H1Pool::new(&auth, Duration::from_secs(1));
    let err = pool.send(get("/", &auth)).await.err().unwrap();
    assert!(err.connect);
}
