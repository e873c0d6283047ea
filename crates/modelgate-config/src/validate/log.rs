//! `log`: format, level and the decision log sink.

use std::path::Path;

use crate::error::Collector;
use crate::fields::path_of;
use crate::raw::*;
use crate::types::*;

pub(super) fn log(raw: RawLog, base: &Path, c: &mut Collector) -> Option<Log> {
    let level = raw.level.unwrap_or_else(|| "info".into());
    let format = match raw.format.as_deref() {
        None | Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        Some(other) => {
            c.push(
                "log.format",
                format!("unknown format {other:?}"),
                "use json or text",
            );
            LogFormat::Json
        }
    };
    let decisions = match raw.decisions.as_deref() {
        None | Some("stdout") => DecisionSink::Stdout,
        Some("stderr") => DecisionSink::Stderr,
        Some("off") => DecisionSink::Off,
        Some(p) => DecisionSink::File(path_of(base, p)),
    };
    Some(Log {
        level,
        format,
        decisions,
    })
}
