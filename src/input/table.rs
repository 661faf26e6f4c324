//! The CSV form of the input: decoding, the header, and one [`JobSpec`] per row, with every
//! problem of the file collected (never just the first) and positioned by physical line.
//!
//! The `csv` crate does the quoting; what it is lenient about (ragged rows, a quote that never
//! closes) is checked here, because for an operator's batch file those are mistakes to point at,
//! not something to guess around.

use std::collections::HashMap;

use csv::{ReaderBuilder, StringRecord};

use super::cells::{quoted, Text};
use super::defaults::is_auto;
use super::{cells, Defaults, InputError, InputErrors, JobSpec, VmRef};
use crate::domain::ReplicationSettings;

/// The columns a CSV may have, named as in DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    VmName,
    VmId,
    Pairing,
    TargetDatastore,
    StoragePolicy,
    Rpo,
    MpitInstances,
    MpitDays,
    Quiesce,
    NetworkCompression,
    LwdEncryption,
    AutoReplicateNewDisks,
    DiskFormat,
    ReplicationServer,
    ChangeTicket,
    Notes,
    /// What `inventory export` found (not replicated, already replicated, a template): read
    /// and ignored, so that an exported file imports as it is without the status landing in
    /// the report as the operator's note.
    ReplicationStatus,
}

impl Column {
    pub const ALL: [Column; 17] = [
        Column::VmName,
        Column::VmId,
        Column::Pairing,
        Column::TargetDatastore,
        Column::StoragePolicy,
        Column::Rpo,
        Column::MpitInstances,
        Column::MpitDays,
        Column::Quiesce,
        Column::NetworkCompression,
        Column::LwdEncryption,
        Column::AutoReplicateNewDisks,
        Column::DiskFormat,
        Column::ReplicationServer,
        Column::ChangeTicket,
        Column::Notes,
        Column::ReplicationStatus,
    ];

    /// The header name, lower case.
    pub fn name(self) -> &'static str {
        match self {
            Column::VmName => "vm_name",
            Column::VmId => "vm_id",
            Column::Pairing => "pairing",
            Column::TargetDatastore => "target_datastore",
            Column::StoragePolicy => "storage_policy",
            Column::Rpo => "rpo",
            Column::MpitInstances => "mpit_instances",
            Column::MpitDays => "mpit_days",
            Column::Quiesce => "quiesce",
            Column::NetworkCompression => "network_compression",
            Column::LwdEncryption => "lwd_encryption",
            Column::AutoReplicateNewDisks => "auto_replicate_new_disks",
            Column::DiskFormat => "disk_format",
            Column::ReplicationServer => "replication_server",
            Column::ChangeTicket => "change_ticket",
            Column::Notes => "notes",
            Column::ReplicationStatus => "replication_status",
        }
    }

    fn from_name(lower: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.name() == lower)
    }

    /// The rule of a column that holds a name or free text.
    fn text(self) -> Option<Text> {
        match self {
            Column::VmName => Some(Text::VmName),
            Column::VmId => Some(Text::VmId),
            Column::Pairing => Some(Text::Pairing),
            Column::TargetDatastore => Some(Text::Datastore),
            Column::StoragePolicy => Some(Text::StoragePolicy),
            Column::ReplicationServer => Some(Text::ReplicationServer),
            Column::ChangeTicket => Some(Text::ChangeTicket),
            Column::Notes => Some(Text::Notes),
            _ => None,
        }
    }
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parses and validates a whole CSV file over `defaults`. Returns every problem of the file (and
/// of `defaults`) at once; jobs only when there is none.
pub fn parse_csv(bytes: &[u8], defaults: &Defaults) -> Result<Vec<JobSpec>, InputErrors> {
    // Problems of [defaults] are reported with the file's: fixing both in one go is kinder.
    let mut errors = defaults.validate().err().unwrap_or_default();
    let jobs = match decode(bytes) {
        Ok(text) => parse_text(text, defaults, &mut errors),
        Err(error) => {
            errors.push(error);
            Vec::new()
        }
    };
    if errors.is_empty() {
        Ok(jobs)
    } else {
        Err(InputErrors::sorted(errors))
    }
}

pub(super) fn decode(bytes: &[u8]) -> Result<&str, InputError> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(InputError::new(
            None,
            None,
            "the file is UTF-16 (Excel's \"Unicode Text\"), not UTF-8: save it as \"CSV UTF-8\"",
        ));
    }
    let (skipped, body) = match bytes.strip_prefix(UTF8_BOM) {
        Some(body) => (UTF8_BOM.len(), body),
        None => (0, bytes),
    };
    std::str::from_utf8(body).map_err(|e| {
        let at = e.valid_up_to();
        let decoded = body.get(..at).unwrap_or_default();
        let line = 1 + decoded.iter().filter(|&&b| b == b'\n').count() as u64;
        let byte = body.get(at).copied().unwrap_or_default();
        InputError::new(
            Some(line),
            None,
            format!(
                "the file is not UTF-8: byte 0x{byte:02X} at offset {} does not decode \
                 (a Latin-1 or Windows-1252 export?); save it as \"CSV UTF-8\"",
                skipped + at
            ),
        )
    })
}

