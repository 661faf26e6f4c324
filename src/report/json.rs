//! JSON: the model as serde writes it, wrapped with `schema_version` and `kind` so scripts can
//! tell a batch report from a plan and notice a change of shape. The schema is documented in
//! `docs/report-schema.md`; adding a field keeps the version, renaming or removing one bumps it.

use serde::Serialize;

use super::{PlanReport, Report, ReportError};

/// The version of the JSON shape `docs/report-schema.md` documents.
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Serialize)]
struct Document<'a, T: Serialize> {
    schema_version: u32,
    /// `batch` or `plan`.
    kind: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

pub(super) fn batch(report: &Report) -> Result<String, ReportError> {
    write(&Document {
        schema_version: SCHEMA_VERSION,
        kind: "batch",
        body: report,
    })
}

pub(super) fn plan(plan: &PlanReport) -> Result<String, ReportError> {
    write(&Document {
        schema_version: SCHEMA_VERSION,
        kind: "plan",
        body: plan,
    })
}

fn write<T: Serialize>(doc: &T) -> Result<String, ReportError> {
    let mut text = serde_json::to_string_pretty(doc).map_err(ReportError::Json)?;
    text.push('\n');
    Ok(text)
}
