//! `kms-pam verify-bundle FILE --gateway-key KEY --kms-key KEY`: checks a session exported with
//! `pam sessions export`, without KMS. The keys to trust come from the verifier: each flag takes
//! either the base64 public key, or its `SHA256:…` fingerprint, in which case the key the bundle
//! carries is used only if its fingerprint matches.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;
use kms_pam::audit::evidence::{SessionBundle, BUNDLE_FORMAT};
use kms_pam::kms::api::PublicKey;

use super::verdict;
use crate::globals::Globals;

/// `verify-bundle FILE --gateway-key KEY --kms-key KEY`.
#[derive(Debug, Args)]
pub(crate) struct VerifyBundleArgs {
    /// The bundle (`pam sessions export ID > FILE`); `-` reads standard input.
    file: PathBuf,
    /// The gateway's audit public key (base64), or its fingerprint (`SHA256:…`, as
    /// `kms-pam gateway list` and the gateway's log show it).
    #[arg(long, value_name = "KEY")]
    gateway_key: String,
    /// KMS's audit public key (base64), or its fingerprint (`SHA256:…`, as `kms-pam server`
    /// logged it when it created DATA/audit.key).
    #[arg(long, value_name = "KEY")]
    kms_key: String,
    /// Accept a bundle KMS signed no head for (a session still active when exported): it is
    /// then reported as `unsealed: N events so far` and exits 0 if nothing else is wrong.
    #[arg(long)]
    allow_unsealed: bool,
}

/// Runs `verify-bundle`.
pub(crate) async fn run(args: VerifyBundleArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let text = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read the bundle from stdin")?
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?
    };
    let bundle: SessionBundle = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a kms-pam session bundle", args.file.display()))?;
    if bundle.format != BUNDLE_FORMAT {
        bail!(
            "{} is a {:?} bundle; this version reads {BUNDLE_FORMAT:?}",
            args.file.display(),
            bundle.format
        );
    }
    let gateway = trusted("gateway", &args.gateway_key, bundle.gateway_key.as_ref())?;
    let kms = trusted("KMS", &args.kms_key, Some(&bundle.kms_key))?;
    let verdict = bundle.verify(&gateway, &kms);
    verdict::report(&verdict, globals.json(), args.allow_unsealed)
}

/// The key to trust: given in full, or named by fingerprint and taken from the bundle.
fn trusted(whose: &str, given: &str, in_bundle: Option<&PublicKey>) -> anyhow::Result<PublicKey> {
    let given = given.trim();
    if given.starts_with("SHA256:") {
        return match in_bundle {
            Some(key) if key.fingerprint() == given => Ok(*key),
            Some(key) => bail!(
                "the bundle's {whose} key is {}, not the {given} you trust",
                key.fingerprint()
            ),
            None => bail!("the bundle carries no {whose} key; pass the key itself"),
        };
    }
    PublicKey::from_base64(given).with_context(|| {
        format!(
            "--{}-key is neither a public key nor a SHA256: fingerprint",
            whose.to_lowercase()
        )
    })
}

#[cfg(test)]
mod tests {
    use kms_pam::audit::evidence::signing::SigningKey;

    use super::*;

    #[test]
    fn a_fingerprint_picks_the_bundles_key_only_when_it_matches() {
        let public = SigningKey::generate().unwrap().0.public_key();
        let other = SigningKey::generate().unwrap().0.public_key();
        assert_eq!(
            trusted("KMS", &public.fingerprint(), Some(&public)).unwrap(),
            public
        );
        assert_eq!(trusted("KMS", &public.to_base64(), None).unwrap(), public);
        let err = trusted("KMS", &other.fingerprint(), Some(&public)).unwrap_err();
        assert!(err.to_string().contains("not the SHA256:"), "{err}");
        assert!(trusted("gateway", "nonsense", Some(&public)).is_err());
        assert!(trusted("gateway", &public.fingerprint(), None).is_err());
    }
}