fn parse_text(text: &str, defaults: &Defaults, errors: &mut Vec<InputError>) -> Vec<JobSpec> {
    let base = defaults.settings();
    let mut seen = SeenVms::default();
    let mut jobs = Vec::new();
    read_rows(text, defaults.target_datastore().is_none(), errors, |row| {
        let job = row.job(defaults, &base);
        seen.check(row, &job.vm);
        if row.errors.is_empty() {
            jobs.push(job);
        }
    });
    jobs
}

/// Reads a CSV text row by row: the delimiter, a quote that never closes, the header and each
/// row's shape, whose problems go to `errors`. Each row whose cells can be trusted to sit under
/// the right columns goes to `each`, which adds the row's own problems to it. With
/// `datastore_required`, a header without `target_datastore` is a problem.
pub(super) fn read_rows(
    text: &str,
    datastore_required: bool,
    errors: &mut Vec<InputError>,
    mut each: impl FnMut(&mut Row<'_>),
) {
    let delimiter = sniff_delimiter(text);
    let unclosed = unclosed_quote(text, delimiter);
    let lines = Lines::new(text);
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    // Read as a stream, one record at a time: a file of a million rows is not held twice.
    let mut records = reader.records().peekable();
    let mut header: Option<Header> = None;
    let mut row_count = 0;
    while let Some(result) = records.next() {
        let record = match result {
            Ok(record) => record,
            // Not expected once the text is known to be UTF-8 and rows may be ragged, but a
            // reader error must not be swallowed.
            Err(e) => {
                errors.push(InputError::new(
                    e.position().map(csv::Position::line),
                    None,
                    e.to_string(),
                ));
                break;
            }
        };
        let is_last = records.peek().is_none();
        // Blank lines, and lines of bare delimiters (spreadsheets leave those below the data),
        // are not rows.
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let Some(header) = &header else {
            match Header::read(
                &record,
                lines.of(&record),
                delimiter,
                datastore_required,
                errors,
            ) {
                Some(read) => header = Some(read),
                None => return,
            }
            continue;
        };
        row_count += 1;
        if let Some(quote_line) = unclosed.filter(|_| is_last) {
            // csv read everything after the quote into this row's last field: its cells are
            // not what the operator wrote, so only the quote is worth reporting.
            let column = header.name_at(record.len().saturating_sub(1));
            errors.push(InputError::new(
                Some(quote_line),
                column,
                "a quoted field opens here and is never closed, so the rest of the file \
                 was read into it; close the quote (a quote inside a quoted field is \
                 written twice: \"\")",
            ));
            continue;
        }
        let mut row = Row {
            line: lines.of(&record),
            record: &record,
            header,
            errors: Vec::new(),
        };
        if row.check_shape(delimiter) {
            each(&mut row);
        }
        errors.append(&mut row.errors);
    }
    match header {
        None => errors.push(InputError::new(
            None,
            None,
            "the file is empty: expected a header row with vm_name or vm_id (and \
             target_datastore, rpo, … as needed), then one row per VM",
        )),
        Some(header) if row_count == 0 => errors.push(InputError::new(
            None,
            None,
            format!(
                "no VM rows: the header on line {} has no rows below it",
                header.line
            ),
        )),
        Some(_) => {}
    }
}

/// Physical line numbers of a text's records. `csv::Position::line()` (and `byte()`) point at
/// the blank line before a record rather than at the record (BurntSushi/rust-csv#208, also with
/// CRLF), so the line is found from the byte offset past any line breaks there.
struct Lines<'a> {
    text: &'a str,
    /// Byte offsets of every `\n`.
    breaks: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let breaks = text.match_indices('\n').map(|(i, _)| i).collect();
        Lines { text, breaks }
    }

    fn of(&self, record: &StringRecord) -> u64 {
        let Some(position) = record.position() else {
            return 0;
        };
        let reported = usize::try_from(position.byte()).unwrap_or(usize::MAX);
        let rest = self.text.get(reported..).unwrap_or_default();
        let start = reported + (rest.len() - rest.trim_start_matches(['\r', '\n']).len());
        1 + self.breaks.partition_point(|&b| b < start) as u64
    }
}

