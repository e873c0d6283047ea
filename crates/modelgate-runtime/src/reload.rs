//! The set of served models and how it changes: config updates (add, keep,
//! drop) and file reloads. A request holds an `Arc` of the model it started
//! on, so a swap never disturbs requests in flight; a file that fails to load
//! leaves the previous model serving and the error on record.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use modelgate_core::ModelName;

use crate::model::LoadedModel;
use crate::{BuiltinModelSpec, RuntimeError, load};

/// Identity of one file's current contents, as far as metadata tells.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            len: m.len(),
            modified: m.modified().ok(),
            #[cfg(unix)]
            inode: std::os::unix::fs::MetadataExt::ino(&m),
        })
    }
}

/// What `model.onnx` and `model.yaml` looked like when a model was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    model: Option<FileStamp>,
    settings: Option<FileStamp>,
}

impl Fingerprint {
    /// Taken *before* reading the files, so a write racing the load shows up
    /// as a change at the next check.
    pub fn of(spec: &BuiltinModelSpec) -> Fingerprint {
        Fingerprint {
            model: FileStamp::of(&spec.model_file()),
            settings: FileStamp::of(&spec.settings_file()),
        }
    }
}

/// What [`crate::Runtime::reload_changed`] did to one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadEvent {
    /// New files loaded and now serving.
    Reloaded { model: ModelName, version: String },
    /// New files failed to load; the previous model keeps serving.
    Failed { model: ModelName, error: String },
}

/// A model's health as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelStatus {
    pub ready: bool,
    pub version: String,
    /// The last reload failure, while the files that caused it are unchanged.
    pub reload_error: Option<String>,
}

/// The last failed reload: for which files, and why.
#[derive(Debug, Clone)]
struct Failure {
    fingerprint: Fingerprint,
    message: String,
}

/// One configured model and the version of it now serving.
pub(crate) struct Entry {
    spec: BuiltinModelSpec,
    current: ArcSwap<LoadedModel>,
    failure: Mutex<Option<Failure>>,
}

impl Entry {
    fn new(spec: BuiltinModelSpec, model: LoadedModel) -> Arc<Entry> {
        Arc::new(Entry {
            spec,
            current: ArcSwap::from_pointee(model),
            failure: Mutex::new(None),
        })
    }

    /// The model new requests should run on.
    pub fn model(&self) -> Arc<LoadedModel> {
        self.current.load_full()
    }

