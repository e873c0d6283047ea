//! The size of the per-request futures. Hyper keeps the handler's future by
//! value and `Gateway::handle` boxes `flow`: every byte of `flow`'s state is
//! copied, and its cache lines written, once per request. The rare, large
//! steps (remote identity calls, shared rate-limit stores, sign-in) are boxed
//! where they are awaited so they do not set the size of the common path.

use std::net::SocketAddr;
use std::path::Path;

use super::*;

const CONFIG: &str = r#"
listen: {address: "127.0.0.1:1"}
admin: {address: "127.0.0.1:2"}
models:
  - name: fast
    protocols: [v1, v2]
    upstream: {url: "http://127.0.0.1:3"}
"#;

/// Release builds lay futures out tighter than test builds; the bound is for
/// the build the tests run in, with room for small changes.
const FLOW_MAX: usize = if cfg!(debug_assertions) {
    16 * 1024
} else {
    4 * 1024
};

#[test]
fn the_flow_future_stays_small() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _entered = rt.enter();
    let config = modelgate_config::parse_str(CONFIG, "t.yaml", Path::new("."), &|_| None).unwrap();
    let keys = Arc::new(ArcSwap::from_pointee(KeyStore::empty()));
    let p = Pipeline::build(config, keys, None).unwrap();
    let client: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let conn = ConnInfo {
        listener: 0,
        client,
        local: "127.0.0.1:1".parse().unwrap(),
        tls: false,
        peer: None,
    };
    let mut trace = Trace::new(client, "GET", "/v1/models/fast");
    let mut body = None;
    let (parts, ()) = Request::new(()).into_parts();
    let flow_size =
        std::mem::size_of_val(&flow(&p, None, parts, &mut body, &conn, &mut trace, true));

    let (parts, ()) = Request::new(()).into_parts();
    let mut body = None;
    let mut source = ServeBody {
        body: &mut body,
        limit: 1,
        deadline: BodyDeadline::start(&p.listeners[0].config.limits),
        head: None,
    };
    let decide_size = std::mem::size_of_val(&p.decider().decide(
        ask(parts, &conn, trace.received),
        Claimed::FromRequest,
        &mut source,
        false,
    ));
    eprintln!("future sizes: flow {flow_size} B, decide {decide_size} B");
    assert!(
        flow_size <= FLOW_MAX,
        "flow's future is {flow_size} B (decide: {decide_size} B); box the large, rare step that grew it"
    );
}