/// `;` when the header line has more semicolons than commas outside quotes (a spreadsheet in a
/// locale whose decimal separator is `,`), else `,`. A header with neither is one column.
fn sniff_delimiter(text: &str) -> u8 {
    let (mut commas, mut semicolons) = (0, 0);
    let mut in_quotes = false;
    let mut seen_content = false;
    for c in text.chars() {
        match c {
            '"' => in_quotes = !in_quotes,
            '\n' if !in_quotes && seen_content => break,
            ',' if !in_quotes => commas += 1,
            ';' if !in_quotes => semicolons += 1,
            _ => {}
        }
        seen_content |= !c.is_whitespace();
    }
    if semicolons > commas {
        b';'
    } else {
        b','
    }
}

/// The line of a quoted field that is never closed, if any. The `csv` crate reads such a field
/// to the end of the file without complaint, so every row after it would silently vanish.
/// Follows the crate's reading: a quote opens a field only at the field's start, and `""` inside
/// a quoted field is a literal quote.
fn unclosed_quote(text: &str, delimiter: u8) -> Option<u64> {
    let delimiter = char::from(delimiter);
    let mut line = 1;
    let mut open_since: Option<u64> = None;
    let mut at_field_start = true;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if open_since.is_some() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                } else {
                    open_since = None;
                }
            }
        } else if c == '"' && at_field_start {
            open_since = Some(line);
        }
        if c == '\n' {
            line += 1;
        }
        at_field_start = open_since.is_none() && (c == delimiter || c == '\n' || c == '\r');
    }
    open_since
}

/// What the header row says: where each known column is.
pub(super) struct Header {
    line: u64,
    /// Fields in the header row.
    width: usize,
    /// Fields a row needs at least: up to the last named column, so a row may leave out the
    /// nameless trailing columns a spreadsheet adds.
    named_width: usize,
    /// The first occurrence of each known column.
    columns: HashMap<Column, usize>,
    /// The header's names by position (trimmed, lower case for known columns); empty for a
    /// nameless column.
    names: Vec<String>,
}

