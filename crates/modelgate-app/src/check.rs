//! Start-up checks beyond the configuration file itself, shared by
//! `modelgate validate` and `serve`: routes, key file, TLS files, wristband keys.

use modelgate_authn::KeyStore;
use modelgate_config::Config;
use modelgate_listen::TlsSetup;
use modelgate_route::RouteTable;

/// Everything that would stop `serve` from starting with this configuration
/// (except ports already in use).
pub fn check_startable(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(errors) = RouteTable::build(config) {
        problems.extend(errors.iter().map(ToString::to_string));
    }
    if let Some(k) = &config.auth.api_keys
        && let Err(e) = KeyStore::load(&k.file)
    {
        problems.push(format!("auth.api_keys.file: {e}\n    fix: repair the file or recreate keys with `modelgate keys create`"));
    }
    let specs = crate::builtin::specs(config);
    if !specs.is_empty()
        && let Err(e) = modelgate_runtime::Runtime::start(specs, crate::builtin::settings(config))
    {
        problems.push(format!(
            "models: {e}\n    fix: point builtin.dir at a folder holding a loadable model.onnx"
        ));
    }
    if let Some(w) = &config.wristband
        && let Err(errors) = modelgate_authn::wristband::Wristbands::build(w)
    {
        problems.extend(errors.iter().map(ToString::to_string));
    }
    for (i, l) in config.listeners.iter().enumerate() {
        if let Some(t) = &l.tls
            && let Err(e) = TlsSetup::new(t, l.http2)
        {
            problems.push(format!(
                "listen[{i}].tls: {e}\n    fix: point cert and key at matching PEM files"
            ));
        }
    }
    problems
}
