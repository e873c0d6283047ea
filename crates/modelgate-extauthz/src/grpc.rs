//! The gRPC `Authorization` service: each `Check` is one decision.

use std::time::Instant;

use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse,
};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use modelgate_app::Adapter;
use modelgate_core::{BoxBody, BoxError};
use tonic::Status;
use tonic::codegen::Service;

use crate::convert::{ask_from_check, check_response};

/// Room for the request head beside a body of the listener's limit.
const HEAD_ROOM: u64 = 1 << 20;

/// The generated server over [`Check`], built once per listener.
#[derive(Clone)]
pub struct GrpcCheck {
    server: AuthorizationServer<Check>,
}

impl GrpcCheck {
    pub fn new(adapter: Adapter, listener: usize, max_body: u64) -> Self {
        let limit = usize::try_from(max_body.saturating_add(HEAD_ROOM)).unwrap_or(usize::MAX);
        Self {
            server: AuthorizationServer::new(Check { adapter, listener })
                .max_decoding_message_size(limit),
        }
    }

    pub async fn serve(&self, req: Request<Incoming>) -> Response<BoxBody> {
        let mut svc = self.server.clone();
        let resp = match svc.call(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
        resp.map(|b| b.map_err(|s| Box::new(s) as BoxError).boxed_unsync())
    }
}

/// Envoy's `Check`, answered by the decision function.
pub struct Check {
    pub adapter: Adapter,
    pub listener: usize,
}

#[tonic::async_trait]
impl Authorization for Check {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, Status> {
        let received = Instant::now();
        let (ask, body) = ask_from_check(request.into_inner(), self.listener, received)
            .map_err(Status::invalid_argument)?;
        let checked = self.adapter.check(ask, body).await;
        Ok(tonic::Response::new(check_response(&checked)))
    }
}