impl Header {
    /// Reads the header; `None` when no row can be understood without it (no VM column).
    fn read(
        record: &StringRecord,
        line: u64,
        delimiter: u8,
        datastore_required: bool,
        errors: &mut Vec<InputError>,
    ) -> Option<Header> {
        let mut columns = HashMap::new();
        let mut names = Vec::with_capacity(record.len());
        let mut suggested = Vec::new();
        for (index, raw) in record.iter().enumerate() {
            let name = raw.trim();
            let known = Column::from_name(&name.to_lowercase());
            match known {
                Some(column) => match columns.get(&column) {
                    Some(&first) => errors.push(InputError::new(
                        Some(line),
                        Some(column.name()),
                        format!(
                            "duplicate column: {} is also column {}; keep one of them",
                            column.name(),
                            first + 1
                        ),
                    )),
                    None => {
                        columns.insert(column, index);
                    }
                },
                None if name.is_empty() => {}
                None => {
                    let (message, suggestion) = unknown_column(name, delimiter);
                    suggested.extend(suggestion);
                    // Positioned by the name as written, unless that is no name at all.
                    let shown = if name.chars().count() > 40 || name.chars().any(char::is_control) {
                        quoted(name)
                    } else {
                        name.to_owned()
                    };
                    errors.push(InputError::new(Some(line), Some(&shown), message));
                }
            }
            names.push(known.map_or_else(|| name.to_owned(), |c| c.name().to_owned()));
        }
        let named_width = names
            .iter()
            .rposition(|n| !n.is_empty())
            .map_or(0, |i| i + 1);
        let header = Header {
            line,
            width: record.len(),
            named_width,
            columns,
            names,
        };

        // A misspelt column already says what it should be; a second error for the missing
        // column would only repeat it.
        let missing =
            |column: Column| !header.columns.contains_key(&column) && !suggested.contains(&column);
        if !header.columns.contains_key(&Column::TargetDatastore)
            && datastore_required
            && missing(Column::TargetDatastore)
        {
            errors.push(InputError::new(
                Some(line),
                None,
                "no target_datastore column: it is required unless [defaults] \
                 target_datastore is set",
            ));
        }
        if header.columns.contains_key(&Column::VmName)
            || header.columns.contains_key(&Column::VmId)
        {
            return Some(header);
        }
        if missing(Column::VmName) && missing(Column::VmId) {
            errors.push(InputError::new(
                Some(line),
                None,
                "no vm_name or vm_id column: the header must name the VM in at least one of them",
            ));
        }
        None
    }

    fn index(&self, column: Column) -> Option<usize> {
        self.columns.get(&column).copied()
    }

    pub(super) fn has(&self, column: Column) -> bool {
        self.columns.contains_key(&column)
    }

    /// The header's name for field `index`, for positioning an error; `None` past the header
    /// or under a nameless column.
    fn name_at(&self, index: usize) -> Option<&str> {
        self.names
            .get(index)
            .map(String::as_str)
            .filter(|n| !n.is_empty())
    }
}

/// The message for an unknown column, and the known columns it probably meant.
fn unknown_column(name: &str, delimiter: u8) -> (String, Vec<Column>) {
    let other = if delimiter == b',' { ';' } else { ',' };
    if name.contains(other) {
        let used = char::from(delimiter);
        let meant = name
            .split(other)
            .filter_map(|part| Column::from_name(&part.trim().to_lowercase()))
            .collect();
        return (
            format!(
                "unknown column: the header mixes `{used}` and `{other}`; use one delimiter \
                 throughout the file"
            ),
            meant,
        );
    }
    if let Some(rest) = name
        .strip_prefix('\u{feff}')
        .or_else(|| name.strip_prefix("ï»¿"))
    {
        let suggestion = Column::from_name(&rest.trim().to_lowercase());
        return (
            "unknown column: it starts with a second or garbled byte-order mark (the file \
             was converted to UTF-8 twice?); re-save it as \"CSV UTF-8\" and check the \
             non-ASCII names in it"
                .into(),
            suggestion.into_iter().collect(),
        );
    }
    match suggest(name) {
        Some(column) => (
            format!("unknown column; did you mean `{}`?", column.name()),
            vec![column],
        ),
        None => {
            let known: Vec<&str> = Column::ALL.iter().map(|c| c.name()).collect();
            (
                format!("unknown column; the columns are {}", known.join(", ")),
                Vec::new(),
            )
        }
    }
}

