//! How account-level commands name an account (`RESOURCE/ACCOUNT`), and the command that opens
//! access to one.

use std::fmt;
use std::str::FromStr;

/// `RESOURCE/ACCOUNT`, as every account-level command names its account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AccountRef {
    /// The resource.
    pub resource: String,
    /// The account on it.
    pub account: String,
}

impl FromStr for AccountRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((resource, account))
                if !resource.is_empty() && !account.is_empty() && !account.contains('/') =>
            {
                Ok(Self {
                    resource: resource.to_owned(),
                    account: account.to_owned(),
                })
            }
            _ => Err(format!(
                "expected RESOURCE/ACCOUNT (e.g. prod-k8s/admin), got {s:?}"
            )),
        }
    }
}

impl fmt::Display for AccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.resource, self.account)
    }
}

/// The command a user runs to get access to an account.
pub(crate) fn access_command(resource: &str, account: &str) -> String {
    format!("kms-pam pam access {resource}/{account}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_references() {
        let parsed: AccountRef = "prod-k8s/admin".parse().unwrap();
        assert_eq!(
            (parsed.resource.as_str(), parsed.account.as_str()),
            ("prod-k8s", "admin")
        );
        assert_eq!(parsed.to_string(), "prod-k8s/admin");
        for bad in ["prod", "/admin", "prod/", "a/b/c", ""] {
            assert!(bad.parse::<AccountRef>().is_err(), "{bad}");
        }
    }
}
