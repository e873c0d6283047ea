//! Raw sections → validated [`Config`], one file per section. Each check
//! names its key and a fix.

mod auth;
mod listeners;
mod log;
mod models;
mod routes;
mod runtime;

use std::net::SocketAddr;
use std::path::Path;

use yaml_serde::Value;

use crate::error::Collector;
use crate::raw::*;
use crate::types::*;

pub(crate) use listeners::tls;
pub(crate) use routes::canonical_path;

use auth::auth;
use listeners::listeners;
use log::log;
use models::models;
use runtime::runtime;

/// The sections as found in the file, before validation.
#[derive(Default)]
pub(crate) struct Sections {
    pub listen: Option<Value>,
    pub admin: Option<RawAdmin>,
    pub models: Option<Value>,
    pub auth: Option<RawAuth>,
    pub policies: Option<Value>,
    pub log: Option<RawLog>,
    pub runtime: Option<RawRuntime>,
    pub ext_authz: Option<crate::ext_authz::RawExtAuthz>,
    pub wristband: Option<crate::wristband::RawWristband>,
    pub extension_providers: Option<Vec<crate::providers::RawExtensionProvider>>,
    pub rate_limits: Option<crate::rate_limits::RawRateLimits>,
}

const DEFAULT_ADMIN: &str = "127.0.0.1:9901";

pub(crate) fn validate(s: Sections, base: &Path, c: &mut Collector) -> Option<Config> {
    let listeners = listeners(s.listen, base, c);
    let admin = admin(s.admin, c);
    let models = models(s.models, base, c);
    let auth = auth(s.auth.unwrap_or_default(), base, c);
    let policies = crate::policy::policies(s.policies, c);
    let log = log(s.log.unwrap_or_default(), base, c);
    let runtime = runtime(s.runtime.unwrap_or_default(), c);
    let ext_authz = crate::ext_authz::ext_authz(
        s.ext_authz,
        listeners.as_deref(),
        admin.as_ref().map(|a| a.address),
        base,
        c,
    );
    let wristband =
        crate::wristband::wristband(s.wristband, listeners.as_deref(), auth.as_ref(), base, c);
    let extension_providers = crate::providers::providers(s.extension_providers, c);
    crate::providers::check_policies(&extension_providers, &policies, c);
    if let (Some(admin), Some(listeners)) = (&admin, &listeners) {
        for (i, l) in listeners.iter().enumerate() {
            if l.address == admin.address {
                c.push(
                    format!("listen[{i}].address"),
                    format!("{} is also the admin address", l.address),
                    "give the admin listener its own port (admin.address)",
                );
            }
        }
    }
    let model_names: Option<Vec<String>> = models
        .as_ref()
        .map(|ms| ms.iter().map(|m| m.name.as_str().to_string()).collect());
    let mut rate_limits = s
        .rate_limits
        .map(|r| crate::rate_limits::rate_limits(r, model_names.as_deref(), c));
    match (&mut rate_limits, &models) {
        (Some(Some(rl)), Some(ms)) => crate::rate_limits::with_models(rl, ms, c),
        (None, Some(ms)) => {
            if let Some(i) = ms.iter().position(|m| m.limits.is_some()) {
                c.push(
                    format!("models[{i}].limits"),
                    "model limits need a `limits:` section (the rate-limit step)",
                    "add `limits: {}` at the top level, or remove the model's limits",
                );
            }
        }
        _ => {}
    }
    if let (Some(m), Some(a)) = (&models, &auth) {
        crate::kube_access::needs_api_server(m, a, c); // SubjectAccessReview hook
    }
    Some(Config {
        listeners: listeners?,
        admin: admin?,
        models: models?,
        auth: auth?,
        policies,
        log: log?,
        runtime: runtime?,
        ext_authz,
        wristband,
        extension_providers,
        rate_limits: rate_limits.flatten(),
    })
}

pub(crate) fn socket_addr(s: &str, key: &str, c: &mut Collector) -> Option<SocketAddr> {
    match s.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            c.push(
                key,
                format!("invalid listen address {s:?}"),
                "write IP:PORT, e.g. 0.0.0.0:8080 or 127.0.0.1:9901 (host names are not resolved)",
            );
            None
        }
    }
}

fn admin(raw: Option<RawAdmin>, c: &mut Collector) -> Option<Admin> {
    let raw = raw.unwrap_or(RawAdmin {
        address: None,
        roles: None,
        keys: Vec::new(),
        ui: None,
    });
    let s = raw.address.unwrap_or_else(|| DEFAULT_ADMIN.to_string());
    let role = crate::admin::role(raw.roles, raw.keys, c);
    Some(Admin {
        address: socket_addr(&s, "admin.address", c)?,
        role: role?,
        on_public: raw.ui.is_some_and(|u| u.on_public),
    })
}
