//! The rules for one value, shared by CSV cells, `[defaults]` keys and flags so that all of them
//! accept and refuse the same things with the same words. Each returns the bare message; the
//! caller adds the position. A value quoted back in a message goes through [`quoted`], so that a
//! 100 KB cell or a NUL byte never reaches the operator's terminal as it is.

use crate::vr::model::DiskFormat;

/// The spec's range for `ConfigureReplicationSpec.rpo`.
pub const RPO_MINUTES: std::ops::RangeInclusive<u32> = 5..=1440;

/// Spellings accepted for booleans, as shown in the error message.
const BOOLEAN_SPELLINGS: &str = "true/false, yes/no, y/n, 1/0";

pub fn check_rpo(minutes: u32) -> Result<u32, String> {
    if RPO_MINUTES.contains(&minutes) {
        Ok(minutes)
    } else {
        Err(format!(
            "expected minutes between {} and {}, got {minutes}",
            RPO_MINUTES.start(),
            RPO_MINUTES.end()
        ))
    }
}

pub fn parse_rpo(cell: &str) -> Result<u32, String> {
    cell.parse::<u32>()
        .ok()
        .filter(|m| RPO_MINUTES.contains(m))
        .ok_or_else(|| {
            format!(
                "expected minutes between {} and {}, got {}",
                RPO_MINUTES.start(),
                RPO_MINUTES.end(),
                quoted(cell)
            )
        })
}

pub fn parse_bool(cell: &str) -> Result<bool, String> {
    match cell.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" => Ok(true),
        "false" | "no" | "n" | "0" => Ok(false),
        _ => Err(format!(
            "expected one of {BOOLEAN_SPELLINGS} (or empty for the default), got {}",
            quoted(cell)
        )),
    }
}

/// The spec sends MPIT counts as `int32`, so anything above `i32::MAX` could not be sent.
pub fn check_count(n: u32) -> Result<u32, String> {
    if i32::try_from(n).is_ok() {
        Ok(n)
    } else {
        Err(format!("must be at most {}, got {n}", i32::MAX))
    }
}

/// A non-negative whole number (MPIT instances or days).
pub fn parse_count(cell: &str) -> Result<u32, String> {
    match cell.parse::<i64>() {
        Ok(n) if n < 0 => Err(format!("must not be negative, got {}", quoted(cell))),
        Ok(n) => u32::try_from(n)
            .map_err(|_| format!("must be at most {}, got {}", i32::MAX, quoted(cell)))
            .and_then(check_count),
        Err(_) => Err(format!("expected a whole number, got {}", quoted(cell))),
    }
}

/// vSphere Replication keeps at most 24 point-in-time copies of a VM (instances a day × days);
/// the simulator enforces the same limit. Checked here so that a batch fails at import, not
/// VM by VM at submit.
pub const MPIT_MAX_COPIES: u32 = 24;

/// The retention of a VM whose MPIT is on and whose `mpit_days` nobody gave.
pub const MPIT_DEFAULT_DAYS: u32 = 1;

/// Which of the two MPIT values a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpitField {
    Instances,
    Days,
}

/// Checks MPIT that is on (`instances > 0`).
pub fn check_mpit(instances: u32, days: u32) -> Result<(), (MpitField, String)> {
    if days == 0 {
        return Err((
            MpitField::Days,
            format!("must be at least 1 when mpit_instances is above zero, got {days}"),
        ));
    }
    let copies = u64::from(instances) * u64::from(days);
    if copies > u64::from(MPIT_MAX_COPIES) {
        let field = if instances > MPIT_MAX_COPIES {
            MpitField::Instances
        } else {
            MpitField::Days
        };
        let unit = if days == 1 { "day" } else { "days" };
        return Err((
            field,
            format!(
                "vSphere Replication keeps at most {MPIT_MAX_COPIES} point-in-time copies: \
                 {instances} a day for {days} {unit} is {copies}"
            ),
        ));
    }
    Ok(())
}

pub fn parse_disk_format(cell: &str) -> Result<DiskFormat, String> {
    cell.parse::<DiskFormat>()
        .map_err(|choices| format!("{choices}, got {}", quoted(cell)))
}

