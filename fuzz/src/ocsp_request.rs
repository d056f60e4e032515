//! Properties of the OCSP request parser (`ocsp::parse_request`) and of the signed answer built
//! from what it accepts (`ManagedCa::ocsp_response`).
//!
//! Shared by the `ocsp_request` fuzz target and `crates/dbcerts-ca/tests/ocsp_properties.rs`.

use std::sync::OnceLock;

use chrono::{DateTime, Duration, TimeZone, Utc};
use dbcerts_ca::ocsp::{
    CertState, MAX_CERTS_PER_REQUEST, MAX_NONCE_BYTES, MAX_REQUEST_BYTES, OcspQuery,
    RequestProblem, parse_request,
};
use dbcerts_ca::{KeyAlgorithm, ManagedCa, ManagedCaParams};
use x509_cert::der::asn1::OctetString;
use x509_cert::der::{Decode, Encode};
use x509_ocsp::{BasicOcspResponse, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus};

/// The nonce extension's OID (RFC 6960 §4.4.1).
const NONCE_OID: &str = "1.3.6.1.5.5.7.48.1.2";

/// The time responses are made at: fixed, so that runs are reproducible.
pub fn fixed_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid time")
}

/// One P-256 CA for every input (creating one per input would dominate the run).
pub fn responder() -> &'static ManagedCa {
    static CA: OnceLock<ManagedCa> = OnceLock::new();
    CA.get_or_init(|| {
        ManagedCa::create(
            "5efda6aea3f2ed2e7dd6ce05",
            &ManagedCaParams::default(),
            KeyAlgorithm::EcdsaP256,
            fixed_now(),
        )
        .expect("a CA")
    })
}

/// Everything this module checks, on one fuzz input.
pub fn check(data: &[u8]) {
    let _ = check_request(data);
}

/// `parse_request(data)`, with its result checked against an independent decoding of the same
/// bytes, and every accepted request answered, signed and read back. Returns the result.
pub fn check_request(data: &[u8]) -> Result<OcspQuery, RequestProblem> {
    let result = parse_request(data);
    if data.len() > MAX_REQUEST_BYTES {
        assert_eq!(
            result.as_ref().err(),
            Some(&RequestProblem::TooLarge(data.len()))
        );
        return result;
    }
    let decoded = OcspRequest::from_der(data);
    match &result {
        Ok(query) => {
            let request = decoded.expect("an accepted request is a DER OCSPRequest");
            assert_eq!(
                request.to_der().expect("re-encodes"),
                data,
                "accepted bytes are the one DER encoding"
            );
            check_accepted(&request, query);
            // Trailing bytes are never accepted.
            if data.len() < MAX_REQUEST_BYTES {
                let mut longer = data.to_vec();
                longer.push(0);
                assert!(
                    matches!(parse_request(&longer), Err(RequestProblem::NotDer(_))),
                    "accepted with a trailing byte"
                );
            }
            check_answer(query);
        }
        Err(problem) => {
            assert!(!problem.to_string().is_empty());
            match (problem, decoded) {
                (RequestProblem::NotDer(_), Ok(_)) => panic!("NotDer for a DER OCSPRequest"),
                (RequestProblem::NotDer(_), Err(_)) => {}
                (RequestProblem::TooLarge(_), _) => panic!("TooLarge within the limit"),
                (other, Ok(request)) => check_refusal(other, &request),
                (other, Err(e)) => panic!("{other:?} for bytes that do not decode: {e}"),
            }
        }
    }
    result
}

/// An accepted request: within the limits, one query per CertID, in order, and the nonce is
/// the request's.
fn check_accepted(request: &OcspRequest, query: &OcspQuery) {
    let list = &request.tbs_request.request_list;
    assert!((1..=MAX_CERTS_PER_REQUEST).contains(&list.len()));
    assert_eq!(list.len(), query.certs().len());
    for (single, cert) in list.iter().zip(query.certs()) {
        let id = &single.req_cert;
        assert_eq!(cert.issuer_name_hash(), id.issuer_name_hash.as_bytes());
        assert_eq!(cert.issuer_key_hash(), id.issuer_key_hash.as_bytes());
        assert_eq!(cert.serial_bytes(), id.serial_number.as_bytes());
        assert_eq!(cert.issuer_name_hash().len(), cert.hash().output_len());
        assert_eq!(cert.issuer_key_hash().len(), cert.hash().output_len());
        assert_eq!(
            cert.serial(),
            independent_serial(id.serial_number.as_bytes())
        );
        assert!(
            single
                .single_request_extensions
                .iter()
                .flatten()
                .all(|e| !e.critical)
        );
    }
    let nonces: Vec<_> = request
        .tbs_request
        .request_extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id.to_string() == NONCE_OID)
        .collect();
    assert!(nonces.len() <= 1);
    assert_eq!(
        query.nonce(),
        nonces.first().map(|e| e.extn_value.as_bytes())
    );
    if let Some(nonce) = query.nonce() {
        let len = OctetString::from_der(nonce).map_or(nonce.len(), |o| o.as_bytes().len());
        assert!((1..=MAX_NONCE_BYTES).contains(&len));
    }
}

