//! Reports for change management: one batch rendered from the queue's own record, never from
//! the API (DESIGN.md, "Shape"), as Markdown, HTML, CSV or JSON.
//!
//! [`Report::load`] reads everything a report says from the database in one read transaction
//! (batch, jobs, the event log's timeline, runs, API usage, discovery, and the protection of
//! the configured VMs: configured is not protected) into one serializable
//! model; the renderers (`md`, `html`, `csv`, `json`, one file each) only format that model.
//! `vrbulk plan` writes its dry run through the same renderers as a [`PlanReport`]. Failures are
//! grouped by cause with a suggested next step in `causes`. A day-2 operation batch's report
//! names the configure batch it acted on, and a configure batch's report lists the operations
//! applied to it since (`operations`); what each run used is in `settings`.
//!
//! Times are Unix milliseconds in the model ([`UtcTime`]); they render as
//! `YYYY-MM-DD HH:MM:SS UTC` for people and as RFC 3339 in JSON. The caller passes `now`, so a
//! golden test renders the same bytes every time.

mod audit;
mod causes;
mod compliance;
mod csv;
mod html;
mod json;
mod link;
mod md;
mod model;
mod operations;
mod plan;
mod settings;
mod wave;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Serialize, Serializer};
use thiserror::Error;

use crate::queue::QueueError;

pub use causes::{classify, normalize, CauseKind};
pub use compliance::Compliance;
pub use json::SCHEMA_VERSION;
pub use link::{LinkPoint, LinkSeries};
pub use model::{
    ApiCall, BatchHeader, FailureGroup, JobProtection, JobRow, Progress, ProtectionSummary,
    ReplicationChange, Report, Runs, Site, SkipGroup, Summary, TimeSource, TimelineEntry,
};
pub use operations::{
    describe, done_word, state_word, BatchRef, JobOperation, OperationSince, OperationSpecCount,
};
pub use plan::{PlanCounts, PlanReport};
pub use settings::RunEntry;
pub use wave::{Measured, WaveForecast};

#[derive(Debug, Error)]
pub enum ReportError {
    #[error(transparent)]
    Queue(#[from] QueueError),

    #[error("report: writing CSV")]
    Csv(#[from] ::csv::Error),

    #[error("report: writing JSON")]
    Json(#[source] serde_json::Error),
}

/// The formats a report renders in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// GitHub-flavoured Markdown.
    #[default]
    Md,
    /// One self-contained page: inline CSS and SVG, no script.
    Html,
    /// One row per VM.
    Csv,
    /// The versioned schema of `docs/report-schema.md`.
    Json,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Md, Format::Html, Format::Csv, Format::Json];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Md => "md",
            Format::Html => "html",
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown report format `{0}`: use md, html, csv or json")]
pub struct UnknownFormat(pub String);

/// Why a report cannot be written to the file asked for. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OutputRefused {
    #[error(
        "cannot write a report to {path}: vrbulk writes md, html, csv or json, not `.{extension}`; \
         name the file .md, .html, .csv or .json, or say which with --format"
    )]
    UnknownExtension { path: PathBuf, extension: String },

    #[error("{path} names a {named} file but --format is {asked}: say one or the other")]
    Mismatch {
        path: PathBuf,
        named: Format,
        asked: Format,
    },
}

impl Format {
    /// The format a file's extension names (`md`, `markdown`, `html`, `htm`, `csv`, `json`, in
    /// any case).
    pub fn from_extension(extension: &str) -> Option<Format> {
        match extension.to_ascii_lowercase().as_str() {
            "htm" => Some(Format::Html),
            other => other.parse().ok(),
        }
    }

