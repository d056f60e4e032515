//! Validation of customer-managed CA bundles (`customerX509.cas`).
//!
//! A bundle is one or more PEM `CERTIFICATE` blocks. Every certificate must parse, be a CA
//! (basicConstraints cA=TRUE), allow certificate signing when it carries Key Usage, and be inside
//! its validity period. The text is stored exactly as sent; this module only decides whether it
//! is acceptable.

use chrono::{DateTime, Utc};
use x509_parser::prelude::*;

/// The largest bundle accepted, in bytes of PEM text.
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024;
/// The most certificates a bundle may hold.
pub const MAX_BUNDLE_CERTIFICATES: usize = 100;

/// Why a bundle was refused. `index` counts certificates from 1 in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleProblem {
    TooLarge,
    TooManyCertificates(usize),
    NoCertificate,
    BadPem(String),
    NotACertificate {
        index: usize,
        label: String,
    },
    Unparseable {
        index: usize,
        reason: String,
    },
    NotCa {
        index: usize,
        subject: String,
    },
    NoCertSignUsage {
        index: usize,
        subject: String,
    },
    NotYetValid {
        index: usize,
        subject: String,
    },
    Expired {
        index: usize,
        subject: String,
        not_after: String,
    },
}

impl std::fmt::Display for BundleProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge => write!(f, "the CA bundle is larger than {MAX_BUNDLE_BYTES} bytes"),
            Self::TooManyCertificates(n) => write!(
                f,
                "the CA bundle holds {n} certificates; at most {MAX_BUNDLE_CERTIFICATES} are allowed"
            ),
            Self::NoCertificate => f.write_str("no PEM CERTIFICATE block was found"),
            Self::BadPem(e) => write!(f, "the PEM text is malformed ({e})"),
            Self::NotACertificate { index, label } => {
                write!(f, "PEM block {index} is a {label:?}, not a CERTIFICATE")
            }
            Self::Unparseable { index, reason } => {
                write!(f, "certificate {index} is not valid X.509 ({reason})")
            }
            Self::NotCa { index, subject } => {
                write!(
                    f,
                    "certificate {index} ({subject}) is not a CA certificate (basicConstraints cA is not set)"
                )
            }
            Self::NoCertSignUsage { index, subject } => {
                write!(
                    f,
                    "certificate {index} ({subject}) has a key usage that does not allow certificate signing"
                )
            }
            Self::NotYetValid { index, subject } => {
                write!(f, "certificate {index} ({subject}) is not yet valid")
            }
            Self::Expired {
                index,
                subject,
                not_after,
            } => {
                write!(f, "certificate {index} ({subject}) expired at {not_after}")
            }
        }
    }
}

/// What was accepted: one entry per certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedCa {
    pub subject: String,
    pub not_after: DateTime<Utc>,
}

