//! `modelgate demo`: the one-command start. Serves the bundled iris model
//! behind API-key auth, creates a key in a local data folder, and prints the
//! key and ready-to-paste curl lines (with and without the key).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::Args;
use modelgate_authn::keys::{KeyFile, KeyFileError};

/// The bundled iris model (scikit-learn LogisticRegression exported with
/// skl2onnx; see examples/models/iris/README.md).
const IRIS_ONNX: &[u8] = include_bytes!("../../../examples/models/iris/model.onnx");
const KEY_NAME: &str = "demo";

#[derive(Args)]
pub struct DemoArgs {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Admin address (/healthz, /readyz, /metrics).
    #[arg(long, default_value = "127.0.0.1:9901")]
    admin: SocketAddr,
    /// Folder for the demo's model, configuration and key file
    /// (default: $XDG_DATA_HOME/modelgate/demo or ~/.local/share/modelgate/demo).
    #[arg(long, env = "MODELGATE_DEMO_DIR")]
    data_dir: Option<PathBuf>,
}

fn default_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("modelgate").join("demo")
}

/// Writes the model and configuration, and makes a fresh key (rotating the
/// previous demo key away, since a stored key can never be shown again).
fn prepare(args: &DemoArgs) -> anyhow::Result<(PathBuf, String)> {
    let dir = args.data_dir.clone().unwrap_or_else(default_dir);
    let model_dir = dir.join("models").join("iris");
    std::fs::create_dir_all(&model_dir)
        .with_context(|| format!("cannot create {}", model_dir.display()))?;
    std::fs::write(model_dir.join("model.onnx"), IRIS_ONNX)
        .context("cannot write the demo model")?;
    let keys = dir.join("keys.json");
    let now = SystemTime::now();
    let key = KeyFile::update(&keys, |f| match f.rotate(KEY_NAME, Duration::ZERO, now) {
        Err(KeyFileError::NoSuchKey(_) | KeyFileError::Revoked(_)) => {
            f.create(KEY_NAME, vec!["iris".into()], None, now)
        }
        other => other,
    })?;
    let config = dir.join("modelgate.yaml");
    let text = format!(
        "# Written by `modelgate demo`; serve it again with `modelgate serve --config {}`.\n\
         listen: {{address: \"{}\"}}\n\
         admin: {{address: \"{}\"}}\n\
         auth:\n  realm: modelgate-demo\n  api_keys: {{file: keys.json}}\n\
         models:\n  - name: iris\n    protocols: [v1, v2, grpc]\n    builtin: {{dir: models/iris}}\n\
         log: {{format: text, level: info, decisions: stderr}}\n",
        config.display(),
        args.listen,
        args.admin
    );
    std::fs::write(&config, text).context("cannot write the demo configuration")?;
    Ok((config, key.key))
}

fn instructions(addr: SocketAddr, key: &str, admin: SocketAddr) -> String {
    let url = format!("http://{addr}");
    let v1 = r#"'{"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}'"#;
    let v2 = r#"'{"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}]}'"#;
    format!(
        "modelgate demo: the iris model is served at {url} behind API-key auth.\n\
         \n\
         export MODELGATE_KEY={key}\n\
         \n\
         # KServe V1 without the key: 401 (WWW-Authenticate, x-ext-auth-reason: credential not found)\n\
         curl -si {url}/v1/models/iris:predict -H 'Content-Type: application/json' -d {v1}\n\
         # KServe V1 with the key: {{\"predictions\":[1,1]}}\n\
         curl -s {url}/v1/models/iris:predict -H \"Authorization: Bearer $MODELGATE_KEY\" -H 'Content-Type: application/json' -d {v1}\n\
         # Open Inference Protocol V2 without the key: 401\n\
         curl -si {url}/v2/models/iris/infer -H 'Content-Type: application/json' -d {v2}\n\
         # Open Inference Protocol V2 with the key: outputs label [1,1] and probabilities\n\
         curl -s {url}/v2/models/iris/infer -H \"Authorization: Bearer $MODELGATE_KEY\" -H 'Content-Type: application/json' -d {v2}\n\
         \n\
         # gRPC (OIP V2) answers on the same port; metrics: curl http://{admin}/metrics\n\
         # Decision log and server log follow on stderr. Stop with Ctrl-C.\n"
    )
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let (config_path, key) = prepare(&args)?;
    let config = modelgate_config::load_file(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let on_ready: modelgate_app::OnReady = Box::new(move |listeners, bound_admin| {
        let addr = listeners.first().copied().unwrap_or(args.listen);
        print!("{}", instructions(addr, &key, bound_admin));
        use std::io::Write;
        let _ = std::io::stdout().flush();
    });
    crate::cli::serve_config(config, config_path, Some(on_ready))
}
