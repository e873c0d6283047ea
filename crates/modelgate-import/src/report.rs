//! The import report: every field that was not translated, or translated
//! with a caveat, with the object and key path it came from.

use std::fmt;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The input could not be read (bad YAML); the import failed.
    Error,
    /// The field has no modelgate equivalent (yet) and was left out.
    Untranslated,
    /// Translated, but read this: a placeholder, a default, a changed meaning.
    Note,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Error => "error",
            Level::Untranslated => "untranslated",
            Level::Note => "note",
        })
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    /// `Kind/namespace/name`, or the input file for file-level findings.
    pub object: String,
    /// Key path inside the object (`spec.authorization.rbac.opa`); empty for the whole object.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {} — {}", self.level, self.object, self.message)
        } else {
            write!(
                f,
                "{}: {}: {} — {}",
                self.level, self.object, self.path, self.message
            )
        }
    }
}

/// All findings of one import, in the order they were made.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Objects read, by `Kind/namespace/name`.
    pub objects: Vec<String>,
}

impl Report {
    pub(crate) fn push(
        &mut self,
        level: Level,
        object: &str,
        path: &str,
        message: impl Into<String>,
    ) {
        self.findings.push(Finding {
            level,
            object: object.to_string(),
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Findings at one level.
    pub fn at(&self, level: Level) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.level == level)
    }

    /// Whether the input could not be read.
    pub fn has_errors(&self) -> bool {
        self.at(Level::Error).next().is_some()
    }

    /// A finding about `object` whose path starts with `path`.
    pub fn find(&self, object: &str, path: &str) -> Option<&Finding> {
        self.findings
            .iter()
            .find(|f| f.object == object && f.path.starts_with(path))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# modelgate import report")?;
        writeln!(
            f,
            "# read {} object(s): {}",
            self.objects.len(),
            self.objects.join(", ")
        )?;
        let count = |l| self.at(l).count();
        writeln!(
            f,
            "# {} untranslated, {} notes, {} errors",
            count(Level::Untranslated),
            count(Level::Note),
            count(Level::Error)
        )?;
        let mut sorted: Vec<&Finding> = self.findings.iter().collect();
        sorted.sort_by_key(|x| x.level);
        for finding in sorted {
            writeln!(f, "{finding}")?;
        }
        Ok(())
    }
}