/// Validates a customer CA bundle at time `now`.
pub fn validate_bundle(text: &str, now: DateTime<Utc>) -> Result<Vec<AcceptedCa>, BundleProblem> {
    if text.len() > MAX_BUNDLE_BYTES {
        return Err(BundleProblem::TooLarge);
    }
    let blocks = ::pem::parse_many(text).map_err(|e| BundleProblem::BadPem(e.to_string()))?;
    // The pem crate passes over a BEGIN line that no END line closes: a bundle whose last
    // certificate is cut off would otherwise be accepted (and stored) as the ones before it.
    let begins = text.matches("-----BEGIN").count();
    if begins != blocks.len() {
        return Err(BundleProblem::BadPem(format!(
            "{} of {begins} PEM blocks are not closed by an END line",
            begins - blocks.len().min(begins)
        )));
    }
    if blocks.is_empty() {
        return Err(BundleProblem::NoCertificate);
    }
    if blocks.len() > MAX_BUNDLE_CERTIFICATES {
        return Err(BundleProblem::TooManyCertificates(blocks.len()));
    }
    let mut accepted = Vec::with_capacity(blocks.len());
    for (i, block) in blocks.iter().enumerate() {
        let index = i + 1;
        if block.tag() != "CERTIFICATE" {
            return Err(BundleProblem::NotACertificate {
                index,
                label: block.tag().to_owned(),
            });
        }
        let (rest, cert) =
            parse_x509_certificate(block.contents()).map_err(|e| BundleProblem::Unparseable {
                index,
                reason: e.to_string(),
            })?;
        if !rest.is_empty() {
            return Err(BundleProblem::Unparseable {
                index,
                reason: "trailing bytes".into(),
            });
        }
        let subject = cert.subject().to_string();
        let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        if !is_ca {
            return Err(BundleProblem::NotCa { index, subject });
        }
        match cert.key_usage() {
            Ok(Some(ku)) if !ku.value.key_cert_sign() => {
                return Err(BundleProblem::NoCertSignUsage { index, subject });
            }
            Err(e) => {
                return Err(BundleProblem::Unparseable {
                    index,
                    reason: e.to_string(),
                });
            }
            _ => {}
        }
        let not_before = cert.validity().not_before.timestamp();
        let not_after = cert.validity().not_after.timestamp();
        if now.timestamp() < not_before {
            return Err(BundleProblem::NotYetValid { index, subject });
        }
        let not_after = DateTime::from_timestamp(not_after, 0).unwrap_or(DateTime::<Utc>::MIN_UTC);
        if now > not_after {
            return Err(BundleProblem::Expired {
                index,
                subject,
                not_after: not_after.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            });
        }
        accepted.push(AcceptedCa { subject, not_after });
    }
    Ok(accepted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyAlgorithm, LeafRequest, ManagedCa, ManagedCaParams};

    fn ca_pem(now: DateTime<Utc>) -> (ManagedCa, String) {
        let ca = ManagedCa::create(
            "aaaaaaaaaaaaaaaaaaaaaaaa",
            &ManagedCaParams::default(),
            KeyAlgorithm::EcdsaP256,
            now,
        )
        .unwrap();
        let pem = ca.cert_pem();
        (ca, pem)
    }

    #[test]
    fn accepts_one_or_more_ca_certificates() {
        let now = Utc::now();
        let (_, a) = ca_pem(now);
        let (_, b) = ca_pem(now);
        assert_eq!(validate_bundle(&a, now).unwrap().len(), 1);
        let both = format!("subject=comment line\n{a}\n{b}");
        assert_eq!(validate_bundle(&both, now).unwrap().len(), 2);
    }

    #[test]
    fn refuses_garbage_leaves_and_expired() {
        let now = Utc::now();
        assert_eq!(
            validate_bundle("garbage", now),
            Err(BundleProblem::NoCertificate)
        );
        let (ca, pem) = ca_pem(now);
        let truncated = &pem[..pem.len() / 2];
        assert!(validate_bundle(truncated, now).is_err());
        let key = KeyAlgorithm::EcdsaP256.generate().unwrap();
        let (nb, na) = crate::leaf_validity(now, 1).unwrap();
        let leaf = ca
            .issue(
                &LeafRequest {
                    username: "u",
                    serial: 5,
                    not_before: nb,
                    not_after: na,
                },
                &key,
            )
            .unwrap();
        let leaf_pem = ::pem::encode(&::pem::Pem::new("CERTIFICATE", leaf.der));
        assert!(matches!(
            validate_bundle(&leaf_pem, now),
            Err(BundleProblem::NotCa { index: 1, .. })
        ));
        let later = now + chrono::Duration::days(365 * 11);
        assert!(matches!(
            validate_bundle(&pem, later),
            Err(BundleProblem::Expired { .. })
        ));
        let key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(matches!(
            validate_bundle(key_pem, now),
            Err(BundleProblem::NotACertificate { .. })
        ));
        let many = pem.repeat(MAX_BUNDLE_CERTIFICATES + 1);
        assert!(validate_bundle(&many, now).is_err());
    }
}