    pub fn reload_error(&self) -> Option<String> {
        lock(&self.failure).as_ref().map(|f| f.message.clone())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keyed by configured names (the request's name is only looked up), hashed
/// with foldhash: a lookup per request, SipHash's cost is not needed here.
type ModelMap = HashMap<ModelName, Arc<Entry>, foldhash::fast::RandomState>;

/// All served models. Reads are lock-free; changes are serialized.
pub(crate) struct Registry {
    models: ArcSwap<ModelMap>,
    changing: Mutex<()>,
}

impl Registry {
    pub fn start(specs: Vec<BuiltinModelSpec>) -> Result<Registry, RuntimeError> {
        let registry = Registry {
            models: ArcSwap::from_pointee(ModelMap::default()),
            changing: Mutex::new(()),
        };
        registry.update(specs)?;
        Ok(registry)
    }

    pub fn get(&self, name: &ModelName) -> Option<Arc<Entry>> {
        self.models.load().get(name).cloned()
    }

    pub fn names(&self) -> Vec<ModelName> {
        let mut names: Vec<_> = self.models.load().keys().cloned().collect();
        names.sort();
        names
    }

    /// Replaces the configured set, all or nothing: a model whose spec is
    /// unchanged keeps its loaded instance; new or changed ones are loaded
    /// first, and any failure leaves the old set in place.
    pub fn update(&self, specs: Vec<BuiltinModelSpec>) -> Result<(), RuntimeError> {
        let _serial = lock(&self.changing);
        let old = self.models.load_full();
        let mut next = ModelMap::with_capacity_and_hasher(specs.len(), Default::default());
        for spec in specs {
            if next.contains_key(&spec.name) {
                return Err(RuntimeError::Duplicate(spec.name));
            }
            let entry = match old.get(&spec.name).filter(|e| e.spec == spec) {
                Some(e) => Arc::clone(e),
                None => {
                    let model = load::load(&spec)?;
                    Entry::new(spec.clone(), model)
                }
            };
            next.insert(spec.name, entry);
        }
        self.models.store(Arc::new(next));
        Ok(())
    }

    /// Reloads every model whose files changed since it was loaded. A
    /// failure is reported once per distinct broken file state.
    pub fn reload_changed(&self) -> Vec<ReloadEvent> {
        let _serial = lock(&self.changing);
        let mut events = Vec::new();
        for (name, entry) in self.models.load().iter() {
            let now = Fingerprint::of(&entry.spec);
            if now == entry.current.load().fingerprint {
                // Back to the files that are serving: any failure is moot.
                lock(&entry.failure).take();
                continue;
            }
            if lock(&entry.failure)
                .as_ref()
                .is_some_and(|f| f.fingerprint == now)
            {
                continue;
            }
            match load::load(&entry.spec) {
                Ok(model) => {
                    let version = model.version.clone();
                    entry.current.store(Arc::new(model));
                    lock(&entry.failure).take();
                    events.push(ReloadEvent::Reloaded {
                        model: name.clone(),
                        version,
                    });
                }
                Err(e) => {
                    let message = e.to_string();
                    *lock(&entry.failure) = Some(Failure {
                        fingerprint: now,
                        message: message.clone(),
                    });
                    events.push(ReloadEvent::Failed {
                        model: name.clone(),
                        error: message,
                    });
                }
            }
        }
        events.sort_by(|a, b| event_model(a).cmp(event_model(b)));
        events
    }
}

fn event_model(e: &ReloadEvent) -> &ModelName {
    match e {
        ReloadEvent::Reloaded { model, .. } | ReloadEvent::Failed { model, .. } => model,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::tests::fixture;

    fn copy_model(from: &str, to: &Path) {
        // Write then rename, as deployment tools do, so the inode changes.
        let tmp = to.with_extension("tmp");
        std::fs::copy(fixture(from).model_file(), &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    }

    fn spec(name: &str, dir: &Path) -> BuiltinModelSpec {
        BuiltinModelSpec::new(ModelName::parse(name).unwrap(), dir)
    }

    #[test]
    fn broken_file_keeps_the_old_model() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec("iris", dir.path());
        copy_model("iris-logreg", &s.model_file());
        let reg = Registry::start(vec![s.clone()]).unwrap();
        let entry = reg.get(&s.name).unwrap();
        let before = entry.model();
        assert!(reg.reload_changed().is_empty());

        std::fs::write(s.model_file(), b"garbage").unwrap();
        let events = reg.reload_changed();
        assert!(
            matches!(&events[..], [ReloadEvent::Failed { model, error }] if model.as_str() == "iris" && error.contains("model.onnx")),
            "{events:?}"
        );
        assert!(
            Arc::ptr_eq(&before, &entry.model()),
            "old model keeps serving"
        );
        assert!(entry.reload_error().is_some());
        assert!(
            reg.reload_changed().is_empty(),
            "one report per broken state"
        );

        copy_model("iris-rf", &s.model_file());
        let events = reg.reload_changed();
        assert_eq!(
            events,
            vec![ReloadEvent::Reloaded {
                model: s.name.clone(),
                version: "1".into()
            }]
        );
        assert!(!Arc::ptr_eq(&before, &entry.model()));
        assert!(entry.reload_error().is_none());
    }

    #[test]
    fn update_keeps_adds_and_drops() {
        let a = fixture("iris-logreg");
        let b = fixture("iris-rf");
        let reg = Registry::start(vec![a.clone()]).unwrap();
        let kept = reg.get(&a.name).unwrap();
        reg.update(vec![a.clone(), b.clone()]).unwrap();
        assert!(
            Arc::ptr_eq(&kept, &reg.get(&a.name).unwrap()),
            "unchanged model not reloaded"
        );
        assert_eq!(reg.names(), vec![a.name.clone(), b.name.clone()]);
        reg.update(vec![b.clone()]).unwrap();
        assert_eq!(reg.names(), vec![b.name.clone()]);

        let broken = spec("broken", Path::new("/nonexistent/modelgate"));
        let e = reg.update(vec![a.clone(), broken]).unwrap_err();
        assert!(e.to_string().contains("'broken'"), "{e}");
        assert_eq!(
            reg.names(),
            vec![b.name.clone()],
            "failed update changes nothing"
        );

        let e = reg.update(vec![a.clone(), a.clone()]).unwrap_err();
        assert!(matches!(e, RuntimeError::Duplicate(_)));
    }
}
