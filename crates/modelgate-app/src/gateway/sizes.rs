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

/// The decision's future (its I/O-free steps run before it is made).
const DECIDE_MAX: usize = if cfg!(debug_assertions) { 2560 } else { 2048 };

/// The handler's future, which hyper moves into its own box per request.
const HANDLE_MAX: usize = if cfg!(debug_assertions) {
    8 * 1024
} else {
    2 * 1024
};

/// The size of the future `handle` returns (without a `Gateway` to call it on).
fn handle_future_size<'a, F, Fut>(_: F) -> usize
where
    F: FnOnce(&'a Gateway, Request<Incoming>, Arc<ConnInfo>) -> Fut,
{
    std::mem::size_of::<Fut>()
}

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
    let handle_size = handle_future_size(<Gateway as Handler>::handle);
    eprintln!(
        "types: Trace {} Parts {} Request {} Decision {} Ask {} Facts {} RouteMatch {} Ruling {} Identity {} Result {} Permit {} Reject {}",
        std::mem::size_of::<Trace>(),
        std::mem::size_of::<http::request::Parts>(),
        std::mem::size_of::<Request<Incoming>>(),
        std::mem::size_of::<Decision>(),
        std::mem::size_of::<Ask>(),
        std::mem::size_of::<modelgate_core::RequestFacts>(),
        std::mem::size_of::<modelgate_route::RouteMatch>(),
        std::mem::size_of::<modelgate_authz::Ruling>(),
        std::mem::size_of::<crate::decide::Identity>(),
        std::mem::size_of::<Result<Option<modelgate_authz::Permit>, Reject>>(),
        std::mem::size_of::<modelgate_authz::Permit>(),
        std::mem::size_of::<Reject>(),
    );
    eprintln!("future sizes: handle {handle_size} B, flow {flow_size} B, decide {decide_size} B");
    assert!(
        decide_size <= DECIDE_MAX,
        "decide's future is {decide_size} B; keep the Ask out of it and box the rare remote steps"
    );
    assert!(
        handle_size <= HANDLE_MAX,
        "the handler's future is {handle_size} B: hyper copies it once per request; box the large, rare step that grew it"
    );
    assert!(
        flow_size <= FLOW_MAX,
        "flow's future is {flow_size} B (decide: {decide_size} B); box the large, rare step that grew it"
    );
}