    /// The format to write `output` in: the one `asked` (`--format`), else the one the file's
    /// extension names, else Markdown. An extension that names no format is refused unless
    /// `--format` says what to write (so `-o x.pdf` never gets Markdown in it), and so is one
    /// that names another format than `--format`.
    pub fn for_output(
        asked: Option<Format>,
        output: Option<&Path>,
    ) -> Result<Format, OutputRefused> {
        let Some((path, extension)) = output.and_then(|p| Some((p, p.extension()?))) else {
            return Ok(asked.unwrap_or_default());
        };
        let extension = extension.to_string_lossy();
        match (Format::from_extension(&extension), asked) {
            (Some(named), Some(asked)) if named != asked => Err(OutputRefused::Mismatch {
                path: path.to_path_buf(),
                named,
                asked,
            }),
            (Some(named), _) => Ok(named),
            (None, Some(asked)) => Ok(asked),
            (None, None) => Err(OutputRefused::UnknownExtension {
                path: path.to_path_buf(),
                extension: extension.into_owned(),
            }),
        }
    }
}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        match s.to_ascii_lowercase().as_str() {
            "md" | "markdown" => Ok(Format::Md),
            "html" => Ok(Format::Html),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            _ => Err(UnknownFormat(s.to_string())),
        }
    }
}

impl Report {
    /// The report in `format`, as the bytes of a file.
    pub fn render(&self, format: Format) -> Result<String, ReportError> {
        Ok(match format {
            Format::Md => md::batch(self),
            Format::Html => html::batch(self),
            Format::Csv => csv::batch(self)?,
            Format::Json => json::batch(self)?,
        })
    }
}

impl PlanReport {
    /// The plan in `format`, as the bytes of a file.
    pub fn render(&self, format: Format) -> Result<String, ReportError> {
        Ok(match format {
            Format::Md => md::plan(self),
            Format::Html => html::plan(self),
            Format::Csv => csv::plan(self)?,
            Format::Json => json::plan(self)?,
        })
    }
}

/// A moment as the queue records it (Unix milliseconds, UTC). Displays as
/// `YYYY-MM-DD HH:MM:SS UTC`; serializes as RFC 3339 with milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcTime(pub i64);

impl UtcTime {
    /// `2024-06-01T12:00:00.000Z`; a moment outside jiff's range (never written by vrbulk)
    /// falls back to the readable form rather than failing the whole report.
    pub fn rfc3339(self) -> String {
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            Err(_) => self.to_string(),
        }
    }
}

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::timefmt::utc(self.0))
    }
}

impl Serialize for UtcTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

/// A length of time as operators read it (`3m 10s`); the same words as `vrbulk status`.
pub(crate) fn span(ms: i64) -> String {
    crate::timefmt::span(ms)
}

/// Bytes in binary units with one decimal: `1.5 TiB`.
pub(crate) fn bytes(n: i64) -> String {
    crate::units::bytes(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_for_people_and_as_rfc3339() {
        let t = UtcTime(1_717_243_200_250);
        assert_eq!(t.to_string(), "2024-06-01 12:00:00 UTC");
        assert_eq!(t.rfc3339(), "2024-06-01T12:00:00.250Z");
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2024-06-01T12:00:00.250Z\""
        );
    }

    #[test]
    fn formats_parse_by_name() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
        }
        assert!("pdf".parse::<Format>().is_err());
    }

    #[test]
    fn the_output_file_names_the_format_and_an_unknown_one_is_refused() {
        fn at(p: &str) -> Option<&Path> {
            Some(Path::new(p))
        }
        assert_eq!(Format::for_output(None, None), Ok(Format::Md));
        assert_eq!(Format::for_output(None, at("wave-3")), Ok(Format::Md));
        assert_eq!(Format::for_output(None, at("w.HTM")), Ok(Format::Html));
        assert_eq!(Format::for_output(None, at("w.markdown")), Ok(Format::Md));
        assert_eq!(
            Format::for_output(Some(Format::Json), at("w.json")),
            Ok(Format::Json)
        );
        assert_eq!(
            Format::for_output(Some(Format::Md), at("notes.txt")),
            Ok(Format::Md),
            "--format says what goes into a file of any name"
        );
        let pdf = Format::for_output(None, at("x.pdf")).unwrap_err();
        assert!(
            pdf.to_string()
                .contains("md, html, csv or json, not `.pdf`"),
            "{pdf}"
        );
        assert!(matches!(
            Format::for_output(Some(Format::Html), at("r.json")),
            Err(OutputRefused::Mismatch { .. })
        ));
    }
}
