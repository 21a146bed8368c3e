//! The Sessions list as a download: CSV (fields guarded against spreadsheet formulas) or JSON,
//! each row what the table shows, with the command count and duration.

use std::time::SystemTime;

use crate::kms::api::SessionView;

/// One CSV field: quoted, and never read as a formula by a spreadsheet.
fn csv_field(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

/// A session as the list exports it: what the table shows, its command count and duration too.
#[derive(serde::Serialize)]
pub(super) struct ExportRow<'a> {
    #[serde(flatten)]
    view: &'a SessionView,
    /// Its kubectl commands, counted as the session page groups them.
    commands: u64,
    /// From its start to its end (or to now, while it is active), in seconds.
    duration_secs: u64,
}

impl<'a> ExportRow<'a> {
    pub(super) fn new(view: &'a SessionView, commands: u64, now: SystemTime) -> Self {
        let s = &view.session;
        let end = s.ended_at.unwrap_or(now);
        Self {
            view,
            commands,
            duration_secs: end
                .duration_since(s.created_at)
                .unwrap_or_default()
                .as_secs(),
        }
    }
}

pub(super) fn csv(views: &[SessionView], counts: &[u64], now: SystemTime) -> String {
    let mut out = String::from("id,user,resource,account,gateway,status,end_cause,created_at,expires_at,ended_at,reason,commands,duration_secs,identity_issuer,identity_subject,identity_email\r\n");
    for (v, &commands) in views.iter().zip(counts) {
        let row = ExportRow::new(v, commands, now);
        let s = &v.session;
        let fields = [
            s.id.to_string(),
            s.user.clone(),
            s.resource.clone(),
            s.account.clone(),
            s.gateway.clone(),
            s.status.as_str().to_owned(),
            v.end_cause
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            crate::time::format_rfc3339(s.created_at),
            crate::time::format_rfc3339(s.expires_at),
            s.ended_at
                .map(crate::time::format_rfc3339)
                .unwrap_or_default(),
            s.reason.clone().unwrap_or_default(),
            row.commands.to_string(),
            row.duration_secs.to_string(),
            v.identity
                .as_ref()
                .map(|i| i.issuer.clone())
                .unwrap_or_default(),
            v.identity
                .as_ref()
                .map(|i| i.subject.clone())
                .unwrap_or_default(),
            v.identity
                .as_ref()
                .and_then(|i| i.email.clone())
                .unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}