/// The known column an unknown header name most likely means: the same words with other
/// separators (`VM Name`), a common synonym, or a small typo.
fn suggest(name: &str) -> Option<Column> {
    let normal: String = name
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c == ' ' || c == '-' { '_' } else { c })
        .collect();
    if let Some(column) = Column::from_name(&normal) {
        return Some(column);
    }
    const SYNONYMS: [(&str, Column); 11] = [
        ("vm", Column::VmName),
        ("name", Column::VmName),
        ("vmname", Column::VmName),
        ("vmid", Column::VmId),
        ("datastore", Column::TargetDatastore),
        ("policy", Column::StoragePolicy),
        ("rpo_minutes", Column::Rpo),
        ("ticket", Column::ChangeTicket),
        ("change", Column::ChangeTicket),
        ("comment", Column::Notes),
        ("comments", Column::Notes),
    ];
    if let Some((_, column)) = SYNONYMS.iter().find(|(s, _)| *s == normal) {
        return Some(*column);
    }
    let (distance, column) = Column::ALL
        .into_iter()
        .map(|c| (strsim::levenshtein(&normal, c.name()), c))
        .min_by_key(|(d, _)| *d)?;
    // Two edits catch typos and dropped letters without pairing unrelated short names.
    let close = distance <= 2 || (distance <= 3 && normal.chars().count() >= 10);
    close.then_some(column)
}

/// One data row being read: its errors are kept apart so that a row with any is left out.
pub(super) struct Row<'a> {
    pub(super) line: u64,
    record: &'a StringRecord,
    header: &'a Header,
    pub(super) errors: Vec<InputError>,
}

