//! How `pam sessions verify` and `verify-bundle` report a verification: one line (or the JSON
//! report) and an exit code per verdict, as docs/cli.md lists them.

use std::process::ExitCode;

use kms_pam::kms::api::ChainReport;

use crate::output;

/// Exit code: a recorded event or KMS's signed head was changed.
pub(crate) const ALTERED: u8 = 3;
/// Exit code: events are missing from the end.
pub(crate) const TRUNCATED: u8 = 4;
/// Exit code: the session's metadata is not what was signed.
pub(crate) const METADATA_CHANGED: u8 = 5;
/// Exit code: a verdict this version does not know (a newer KMS).
pub(crate) const UNKNOWN: u8 = 6;
/// Exit code: the record holds so far but KMS signed no head for it (the session has not
/// ended, or nobody connected through it, or the head was deleted), without `--allow-unsealed`.
pub(crate) const UNSEALED: u8 = 7;

/// Prints the verdict and returns its exit code. An unsealed record exits [`UNSEALED`] unless
/// the caller accepts one (`--allow-unsealed`).
pub(crate) fn report(
    verdict: &ChainReport,
    json: bool,
    allow_unsealed: bool,
) -> anyhow::Result<ExitCode> {
    if json {
        output::print_json(verdict)?;
    } else {
        output::print(&format!("{}\n", line(verdict)))?;
    }
    Ok(ExitCode::from(exit_code(verdict, allow_unsealed)))
}

fn exit_code(verdict: &ChainReport, allow_unsealed: bool) -> u8 {
    match verdict {
        ChainReport::Intact { sealed: false, .. } if !allow_unsealed => UNSEALED,
        other => code(other),
    }
}

/// The exit code of a verdict: 0 when intact (sealed or not).
pub(crate) fn code(verdict: &ChainReport) -> u8 {
    match verdict {
        ChainReport::Intact { .. } => 0,
        ChainReport::Altered { .. } => ALTERED,
        ChainReport::Truncated { .. } => TRUNCATED,
        ChainReport::MetadataChanged { .. } => METADATA_CHANGED,
        _ => UNKNOWN,
    }
}

/// `intact (12 events, signed by KMS)`, `altered at seq 3 (EVENT): reason`,
/// `truncated: reason`, `metadata changed (user, reason): …`.
pub(crate) fn line(verdict: &ChainReport) -> String {
    match verdict {
        ChainReport::Intact {
            count,
            sealed: true,
        } => format!("intact ({count} events, head signed by KMS)"),
        // Not "intact": without KMS's head nothing says no events followed these.
        ChainReport::Intact { count, .. } => format!(
            "unsealed: {count} events so far, no head signed by KMS (the session has not \
             ended, or nobody connected through its gateway, or the head and events were \
             deleted)"
        ),
        ChainReport::Altered {
            seq,
            event_id,
            reason,
        } => match (seq, event_id) {
            (Some(seq), Some(id)) => format!("altered at seq {seq} ({id}): {reason}"),
            (Some(seq), None) => format!("altered at seq {seq}: {reason}"),
            _ => format!("altered: {reason}"),
        },
        ChainReport::Truncated { reason, .. } => format!("truncated: {reason}"),
        ChainReport::MetadataChanged { fields, reason } => {
            format!("metadata changed ({}): {reason}", fields.join(", "))
        }
        _ => "not shown intact: this version of kms-pam does not know the verdict; upgrade it \
              to see why"
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_verdict_has_its_line_and_exit_code() {
        let cases = [
            (
                ChainReport::Intact {
                    count: 12,
                    sealed: true,
                },
                "intact (12 events, head signed by KMS)",
                0,
            ),
            (
                ChainReport::Altered {
                    seq: Some(3),
                    event_id: Some("e3".into()),
                    reason: "not signed".into(),
                },
                "altered at seq 3 (e3): not signed",
                ALTERED,
            ),
            (
                ChainReport::Truncated {
                    stored: 3,
                    expected: Some(5),
                    reason: "2 gone".into(),
                },
                "truncated: 2 gone",
                TRUNCATED,
            ),
            (
                ChainReport::MetadataChanged {
                    fields: vec!["user".into(), "reason".into()],
                    reason: "edited".into(),
                },
                "metadata changed (user, reason): edited",
                METADATA_CHANGED,
            ),
        ];
        for (verdict, text, exit) in cases {
            assert_eq!(line(&verdict), text);
            assert_eq!(code(&verdict), exit);
        }
        let unsealed = ChainReport::Intact {
            count: 4,
            sealed: false,
        };
        assert!(line(&unsealed).starts_with("unsealed: 4 events so far"));
        assert_eq!(exit_code(&unsealed, false), UNSEALED);
        assert_eq!(exit_code(&unsealed, true), 0);
        assert!(line(&ChainReport::Unknown).starts_with("not shown intact"));
        assert_eq!(code(&ChainReport::Unknown), UNKNOWN);
    }
}
