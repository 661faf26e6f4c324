//! Choosing the pairing a job asks for: by remote vCenter name, by pairing id, or the only one.

use std::fmt;

use thiserror::Error;

use crate::vr::model::Pairing;

/// The pairing asked for is not one the appliance has, or several exist and none was named.
/// Each says which pairings there are, for the operator to pick from.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PairingError {
    #[error("no pairing with remote vCenter or id `{wanted}`; {known}")]
    Unknown { wanted: String, known: Known },

    #[error(
        "{} pairings exist, so name one (--pairing, the CSV's `pairing` column, or [defaults] \
         pairing); {known}",
        .known.0.len()
    )]
    NotNamed { known: Known },
}

/// The pairings there are, as `remote vCenter (pairing id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known(pub Vec<String>);

impl Known {
    fn of(pairings: &[Pairing]) -> Known {
        Known(
            pairings
                .iter()
                .map(|p| {
                    format!(
                        "{} ({})",
                        p.remote_vc_server.name.as_deref().unwrap_or("?"),
                        p.pairing_id
                    )
                })
                .collect(),
        )
    }
}

impl fmt::Display for Known {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("this site has no pairing; pair the sites in the vSphere Client first")
        } else {
            write!(f, "known pairings: {}", self.0.join(", "))
        }
    }
}

/// The pairing `wanted` names (remote vCenter name, case-insensitive, or pairing id), or the
/// only pairing when nothing is named.
pub fn choose_pairing<'a>(
    pairings: &'a [Pairing],
    wanted: Option<&str>,
) -> Result<&'a Pairing, PairingError> {
    match wanted.map(str::trim).filter(|w| !w.is_empty()) {
        Some(w) => pairings
            .iter()
            .find(|p| {
                p.pairing_id.eq_ignore_ascii_case(w)
                    || p.remote_vc_server
                        .name
                        .as_deref()
                        .is_some_and(|n| n.eq_ignore_ascii_case(w))
            })
            .ok_or_else(|| PairingError::Unknown {
                wanted: w.to_string(),
                known: Known::of(pairings),
            }),
        None if pairings.len() == 1 => Ok(&pairings[0]),
        None => Err(PairingError::NotNamed {
            known: Known::of(pairings),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vr::model::ServerInfo;

    fn pairing(id: &str, remote: &str) -> Pairing {
        Pairing {
            pairing_id: id.into(),
            local_vc_server: ServerInfo::default(),
            remote_vc_server: ServerInfo {
                name: Some(remote.into()),
                ..ServerInfo::default()
            },
            local_vrms: None,
            remote_vrms: None,
        }
    }

    #[test]
    fn picks_by_remote_name_or_id_or_the_only_one() {
        let one = [pairing("p-1", "vc-b.corp.local")];
        assert_eq!(choose_pairing(&one, None).unwrap().pairing_id, "p-1");
        assert_eq!(
            choose_pairing(&one, Some("VC-B.corp.local"))
                .unwrap()
                .pairing_id,
            "p-1"
        );
        let two = [pairing("p-1", "vc-b"), pairing("p-2", "vc-c")];
        assert_eq!(choose_pairing(&two, Some("p-2")).unwrap().pairing_id, "p-2");
        let err = choose_pairing(&two, None).unwrap_err().to_string();
        assert!(err.contains("vc-b (p-1), vc-c (p-2)"), "{err}");
        let err = choose_pairing(&two, Some("vc-x")).unwrap_err().to_string();
        assert!(
            err.contains("`vc-x`") && err.contains("vc-c (p-2)"),
            "{err}"
        );
        let none = choose_pairing(&[], None).unwrap_err().to_string();
        assert!(
            none.ends_with("this site has no pairing; pair the sites in the vSphere Client first"),
            "{none}"
        );
    }
}
