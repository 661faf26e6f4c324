//! The rules for one value, shared by CSV cells and `[defaults]` keys so that both accept and
//! refuse the same things with the same words. Each returns the bare message; the caller adds
//! the position.

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
                "expected minutes between {} and {}, got \"{cell}\"",
                RPO_MINUTES.start(),
                RPO_MINUTES.end()
            )
        })
}

pub fn parse_bool(cell: &str) -> Result<bool, String> {
    match cell.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" => Ok(true),
        "false" | "no" | "n" | "0" => Ok(false),
        _ => Err(format!(
            "expected one of {BOOLEAN_SPELLINGS} (or empty for the default), got \"{cell}\""
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
        Ok(n) if n < 0 => Err(format!("must not be negative, got \"{cell}\"")),
        Ok(n) => u32::try_from(n)
            .map_err(|_| format!("must be at most {}, got \"{cell}\"", i32::MAX))
            .and_then(check_count),
        Err(_) => Err(format!("expected a whole number, got \"{cell}\"")),
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
        .map_err(|choices| format!("{choices}, got \"{cell}\""))
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
    if id.chars().any(char::is_whitespace) {
        return Err(format!(
            "a VM id has no spaces (expected {EXAMPLE}), got \"{id}\""
        ));
    }
    let Some(rest) = id.strip_prefix("VirtualMachine:") else {
        let hint = if id.starts_with("vm-") {
            "; that is a bare managed-object reference, add the prefix and the vCenter uuid"
        } else {
            ""
        };
        return Err(format!("expected {EXAMPLE}, got \"{id}\"{hint}"));
    };
    match rest.split_once(':') {
        Some((moref, vc)) if !moref.is_empty() && !vc.is_empty() => Ok(()),
        _ => Err(format!(
            "expected {EXAMPLE}: the managed-object reference or the vCenter uuid is missing, got \"{id}\""
        )),
    }
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
    }
}