impl Row<'_> {
    pub(super) fn fail(&mut self, column: Column, message: impl Into<String>) {
        self.errors.push(InputError::new(
            Some(self.line),
            Some(column.name()),
            message,
        ));
    }

    /// The trimmed cell, `None` when empty or when the column is absent.
    pub(super) fn cell(&self, column: Column) -> Option<&str> {
        self.header
            .index(column)
            .and_then(|i| self.record.get(i))
            .map(str::trim)
            .filter(|c| !c.is_empty())
    }

    /// The trimmed cell of a name or text column, owned; `None` when empty, absent, or
    /// refused by the column's rule (which is then a problem of the row).
    pub(super) fn text(&mut self, column: Column) -> Option<String> {
        let cell = self.cell(column)?;
        let checked = column.text().map_or(Ok(()), |rule| rule.check(cell));
        match checked {
            Ok(()) => Some(cell.to_owned()),
            Err(message) => {
                self.fail(column, message);
                None
            }
        }
    }

    pub(super) fn parse<T>(
        &mut self,
        column: Column,
        parse: fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let cell = self.cell(column)?;
        match parse(cell) {
            Ok(value) => Some(value),
            Err(message) => {
                self.fail(column, message);
                None
            }
        }
    }

    /// Checks that the row has the header's fields; `false` when its cells cannot be trusted to
    /// be under the right columns.
    fn check_shape(&mut self, delimiter: u8) -> bool {
        let found = self.record.len();
        let header = self.header;
        if found < header.named_width || found > header.width {
            let expected = if header.named_width == header.width {
                header.width.to_string()
            } else {
                format!("{} to {}", header.named_width, header.width)
            };
            let used = char::from(delimiter);
            let other = if delimiter == b',' { ';' } else { ',' };
            let hint = if found == 1 && self.record.iter().any(|f| f.contains(other)) {
                format!("; this line seems to use `{other}` where the header uses `{used}`")
            } else if self.record.iter().any(|f| f.contains('\n')) {
                "; a quoted field here spans several lines: is a quote misplaced?".into()
            } else if found > header.width
                && self
                    .record
                    .iter()
                    .skip(header.width)
                    .all(|f| f.trim().is_empty())
            {
                "; the extra fields are empty: a trailing delimiter?".into()
            } else if found > header.width {
                format!("; a value that contains `{used}` must be in double quotes")
            } else {
                String::new()
            };
            self.errors.push(InputError::new(
                Some(self.line),
                None,
                format!("expected {expected} fields as in the header, found {found}{hint}"),
            ));
            return false;
        }
        for (index, field) in self.record.iter().enumerate() {
            let field = field.trim();
            if header.name_at(index).is_none() && !field.is_empty() {
                self.errors.push(InputError::new(
                    Some(self.line),
                    None,
                    format!(
                        "value {} in field {}, which has no column name in the header",
                        quoted(field),
                        index + 1
                    ),
                ));
            }
        }
        true
    }

    /// The VM the row names, by `vm_name` and `vm_id`; a malformed id or no VM at all is a
    /// problem of the row.
    pub(super) fn vm(&mut self) -> VmRef {
        let owned = |c: Option<&str>| c.map(str::to_owned);
        let vm = VmRef {
            name: owned(self.cell(Column::VmName)),
            id: owned(self.cell(Column::VmId)),
        };
        if let Some(Err(message)) = vm.name.as_deref().map(|n| Text::VmName.check(n)) {
            self.fail(Column::VmName, message);
        }
        if let Some(id) = &vm.id {
            if let Err(message) = cells::check_vm_id(id) {
                self.fail(Column::VmId, message);
            }
        }
        if vm.name.is_none() && vm.id.is_none() {
            let present: Vec<&str> = [Column::VmName, Column::VmId]
                .into_iter()
                .filter(|c| self.header.has(*c))
                .map(Column::name)
                .collect();
            let column = if self.header.has(Column::VmName) {
                Column::VmName
            } else {
                Column::VmId
            };
            let verb = if present.len() == 1 { "is" } else { "are both" };
            self.fail(
                column,
                format!("no VM: {} {verb} empty", present.join(" and ")),
            );
        }
        vm
    }

    /// The row's job; meaningful only if the row ends with no errors.
    fn job(&mut self, defaults: &Defaults, base: &ReplicationSettings) -> JobSpec {
        let vm = self.vm();

        let datastore_cell = self.cell(Column::TargetDatastore).is_some();
        let target_datastore = self
            .text(Column::TargetDatastore)
            .or_else(|| defaults.target_datastore());
        // Without the column the header has already said so, once for the whole file; a cell
        // its rule refused is already said too.
        if target_datastore.is_none() && self.header.has(Column::TargetDatastore) && !datastore_cell
        {
            self.fail(
                Column::TargetDatastore,
                "required unless [defaults] target_datastore is set",
            );
        }
        let replication_server = match self.cell(Column::ReplicationServer) {
            Some(server) if is_auto(server) => None,
            Some(_) => self.text(Column::ReplicationServer),
            None => defaults.replication_server(),
        };

        let settings = ReplicationSettings {
            rpo: self
                .parse(Column::Rpo, cells::parse_rpo)
                .unwrap_or(base.rpo),
            quiesce: self
                .parse(Column::Quiesce, cells::parse_bool)
                .unwrap_or(base.quiesce),
            network_compression: self
                .parse(Column::NetworkCompression, cells::parse_bool)
                .unwrap_or(base.network_compression),
            lwd_encryption: self
                .parse(Column::LwdEncryption, cells::parse_bool)
                .unwrap_or(base.lwd_encryption),
            auto_replicate_new_disks: self
                .parse(Column::AutoReplicateNewDisks, cells::parse_bool)
                .unwrap_or(base.auto_replicate_new_disks),
            disk_format: self
                .parse(Column::DiskFormat, cells::parse_disk_format)
                .unwrap_or(base.disk_format),
            ..self.mpit(defaults)
        };

        JobSpec {
            line: Some(self.line),
            vm,
            pairing: self.text(Column::Pairing).or_else(|| defaults.pairing()),
            target_datastore: target_datastore.unwrap_or_default(),
            storage_policy: self
                .text(Column::StoragePolicy)
                .or_else(|| defaults.storage_policy()),
            replication_server,
            settings,
            change_ticket: self.text(Column::ChangeTicket),
            notes: self.text(Column::Notes),
        }
    }

    /// MPIT instances and days (the rest of the settings left at their defaults). Days written
    /// in the row while the row's instances are zero is an error: MPIT is on only with
    /// instances, so such a row would silently not get the retention it asks for. Days that
    /// come from `[defaults]` are a retention for the rows that do turn MPIT on; when nobody
    /// gives days, MPIT keeps copies for [`cells::MPIT_DEFAULT_DAYS`].
    fn mpit(&mut self, defaults: &Defaults) -> ReplicationSettings {
        // A value that did not parse is already reported; judging the pair without it would
        // blame the other column for it.
        let instances_cell = self.parse(Column::MpitInstances, cells::parse_count);
        let instances_bad = instances_cell.is_none() && self.cell(Column::MpitInstances).is_some();
        let days_cell = self.parse(Column::MpitDays, cells::parse_count);
        let days_bad = days_cell.is_none() && self.cell(Column::MpitDays).is_some();
        let instances = instances_cell.or(defaults.mpit_instances).unwrap_or(0);
        let off = ReplicationSettings {
            mpit_instances: 0,
            mpit_days: 0,
            ..ReplicationSettings::default()
        };
        if instances == 0 {
            if let Some(days) = days_cell.filter(|&d| d > 0 && !instances_bad) {
                self.fail(
                    Column::MpitDays,
                    format!(
                        "mpit_days is {days} but mpit_instances is 0: point-in-time copies are \
                         kept only when mpit_instances is above zero; set it, or clear mpit_days"
                    ),
                );
            }
            return off;
        }
        let days = days_cell
            .or(defaults.mpit_days)
            .unwrap_or(cells::MPIT_DEFAULT_DAYS);
        if !instances_bad && !days_bad {
            if let Err((field, message)) = cells::check_mpit(instances, days) {
                let column = match field {
                    cells::MpitField::Instances => Column::MpitInstances,
                    cells::MpitField::Days => Column::MpitDays,
                };
                self.fail(column, message);
            }
        }
        ReplicationSettings {
            mpit_instances: instances,
            mpit_days: days,
            ..off
        }
    }
}

