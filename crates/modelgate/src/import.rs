//! `modelgate import FILE|DIR…`: read manifests, print the configuration on
//! stdout (or `--output`) and the report on stderr (or `--report`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use modelgate_import::{Input, Options};

#[derive(clap::Args)]
pub struct ImportArgs {
    /// Manifest files, or directories (their *.yaml, *.yml and *.json, recursively).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    options: ImportOptions,
    /// Write the report here instead of stderr.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write the configuration here instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// What the manifests do not say: shared by `import` and `serve --manifests`.
#[derive(clap::Args, Clone, Default)]
pub struct ImportOptions {
    /// Where modelgate reaches a model (default: the in-cluster address from the manifests); adds the model if no manifest names it.
    #[arg(long = "upstream", value_name = "MODEL=URL")]
    upstreams: Vec<String>,
    /// The API-key file the configuration names (default keys.json, next to the configuration).
    #[arg(long, value_name = "PATH")]
    pub keys_file: Option<String>,
    /// A shell variable the manifests use (`$NAMESPACE` in a heredoc).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
    /// Fetch this issuer's signing keys from URL instead of the manifest's jwksUri.
    #[arg(long = "jwks-uri", value_name = "ISSUER=URL")]
    jwks_uris: Vec<String>,
    /// Namespace of objects that name none (as `kubectl apply -n`).
    #[arg(long)]
    namespace: Option<String>,
    /// Knative's domain: InferenceService models answer only for Host NAME.NAMESPACE.DOMAIN.
    #[arg(long)]
    domain: Option<String>,
}

impl ImportOptions {
    /// Whether no import flag was given (they mean nothing with `serve --config`).
    pub fn is_unset(&self) -> bool {
        self.upstreams.is_empty()
            && self.keys_file.is_none()
            && self.vars.is_empty()
            && self.jwks_uris.is_empty()
            && self.namespace.is_none()
            && self.domain.is_none()
    }

    pub fn to_options(&self) -> anyhow::Result<Options> {
        Ok(Options {
            upstreams: pairs(&self.upstreams, "--upstream")?,
            keys_file: self.keys_file.clone(),
            vars: pairs(&self.vars, "--var")?,
            jwks_uris: pairs(&self.jwks_uris, "--jwks-uri")?,
            namespace: self.namespace.clone(),
            domain: self.domain.clone(),
        })
    }
}

fn pairs(items: &[String], flag: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            _ => bail!("{flag} {item:?}: write it as NAME=VALUE"),
        }
    }
    Ok(out)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read directory {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            let manifest = e
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"));
            if e.is_dir() || manifest {
                collect(&e, out)?;
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Every manifest file under `paths` (directories recursively), sorted.
pub fn manifest_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        collect(p, &mut files)?;
    }
    Ok(files)
}

/// Reads the files as import inputs.
pub fn read_inputs(files: &[PathBuf]) -> anyhow::Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        inputs.push(Input {
            name: f.display().to_string(),
            text,
        });
    }
    Ok(inputs)
}

pub fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let opts = args.options.to_options()?;
    let inputs = read_inputs(&manifest_files(&args.paths)?)?;
    let imported = match modelgate_import::import(&inputs, &opts) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("modelgate import: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let report = imported.report.to_string();
    match &args.report {
        Some(path) => std::fs::write(path, &report)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => eprint!("{report}"),
    }
    match &args.output {
        Some(path) => std::fs::write(path, &imported.config)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{}", imported.config),
    }
    Ok(ExitCode::SUCCESS)
}