/// The serial as an integer, computed another way: a positive value below 2^63, else `None`.
fn independent_serial(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 9 {
        return None;
    }
    // Sign-extend the two's complement content into an i128.
    let mut value: i128 = if bytes[0] & 0x80 != 0 { -1 } else { 0 };
    for b in bytes {
        value = (value << 8) | i128::from(*b);
    }
    i64::try_from(value).ok().filter(|v| *v > 0)
}

/// A refusal names a real problem of the decoded request.
fn check_refusal(problem: &RequestProblem, request: &OcspRequest) {
    let tbs = &request.tbs_request;
    match problem {
        RequestProblem::Empty => assert!(tbs.request_list.is_empty()),
        RequestProblem::TooMany(n) => {
            assert_eq!(*n, tbs.request_list.len());
            assert!(*n > MAX_CERTS_PER_REQUEST);
        }
        RequestProblem::UnsupportedHash(oid) => assert!(
            tbs.request_list
                .iter()
                .any(|r| r.req_cert.hash_algorithm.oid.to_string() == *oid)
        ),
        RequestProblem::HashLength { expected, got } => {
            assert_ne!(expected, got);
            assert!(tbs.request_list.iter().any(|r| {
                r.req_cert.issuer_name_hash.as_bytes().len() == *got
                    || r.req_cert.issuer_key_hash.as_bytes().len() == *got
            }));
        }
        RequestProblem::CriticalExtension(oid) => {
            let request_level = tbs.request_extensions.iter().flatten();
            let single_level = tbs
                .request_list
                .iter()
                .flat_map(|r| r.single_request_extensions.iter().flatten());
            assert!(
                request_level
                    .chain(single_level)
                    .any(|e| e.critical && e.extn_id.to_string() == *oid)
            );
        }
        RequestProblem::NonceLength(len) => {
            assert!(*len == 0 || *len > MAX_NONCE_BYTES);
        }
        RequestProblem::TwoNonces => {
            let n = tbs
                .request_extensions
                .iter()
                .flatten()
                .filter(|e| e.extn_id.to_string() == NONCE_OID)
                .count();
            assert!(n >= 2);
        }
        RequestProblem::TooLarge(_) | RequestProblem::NotDer(_) => unreachable!(),
    }
}

/// The answer to an accepted request: a successful OCSPResponse whose BasicOCSPResponse echoes
/// every CertID in order with the status given, carries the request's nonce and the CA
/// certificate, and whose signature verifies under the responder's public key.
fn check_answer(query: &OcspQuery) {
    let now = fixed_now();
    let revoked_at = now - Duration::days(3);
    let states: Vec<CertState> = (0..query.certs().len())
        .map(|i| match i % 3 {
            0 => CertState::Good,
            1 => CertState::Revoked {
                at: revoked_at,
                reason: 1,
            },
            _ => CertState::Unknown,
        })
        .collect();
    let ca = responder();
    let der = ca
        .ocsp_response(query, &states, now, now + Duration::hours(1))
        .expect("an accepted request can always be answered");
    let response = OcspResponse::from_der(&der).expect("the response decodes");
    assert_eq!(response.response_status, OcspResponseStatus::Successful);
    let bytes = response.response_bytes.expect("response bytes");
    assert_eq!(bytes.response_type.to_string(), "1.3.6.1.5.5.7.48.1.1");
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("basic decodes");
    let data = &basic.tbs_response_data;
    assert_eq!(data.responses.len(), states.len());
    for ((single, cert), state) in data.responses.iter().zip(query.certs()).zip(&states) {
        assert_eq!(
            single.cert_id.issuer_name_hash.as_bytes(),
            cert.issuer_name_hash()
        );
        assert_eq!(
            single.cert_id.issuer_key_hash.as_bytes(),
            cert.issuer_key_hash()
        );
        assert_eq!(single.cert_id.serial_number.as_bytes(), cert.serial_bytes());
        let status_matches = match (state, &single.cert_status) {
            (CertState::Good, CertStatus::Good(_)) => true,
            (CertState::Unknown, CertStatus::Unknown(_)) => true,
            (CertState::Revoked { at, .. }, CertStatus::Revoked(info)) => {
                info.revocation_time.0.to_unix_duration().as_secs() as i64 == at.timestamp()
                    && info.revocation_reason.map(|r| r as u32) == Some(1)
            }
            _ => false,
        };
        assert!(
            status_matches,
            "{state:?} answered as {:?}",
            single.cert_status
        );
        assert!(single.next_update.is_some());
    }
    let echoed = data
        .response_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id.to_string() == NONCE_OID)
        .map(|e| e.extn_value.as_bytes());
    assert_eq!(echoed, query.nonce(), "the nonce is echoed byte for byte");
    let certs = basic
        .certs
        .as_deref()
        .expect("the signer's certificate rides along");
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].to_der().expect("re-encodes"), ca.cert_der());
    // The signature, checked with aws-lc against the CA certificate's public key.
    let tbs = data.to_der().expect("tbs re-encodes");
    let (_, cert) = x509_parser::parse_x509_certificate(ca.cert_der()).expect("CA parses");
    let key = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        cert.public_key().subject_public_key.data.as_ref(),
    );
    key.verify(&tbs, basic.signature.raw_bytes())
        .expect("the response signature verifies under the CA key");
}