/// The VMs of the rows read so far, to refuse a VM listed twice.
#[derive(Default)]
pub(super) struct SeenVms {
    ids: HashMap<String, u64>,
    /// A name's first line, and that row's id.
    names: HashMap<String, (u64, Option<String>)>,
}

impl SeenVms {
    /// Two rows with one id are one VM. Two rows with one name (compared exactly, as vCenter
    /// does) are one VM too, unless both rows give an id and the ids differ: vCenter allows
    /// two VMs of one name in different folders, and the id tells them apart. A name or id its
    /// rule refused is not compared: that row has its problem already.
    pub(super) fn check(&mut self, row: &mut Row<'_>, vm: &VmRef) {
        let name = vm.name.as_ref().filter(|n| Text::VmName.check(n).is_ok());
        let id = vm.id.as_ref().filter(|id| Text::VmId.check(id).is_ok());
        let mut reported = false;
        if let Some(id) = id {
            match self.ids.get(id) {
                Some(first) => {
                    row.fail(
                        Column::VmId,
                        format!("VM id {id} is already listed on line {first}"),
                    );
                    reported = true;
                }
                None => {
                    self.ids.insert(id.clone(), row.line);
                }
            }
        }
        if let Some(name) = name {
            match self.names.get(name) {
                Some((first, first_id)) => {
                    let told_apart = matches!((first_id, id), (Some(a), Some(b)) if a != b);
                    if !told_apart && !reported {
                        let first = *first;
                        row.fail(
                            Column::VmName,
                            format!("VM \"{name}\" is already listed on line {first}"),
                        );
                    }
                }
                None => {
                    self.names.insert(name.clone(), (row.line, id.cloned()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