/// The rule for `vm_id`: the API's id of a VM is `VirtualMachine:<moref>:<vCenter uuid>`
/// (e.g. `VirtualMachine:vm-38:e594ad24-…`). We require the `VirtualMachine:` prefix, a
/// non-empty managed-object reference and a non-empty vCenter part, and no whitespace; we do not
/// check that the moref is `vm-<n>` or that the last part is a UUID, since the server is the
/// authority on its ids and a lookup fails clearly anyway. What this catches is the usual
/// mistake: a bare moref (`vm-38`) copied from the vSphere Client's URL, or a VM name put in the
/// id column.
pub fn check_vm_id(id: &str) -> Result<(), String> {
    const EXAMPLE: &str = "VirtualMachine:vm-38:<vCenter uuid>";
    Text::VmId.check(id)?;
    if id.chars().any(char::is_whitespace) {
        return Err(format!(
            "a VM id has no spaces (expected {EXAMPLE}), got {}",
            quoted(id)
        ));
    }
    let Some(rest) = id.strip_prefix("VirtualMachine:") else {
        let hint = if id.starts_with("vm-") {
            "; that is a bare managed-object reference, add the prefix and the vCenter uuid"
        } else {
            ""
        };
        return Err(format!("expected {EXAMPLE}, got {}{hint}", quoted(id)));
    };
    match rest.split_once(':') {
        Some((moref, vc)) if !moref.is_empty() && !vc.is_empty() => Ok(()),
        _ => Err(format!(
            "expected {EXAMPLE}: the managed-object reference or the vCenter uuid is missing, got {}",
            quoted(id)
        )),
    }
}

/// The longest VM name vCenter accepts: 80 characters since vCenter Server 5.0 (VMware KB
/// 2051649). Datastores, folders and clusters share the limit; vCenter truncates a longer
/// datastore name rather than refusing it, so a longer name in a file can match nothing.
pub const VSPHERE_NAME_MAX: usize = 80;

/// The longest host name DNS allows (RFC 1035): a pairing is named by its remote vCenter's
/// name, and a VR server by its own.
const HOST_NAME_MAX: usize = 253;

/// Names and free text an operator types, each with the most vSphere holds (or, where vSphere
/// documents no limit, a cap far above any real value). A name that vSphere could not hold matches nothing, yet it
/// would reach the appliance in every lookup of its group (a 100 KB name once made the HTTP
/// client refuse the whole request): refused at the door instead, with its line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    VmName,
    VmId,
    Datastore,
    StoragePolicy,
    Pairing,
    ReplicationServer,
    ChangeTicket,
    Notes,
    /// A `--match`/`--exclude` glob over VM names.
    Pattern,
}

impl Text {
    /// What the value is, in the message.
    fn what(self) -> &'static str {
        match self {
            Text::VmName => "a VM name",
            Text::VmId => "a VM id",
            Text::Datastore => "a datastore name",
            Text::StoragePolicy => "a storage policy name",
            Text::Pairing => "a pairing (remote vCenter name or pairing id)",
            Text::ReplicationServer => "a VR server name",
            Text::ChangeTicket => "a change ticket",
            Text::Notes => "notes",
            Text::Pattern => "a name pattern",
        }
    }

    /// The most characters the value may have, and who says so.
    fn limit(self) -> (usize, &'static str) {
        const VSPHERE: &str = "vSphere allows";
        // No documented limit: these are caps far above any real value, so that a pasted
        // document (or a binary file read as CSV) is refused instead of carried into every
        // request and report.
        const VRBULK: &str = "vrbulk takes";
        match self {
            Text::VmName | Text::Datastore => (VSPHERE_NAME_MAX, VSPHERE),
            // `VirtualMachine:` + a managed-object reference + `:` + a 36-character uuid.
            Text::VmId => (128, VRBULK),
            Text::Pairing | Text::ReplicationServer => (HOST_NAME_MAX, VRBULK),
            Text::StoragePolicy => (255, VRBULK),
            Text::ChangeTicket => (255, VRBULK),
            Text::Notes => (2000, VRBULK),
            // A pattern's characters besides `*` each match one character of a VM name; see
            // `check`.
            Text::Pattern => (VSPHERE_NAME_MAX, VSPHERE),
        }
    }

    /// Checks `value` (already trimmed): its length, and no control characters (notes may
    /// span lines and hold tabs: a quoted CSV cell can).
    pub fn check(self, value: &str) -> Result<(), String> {
        let (max, who) = self.limit();
        let counted = match self {
            Text::Pattern => value.chars().filter(|&c| c != '*').count(),
            _ => value.chars().count(),
        };
        if counted > max {
            let what = self.what();
            return Err(match self {
                Text::Pattern => format!(
                    "{} can match no VM: it needs at least {counted} characters and {who} at \
                     most {max} in a VM name",
                    quoted(value)
                ),
                _ => format!(
                    "{} is {counted} characters long; {who} at most {max} in {what}",
                    quoted(value)
                ),
            });
        }
        let allowed = |c: char| self == Text::Notes && matches!(c, '\n' | '\r' | '\t');
        if let Some((at, c)) = value
            .chars()
            .enumerate()
            .find(|&(_, c)| c.is_control() && !allowed(c))
        {
            return Err(format!(
                "{} has a control character (U+{:04X}) at character {}, which has no place \
                 in {} (a binary file, or text pasted from another tool?)",
                quoted(value),
                u32::from(c),
                at + 1,
                self.what()
            ));
        }
        Ok(())
    }
}

