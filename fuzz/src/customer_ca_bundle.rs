//! Properties of the customer CA bundle validator (`customer_ca::validate_bundle`).
//!
//! Shared by the `customer_ca_bundle` fuzz target and
//! `crates/dbcerts-ca/tests/bundle_properties.rs`.

use chrono::{DateTime, TimeZone, Utc};
use dbcerts_ca::customer_ca::{
    AcceptedCa, BundleProblem, MAX_BUNDLE_BYTES, MAX_BUNDLE_CERTIFICATES, validate_bundle,
};
use x509_parser::prelude::*;

/// The time the fuzz target validates at: inside the validity of the seed certificates
/// (issued in 2026 for ten years), fixed so that runs are reproducible.
pub fn fixed_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid time")
}

/// Everything this module checks, on one fuzz input.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = check_bundle(&text, fixed_now());
}

/// `validate_bundle(text, now)`, with its result checked against an independent reading of the
/// same PEM blocks. Returns the result.
pub fn check_bundle(text: &str, now: DateTime<Utc>) -> Result<Vec<AcceptedCa>, BundleProblem> {
    let result = validate_bundle(text, now);
    if text.len() > MAX_BUNDLE_BYTES {
        assert_eq!(result, Err(BundleProblem::TooLarge));
        return result;
    }
    let blocks = ::pem::parse_many(text);
    match &result {
        Ok(accepted) => {
            let blocks = blocks.as_ref().expect("accepted text is valid PEM");
            assert!(!accepted.is_empty(), "an empty bundle accepted");
            assert_eq!(
                text.matches("-----BEGIN").count(),
                blocks.len(),
                "accepted a bundle with a BEGIN line no END closes"
            );
            assert!(accepted.len() <= MAX_BUNDLE_CERTIFICATES);
            assert_eq!(accepted.len(), blocks.len());
            let mut latest_start = i64::MIN;
            let mut earliest_end = i64::MAX;
            for (ca, block) in accepted.iter().zip(blocks) {
                let (start, end) = assert_acceptable(block, ca, now);
                latest_start = latest_start.max(start);
                earliest_end = earliest_end.min(end);
            }
            // The blocks re-encoded canonically (comments, line lengths and blank lines
            // dropped) are judged the same.
            let canonical: String = blocks.iter().map(::pem::encode).collect();
            if canonical.len() <= MAX_BUNDLE_BYTES {
                assert_eq!(validate_bundle(&canonical, now), result);
            }
            // Still accepted at both ends of the window every certificate is valid in.
            for edge in [latest_start, earliest_end] {
                let at = DateTime::from_timestamp(edge, 0).expect("an accepted time");
                assert_eq!(
                    validate_bundle(text, at),
                    result,
                    "refused at {at}, inside every certificate's validity"
                );
            }
        }
        Err(problem) => {
            let _ = problem.to_string();
            // A BEGIN line that no END line closes: the pem crate skips it, dbcerts refuses it.
            let unclosed = blocks
                .as_ref()
                .is_ok_and(|b| text.matches("-----BEGIN").count() != b.len());
            if unclosed {
                assert!(matches!(problem, BundleProblem::BadPem(_)), "{problem:?}");
            } else {
                check_refusal(problem, blocks.as_deref().ok(), now);
            }
        }
    }
    // Prose before the first block (openssl's `subject=` lines) changes nothing.
    let commented = format!("subject=CN = comment, O = dbcerts\n{text}");
    if commented.len() <= MAX_BUNDLE_BYTES {
        assert_eq!(validate_bundle(&commented, now), result);
    }
    result
}

/// One accepted block: a CERTIFICATE that parses whole, is a CA, may sign certificates and is
/// valid at `now`. Returns its validity (Unix seconds).
fn assert_acceptable(block: &::pem::Pem, ca: &AcceptedCa, now: DateTime<Utc>) -> (i64, i64) {
    assert_eq!(block.tag(), "CERTIFICATE");
    let (rest, cert) = parse_x509_certificate(block.contents()).expect("accepted block parses");
    assert!(rest.is_empty(), "accepted block has trailing bytes");
    assert!(
        matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca),
        "a certificate that is not a CA was accepted: {}",
        cert.subject()
    );
    match cert.key_usage() {
        Ok(None) => {}
        Ok(Some(ku)) => assert!(ku.value.key_cert_sign(), "accepted without keyCertSign"),
        Err(e) => panic!("accepted with an unreadable key usage: {e}"),
    }
    let start = cert.validity().not_before.timestamp();
    let end = cert.validity().not_after.timestamp();
    assert!(start <= now.timestamp(), "accepted before notBefore");
    assert!(now.timestamp() <= end, "accepted after notAfter");
    assert_eq!(ca.subject, cert.subject().to_string());
    assert_eq!(ca.not_after.timestamp(), end);
    (start, end)
}

/// A refusal names a real problem of the block it points at.
fn check_refusal(problem: &BundleProblem, blocks: Option<&[::pem::Pem]>, now: DateTime<Utc>) {
    let block = |index: usize| -> &::pem::Pem {
        let blocks = blocks.expect("a block-level problem implies valid PEM");
        assert!(
            index >= 1 && index <= blocks.len(),
            "index {index} out of range"
        );
        &blocks[index - 1]
    };
    let cert_of = |index: usize| {
        let (_, cert) = parse_x509_certificate(block(index).contents())
            .expect("a certificate-level problem implies a parsed certificate");
        cert
    };
    match problem {
        BundleProblem::TooLarge => panic!("TooLarge for a bundle within the limit"),
        BundleProblem::TooManyCertificates(n) => {
            assert!(*n > MAX_BUNDLE_CERTIFICATES);
            assert_eq!(Some(*n), blocks.map(<[_]>::len));
        }
        BundleProblem::NoCertificate => assert_eq!(blocks.map(<[_]>::len), Some(0)),
        BundleProblem::BadPem(_) => assert!(blocks.is_none(), "BadPem for valid PEM"),
        BundleProblem::NotACertificate { index, label } => {
            assert_ne!(label, "CERTIFICATE");
            assert_eq!(block(*index).tag(), label);
        }
        BundleProblem::Unparseable { index, .. } => {
            block(*index);
        }
        BundleProblem::NotCa { index, subject } => {
            let cert = cert_of(*index);
            assert!(!matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca));
            assert_eq!(subject, &cert.subject().to_string());
        }
        BundleProblem::NoCertSignUsage { index, .. } => {
            let cert = cert_of(*index);
            assert!(matches!(cert.key_usage(), Ok(Some(ku)) if !ku.value.key_cert_sign()));
        }
        BundleProblem::NotYetValid { index, .. } => {
            assert!(now.timestamp() < cert_of(*index).validity().not_before.timestamp());
        }
        BundleProblem::Expired { index, .. } => {
            assert!(now.timestamp() > cert_of(*index).validity().not_after.timestamp());
        }
    }
}
