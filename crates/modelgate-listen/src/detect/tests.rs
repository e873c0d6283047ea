//! HTTP/1 and HTTP/2 told apart from the first read, through [`crate::serve`]
//! on a real socket: whole and split first reads, and shutdown while reading.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use modelgate_config::Limits;
use modelgate_core::{BoxBody, full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::*;
use crate::conn::ConnInfo;
use crate::gate::{Gate, ListenStats};
use crate::serve::{Handler, ServeOptions, serve};

#[test]
fn the_preface_is_told_from_any_prefix() {
    assert_eq!(is_h2(H2_PREFACE), Some(true));
    assert_eq!(is_h2(&[H2_PREFACE, b"more"].concat()), Some(true));
    for n in 1..H2_PREFACE.len() {
        assert_eq!(is_h2(&H2_PREFACE[..n]), None, "{n} bytes");
    }
    assert_eq!(is_h2(b"GET / HTTP/1.1\r\n"), Some(false));
    assert_eq!(is_h2(b"PRX"), Some(false));
    assert_eq!(
        is_h2(b"POST /v1/models/x:predict HTTP/1.1\r\n"),
        Some(false)
    );
}

/// Answers with the request's HTTP version and path.
struct Echo;

impl Handler for Echo {
    fn handle(
        &self,
        req: Request<Incoming>,
        _: Arc<ConnInfo>,
    ) -> impl Future<Output = Response<BoxBody>> + Send {
        let text = format!("{:?} {}", req.version(), req.uri().path());
        async move { Response::new(full(text)) }
    }
}

async fn start(http2: bool) -> (SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = ServeOptions {
        listener: 0,
        http2,
        header_read_timeout: Duration::from_secs(5),
        drain_timeout: Duration::from_secs(1),
        limits: Limits::default(),
        tls: None,
        gate: Gate::new(0, 100, &ListenStats::default()),
    };
    let (stop, rx) = watch::channel(false);
    tokio::spawn(serve(listener, opts, Arc::new(Echo), rx));
    (addr, stop)
}

/// Sends `parts` of an HTTP/1.1 request 50 ms apart; returns the whole answer.
async fn h1(addr: SocketAddr, parts: &[&[u8]]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tcp.write_all(part).await.unwrap();
    }
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(out).unwrap()
}

const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn http1_requests_whole_or_split_are_served() {
    for http2 in [true, false] {
        let (addr, _stop) = start(http2).await;
        for parts in [
            &[GET][..],
            &[&GET[..1], &GET[1..]],
            &[&GET[..3], &GET[3..20], &GET[20..]],
        ] {
            let answer = h1(addr, parts).await;
            assert!(
                answer.starts_with("HTTP/1.1 200"),
                "http2 {http2}: {answer}"
            );
            assert!(answer.ends_with("HTTP/1.1 /a"), "http2 {http2}: {answer}");
        }
    }
}

#[tokio::test]
async fn a_head_larger_than_the_first_read_is_served() {
    let (addr, _stop) = start(true).await;
    let filler = "x".repeat(3 * FIRST_READ);
    let req =
        format!("GET /big HTTP/1.1\r\nHost: x\r\nX-Filler: {filler}\r\nConnection: close\r\n\r\n");
    let answer = h1(addr, &[req.as_bytes()]).await;
    assert!(answer.ends_with("HTTP/1.1 /big"), "{answer}");
}

/// Pretends the first `skip` bytes hyper writes were written (the test sent
/// them itself, earlier).
struct Skip<I> {
    skip: usize,
    io: I,
}

impl<I: hyper::rt::Read + Unpin> hyper::rt::Read for Skip<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: hyper::rt::Write + Unpin> hyper::rt::Write for Skip<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.skip > 0 {
            let n = this.skip.min(buf.len());
            this.skip -= n;
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// An HTTP/2 (prior knowledge) request whose preface's first `early` bytes
/// were sent 50 ms before the rest.
async fn h2(addr: SocketAddr, early: usize) -> (Version, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    if early > 0 {
        tcp.write_all(&H2_PREFACE[..early]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let io = Skip {
        skip: early,
        io: TokioIo::new(tcp),
    };
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .uri(format!("http://{addr}/b"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let version = resp.version();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (version, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn http2_prior_knowledge_whole_or_split_is_served() {
    let (addr, _stop) = start(true).await;
    for early in [0, 1, 10, 23] {
        let (version, body) = h2(addr, early).await;
        assert_eq!(version, Version::HTTP_2, "{early} bytes early");
        assert_eq!(body, "HTTP/2.0 /b", "{early} bytes early");
    }
}

#[tokio::test]
async fn a_connection_still_being_told_closes_at_shutdown() {
    let (addr, stop) = start(true).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    // A prefix of the preface: the server keeps reading.
    tcp.write_all(&H2_PREFACE[..5]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.send(true).unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), tcp.read_to_end(&mut out)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?} {out:?}");
}