/// The most characters of a value quoted back in a message.
const QUOTED_MAX: usize = 40;

/// `value` in double quotes for a message: control characters escaped (`\0`, `\u{7}`), and
/// cut after [`QUOTED_MAX`] characters with `…`, so that no message is longer than its words.
pub fn quoted(value: &str) -> String {
    let mut shown = String::with_capacity(value.len().min(QUOTED_MAX * 4) + 2);
    shown.push('"');
    for (i, c) in value.chars().enumerate() {
        if i == QUOTED_MAX {
            shown.push('…');
            break;
        }
        if c.is_control() {
            shown.extend(c.escape_debug());
        } else {
            shown.push(c);
        }
    }
    shown.push('"');
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpo_accepts_the_spec_range_only() {
        assert_eq!(parse_rpo("5"), Ok(5));
        assert_eq!(parse_rpo("1440"), Ok(1440));
        assert_eq!(
            parse_rpo("2").unwrap_err(),
            "expected minutes between 5 and 1440, got \"2\""
        );
        assert!(parse_rpo("1441").is_err());
        assert!(parse_rpo("abc").is_err());
        assert!(parse_rpo("-5").is_err());
        assert!(parse_rpo("60.0").is_err());
        assert!(check_rpo(4).is_err());
        assert_eq!(check_rpo(60), Ok(60));
    }

    #[test]
    fn booleans_take_the_usual_spellings_in_any_case() {
        for t in ["true", "TRUE", "Yes", "y", "1"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["false", "No", "N", "0"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        let err = parse_bool("maybe").unwrap_err();
        assert!(err.contains("true/false, yes/no, y/n, 1/0"), "{err}");
        assert!(err.ends_with("got \"maybe\""), "{err}");
    }

    #[test]
    fn counts_are_non_negative_and_fit_the_spec_int32() {
        assert_eq!(parse_count("0"), Ok(0));
        assert_eq!(parse_count("24"), Ok(24));
        assert_eq!(
            parse_count("-1").unwrap_err(),
            "must not be negative, got \"-1\""
        );
        assert!(parse_count("three").unwrap_err().contains("whole number"));
        assert!(parse_count("2147483648").unwrap_err().contains("at most"));
        assert!(parse_count("99999999999").unwrap_err().contains("at most"));
    }

    #[test]
    fn mpit_keeps_at_most_24_copies_for_at_least_a_day() {
        assert_eq!(check_mpit(4, 3), Ok(()));
        assert_eq!(check_mpit(24, 1), Ok(()));
        assert_eq!(check_mpit(1, 24), Ok(()));
        assert_eq!(check_mpit(4, 0).unwrap_err().0, MpitField::Days);
        let (field, message) = check_mpit(5, 5).unwrap_err();
        assert_eq!(field, MpitField::Days);
        assert_eq!(
            message,
            "vSphere Replication keeps at most 24 point-in-time copies: 5 a day for 5 days is 25"
        );
        assert_eq!(check_mpit(25, 1).unwrap_err().0, MpitField::Instances);
        assert_eq!(
            check_mpit(u32::MAX, u32::MAX).unwrap_err().0,
            MpitField::Instances
        );
    }

    #[test]
    fn disk_format_is_the_spec_enum_in_any_case() {
        assert_eq!(parse_disk_format("thin"), Ok(DiskFormat::Thin));
        assert_eq!(
            parse_disk_format("same_as_source"),
            Ok(DiskFormat::SameAsSource)
        );
        let err = parse_disk_format("sparse").unwrap_err();
        assert!(err.starts_with("expected one of SAME_AS_SOURCE"), "{err}");
        assert!(err.ends_with("got \"sparse\""), "{err}");
    }

    #[test]
    fn vm_id_needs_the_api_shape() {
        assert!(check_vm_id("VirtualMachine:vm-38:e594ad24-5f75-41e3-a276-88a2116dbed0").is_ok());
        assert!(check_vm_id("VirtualMachine:vm-38:vc").is_ok());
        assert!(check_vm_id("vm-38")
            .unwrap_err()
            .contains("bare managed-object"));
        assert!(check_vm_id("VirtualMachine:vm-38").is_err());
        assert!(check_vm_id("VirtualMachine::vc").is_err());
        assert!(check_vm_id("app 001").unwrap_err().contains("no spaces"));
        assert!(check_vm_id("virtualmachine:vm-38:vc").is_err());
        assert!(check_vm_id("VirtualMachine:vm-38\0:vc")
            .unwrap_err()
            .contains("control character (U+0000)"));
    }

    #[test]
    fn names_longer_than_vsphere_allows_are_refused_without_being_echoed() {
        assert_eq!(Text::VmName.check(&"a".repeat(80)), Ok(()));
        let long = "a".repeat(100_000);
        let err = Text::VmName.check(&long).unwrap_err();
        assert_eq!(
            err,
            format!(
                "\"{}…\" is 100000 characters long; vSphere allows at most 80 in a VM name",
                "a".repeat(40)
            )
        );
        // Characters, not bytes: 80 of them in any script is a name vCenter takes.
        assert_eq!(Text::VmName.check(&"ü".repeat(80)), Ok(()));
        assert!(Text::Datastore.check(&"d".repeat(81)).is_err());
        assert!(Text::Notes.check(&"n".repeat(2000)).is_ok());
        assert!(Text::Notes.check(&"n".repeat(2001)).is_err());
    }

    #[test]
    fn control_characters_are_refused_and_shown_escaped() {
        assert_eq!(
            Text::VmName.check("app\0x").unwrap_err(),
            "\"app\\0x\" has a control character (U+0000) at character 4, which has no place \
             in a VM name (a binary file, or text pasted from another tool?)"
        );
        assert!(Text::Datastore.check("ds\u{7}").is_err());
        assert!(Text::ChangeTicket.check("CHG\n1").is_err());
        // Notes may span lines: a quoted CSV cell can.
        assert_eq!(Text::Notes.check("two\nlines\tand a tab"), Ok(()));
        assert!(Text::Notes.check("nul\0").is_err());
    }

    #[test]
    fn a_pattern_is_measured_without_its_stars() {
        assert_eq!(
            Text::Pattern.check(&format!("*{}*", "a".repeat(80))),
            Ok(())
        );
        let err = Text::Pattern.check(&"a?".repeat(41)).unwrap_err();
        assert!(
            err.contains("can match no VM: it needs at least 82 characters"),
            "{err}"
        );
    }

    #[test]
    fn quoted_values_are_short_and_printable() {
        assert_eq!(quoted("2"), "\"2\"");
        assert_eq!(quoted("a\u{1b}[31m"), "\"a\\u{1b}[31m\"");
        assert_eq!(quoted(&"x".repeat(41)), format!("\"{}…\"", "x".repeat(40)));
    }
}
