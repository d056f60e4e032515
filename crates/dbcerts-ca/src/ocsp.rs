//! OCSP (RFC 6960) for the managed CAs: reading a DER `OCSPRequest` ([`parse_request`]),
//! recognising which CA each CertID names ([`OcspIssuer`]), and the answer: a `BasicOCSPResponse`
//! signed by the issuing CA itself ([`ManagedCa::ocsp_response`]), or an unsigned error status
//! ([`error_response`]). No I/O: the server looks the serials up in the store.
//!
//! The ASN.1 is RustCrypto's (`x509-ocsp`, `x509-cert`, `der`); hashing and signing are aws-lc's,
//! through the CA's rcgen key.

use chrono::{DateTime, Utc};
use rcgen::SigningKey;
use x509_cert::der::asn1::{BitString, GeneralizedTime, Null, ObjectIdentifier, OctetString};
use x509_cert::der::{Any, Decode, Encode};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    OcspResponseStatus, ResponderId, ResponseData, RevokedInfo, SingleResponse, Version,
};

use crate::{CaError, KeyAlgorithm, ManagedCa};

/// The largest request body read. A request for one certificate is about 80 bytes (120 with a
/// nonce); this leaves room for a signed request carrying a certificate chain.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// The most certificates one request may ask about (OpenSSL sends one per `-cert`).
pub const MAX_CERTS_PER_REQUEST: usize = 16;

/// The longest nonce echoed; longer (or empty) nonces are refused (RFC 8954 §2.1).
pub const MAX_NONCE_BYTES: usize = 128;

const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const OID_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
const OID_SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
/// id-ad-ocsp, the access method of an AIA OCSP entry.
pub(crate) const OID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");

/// The hash algorithm of a CertID. OpenSSL and most clients use SHA-1; SHA-2 is accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertIdHash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl CertIdHash {
    fn from_oid(oid: &ObjectIdentifier) -> Option<CertIdHash> {
        [
            (OID_SHA1, CertIdHash::Sha1),
            (OID_SHA256, CertIdHash::Sha256),
            (OID_SHA384, CertIdHash::Sha384),
            (OID_SHA512, CertIdHash::Sha512),
        ]
        .into_iter()
        .find_map(|(o, h)| (o == *oid).then_some(h))
    }

    fn algorithm(self) -> &'static aws_lc_rs::digest::Algorithm {
        use aws_lc_rs::digest;
        match self {
            CertIdHash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            CertIdHash::Sha256 => &digest::SHA256,
            CertIdHash::Sha384 => &digest::SHA384,
            CertIdHash::Sha512 => &digest::SHA512,
        }
    }

    /// The digest of `data` under this algorithm.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        aws_lc_rs::digest::digest(self.algorithm(), data)
            .as_ref()
            .to_vec()
    }

    /// Its length in bytes.
    pub fn output_len(self) -> usize {
        self.algorithm().output_len()
    }
}

/// One certificate a request asks about.
#[derive(Debug, Clone)]
pub struct CertQuery {
    cert_id: CertId,
    hash: CertIdHash,
    serial: Option<i64>,
}

impl CertQuery {
    /// The CertID's hash algorithm.
    pub fn hash(&self) -> CertIdHash {
        self.hash
    }

    /// The serial asked about, when it is one dbcerts could have issued (a positive integer
    /// below 2^63); `None` for any other (such a serial is `unknown`).
    pub fn serial(&self) -> Option<i64> {
        self.serial
    }

    /// issuerNameHash, as sent.
    pub fn issuer_name_hash(&self) -> &[u8] {
        self.cert_id.issuer_name_hash.as_bytes()
    }

    /// issuerKeyHash, as sent.
    pub fn issuer_key_hash(&self) -> &[u8] {
        self.cert_id.issuer_key_hash.as_bytes()
    }

    /// The serial number's DER INTEGER content, as sent.
    pub fn serial_bytes(&self) -> &[u8] {
        self.cert_id.serial_number.as_bytes()
    }
}

/// A request that parsed and is within the limits.
#[derive(Debug, Clone)]
pub struct OcspQuery {
    certs: Vec<CertQuery>,
    nonce: Option<Extension>,
}

impl OcspQuery {
    /// The certificates asked about, in request order (1..=MAX_CERTS_PER_REQUEST).
    pub fn certs(&self) -> &[CertQuery] {
        &self.certs
    }

    /// The nonce extension's value (extnValue), when the request carries one. It is echoed
    /// byte for byte in the response.
    pub fn nonce(&self) -> Option<&[u8]> {
        self.nonce.as_ref().map(|e| e.extn_value.as_bytes())
    }
}

/// Why a request is refused; every one is answered `malformedRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestProblem {
    #[error("the request is {0} bytes; the limit is {MAX_REQUEST_BYTES}")]
    TooLarge(usize),
    #[error("not a DER OCSPRequest: {0}")]
    NotDer(String),
    #[error("the request names no certificate")]
    Empty,
    #[error("the request names {0} certificates; the limit is {MAX_CERTS_PER_REQUEST}")]
    TooMany(usize),
    #[error("CertID hash algorithm {0} is not supported")]
    UnsupportedHash(String),
    #[error("a CertID hash is {got} bytes; {expected} expected")]
    HashLength { expected: usize, got: usize },
    #[error("critical extension {0} is not supported")]
    CriticalExtension(String),
    #[error("the nonce is {0} bytes; 1 to {MAX_NONCE_BYTES} are accepted")]
    NonceLength(usize),
    #[error("more than one nonce")]
    TwoNonces,
}

/// Reads a DER `OCSPRequest` (the POST body, or the decoded GET path). A request signature, if
/// any, is ignored: the responder answers anyone (RFC 6960 §4.1.2 makes signing optional).
pub fn parse_request(der: &[u8]) -> Result<OcspQuery, RequestProblem> {
    if der.len() > MAX_REQUEST_BYTES {
        return Err(RequestProblem::TooLarge(der.len()));
    }
    let request = OcspRequest::from_der(der).map_err(|e| RequestProblem::NotDer(e.to_string()))?;
    let tbs = request.tbs_request;
    if tbs.request_list.is_empty() {
        return Err(RequestProblem::Empty);
    }
    if tbs.request_list.len() > MAX_CERTS_PER_REQUEST {
        return Err(RequestProblem::TooMany(tbs.request_list.len()));
    }
    let mut nonce = None;
    for ext in tbs.request_extensions.into_iter().flatten() {
        if ext.extn_id == OID_NONCE {
            if nonce.is_some() {
                return Err(RequestProblem::TwoNonces);
            }
            let len = nonce_length(ext.extn_value.as_bytes());
            if len == 0 || len > MAX_NONCE_BYTES {
                return Err(RequestProblem::NonceLength(len));
            }
            nonce = Some(ext);
        } else if ext.critical {
            return Err(RequestProblem::CriticalExtension(ext.extn_id.to_string()));
        }
    }
    let mut certs = Vec::with_capacity(tbs.request_list.len());
    for single in tbs.request_list {
        if let Some(ext) = single
            .single_request_extensions
            .iter()
            .flatten()
            .find(|e| e.critical)
        {
            return Err(RequestProblem::CriticalExtension(ext.extn_id.to_string()));
        }
        let cert_id = single.req_cert;
        let alg = &cert_id.hash_algorithm;
        let hash = CertIdHash::from_oid(&alg.oid)
            .filter(|_| alg.parameters.as_ref().is_none_or(is_null))
            .ok_or_else(|| RequestProblem::UnsupportedHash(alg.oid.to_string()))?;
        for got in [
            cert_id.issuer_name_hash.as_bytes().len(),
            cert_id.issuer_key_hash.as_bytes().len(),
        ] {
            if got != hash.output_len() {
                return Err(RequestProblem::HashLength {
                    expected: hash.output_len(),
                    got,
                });
            }
        }
        let serial = serial_value(cert_id.serial_number.as_bytes());
        certs.push(CertQuery {
            cert_id,
            hash,
            serial,
        });
    }
    Ok(OcspQuery { certs, nonce })
}

fn is_null(any: &Any) -> bool {
    any.decode_as::<Null>().is_ok()
}

/// The length of a nonce: the content of the OCTET STRING inside extnValue (RFC 8954), or the
/// whole extnValue from clients that send the bytes bare.
fn nonce_length(extn_value: &[u8]) -> usize {
    OctetString::from_der(extn_value).map_or(extn_value.len(), |inner| inner.as_bytes().len())
}

/// A DER INTEGER's content as the serial dbcerts would have issued: positive, below 2^63.
fn serial_value(bytes: &[u8]) -> Option<i64> {
    if bytes.first().is_none_or(|b| b & 0x80 != 0) {
        return None;
    }
    let start = bytes.iter().position(|b| *b != 0)?;
    let digits = &bytes[start..];
    if digits.len() > 8 {
        return None;
    }
    let value = digits.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
    i64::try_from(value).ok().filter(|v| *v > 0)
}

/// What the responder knows about one CA: its subject name and public key, which CertIDs name
/// by hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspIssuer {
    name_der: Vec<u8>,
    key_bits: Vec<u8>,
}

impl OcspIssuer {
    /// From a CA certificate (DER).
    pub fn from_certificate(cert_der: &[u8]) -> Result<OcspIssuer, CaError> {
        let cert = x509_cert::Certificate::from_der(cert_der)
            .map_err(|e| CaError::CorruptCa(e.to_string()))?;
        let tbs = cert.tbs_certificate;
        Ok(OcspIssuer {
            name_der: tbs
                .subject
                .to_der()
                .map_err(|e| CaError::CorruptCa(e.to_string()))?,
            key_bits: tbs
                .subject_public_key_info
                .subject_public_key
                .raw_bytes()
                .to_vec(),
        })
    }

    /// Whether `query`'s issuerNameHash and issuerKeyHash are this CA's.
    pub fn matches(&self, query: &CertQuery) -> bool {
        query.issuer_name_hash() == query.hash.digest(&self.name_der)
            && query.issuer_key_hash() == query.hash.digest(&self.key_bits)
    }

    /// The responderID byKey: SHA-1 of the public key bits (RFC 6960 §4.2.1).
    fn key_id(&self) -> Vec<u8> {
        CertIdHash::Sha1.digest(&self.key_bits)
    }
}

/// The status of one certificate, as the store knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertState {
    Good,
    /// Revoked at `at`, with the RFC 5280 CRLReason code `reason`.
    Revoked {
        at: DateTime<Utc>,
        reason: u8,
    },
    /// Not a certificate this CA issued (or not one the responder can speak for).
    Unknown,
}

/// The unsigned OCSP answers (RFC 6960 §4.2.1) the responder gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspFailure {
    MalformedRequest,
    InternalError,
    TryLater,
    Unauthorized,
}

/// The DER `OCSPResponse` for an error status: no responseBytes, nothing signed.
pub fn error_response(failure: OcspFailure) -> Vec<u8> {
    let response_status = match failure {
        OcspFailure::MalformedRequest => OcspResponseStatus::MalformedRequest,
        OcspFailure::InternalError => OcspResponseStatus::InternalError,
        OcspFailure::TryLater => OcspResponseStatus::TryLater,
        OcspFailure::Unauthorized => OcspResponseStatus::Unauthorized,
    };
    OcspResponse {
        response_status,
        response_bytes: None,
    }
    .to_der()
    .expect("an error status always encodes")
}

fn generalized(t: DateTime<Utc>) -> Result<OcspGeneralizedTime, CaError> {
    let secs = u64::try_from(t.timestamp()).map_err(|_| CaError::Validity)?;
    GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map(OcspGeneralizedTime)
        .map_err(|_| CaError::Validity)
}

fn crl_reason(code: u8) -> Option<CrlReason> {
    Some(match code {
        0 => CrlReason::Unspecified,
        1 => CrlReason::KeyCompromise,
        2 => CrlReason::CaCompromise,
        3 => CrlReason::AffiliationChanged,
        4 => CrlReason::Superseded,
        5 => CrlReason::CessationOfOperation,
        6 => CrlReason::CertificateHold,
        8 => CrlReason::RemoveFromCRL,
        9 => CrlReason::PrivilegeWithdrawn,
        10 => CrlReason::AaCompromise,
        _ => return None,
    })
}

fn signature_algorithm(alg: KeyAlgorithm) -> AlgorithmIdentifierOwned {
    match alg {
        KeyAlgorithm::Rsa4096 | KeyAlgorithm::Rsa2048 => AlgorithmIdentifierOwned {
            oid: OID_SHA256_WITH_RSA,
            parameters: Some(Null.into()),
        },
        KeyAlgorithm::EcdsaP256 => AlgorithmIdentifierOwned {
            oid: OID_ECDSA_SHA256,
            parameters: None,
        },
        KeyAlgorithm::EcdsaP384 => AlgorithmIdentifierOwned {
            oid: OID_ECDSA_SHA384,
            parameters: None,
        },
    }
}

impl ManagedCa {
    /// This CA as the responder sees it.
    pub fn ocsp_issuer(&self) -> OcspIssuer {
        OcspIssuer::from_certificate(self.cert_der())
            .expect("a ManagedCa's certificate was parsed when it was loaded")
    }

    /// The signed `OCSPResponse` (status successful, a `BasicOCSPResponse`) answering `query`:
    /// `states[i]` is the status of `query.certs()[i]`, and every CertID is echoed as sent.
    /// producedAt and thisUpdate are `now`; nextUpdate is `next_update`. The responder is this
    /// CA itself, named byKey, and its certificate rides along in `certs`; the nonce, if the
    /// request had one, is echoed.
    pub fn ocsp_response(
        &self,
        query: &OcspQuery,
        states: &[CertState],
        now: DateTime<Utc>,
        next_update: DateTime<Utc>,
    ) -> Result<Vec<u8>, CaError> {
        assert_eq!(query.certs.len(), states.len(), "one state per certificate");
        let signing = |e: x509_cert::der::Error| CaError::Signing(e.to_string());
        let this_update = generalized(now)?;
        let next = generalized(next_update)?;
        let mut responses = Vec::with_capacity(states.len());
        for (cert, state) in query.certs.iter().zip(states) {
            let cert_status = match *state {
                CertState::Good => CertStatus::good(),
                CertState::Unknown => CertStatus::unknown(),
                CertState::Revoked { at, reason } => CertStatus::revoked(RevokedInfo {
                    revocation_time: generalized(at)?,
                    revocation_reason: crl_reason(reason),
                }),
            };
            responses.push(SingleResponse {
                cert_id: cert.cert_id.clone(),
                cert_status,
                this_update,
                next_update: Some(next),
                single_extensions: None,
            });
        }
        let issuer = self.ocsp_issuer();
        let tbs = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByKey(OctetString::new(issuer.key_id()).map_err(signing)?),
            produced_at: this_update,
            responses,
            response_extensions: query.nonce.clone().map(|n| vec![n]),
        };
        let tbs_der = tbs.to_der().map_err(signing)?;
        let signature = self
            .issuer
            .key()
            .sign(&tbs_der)
            .map_err(|e| CaError::Signing(e.to_string()))?;
        let basic = BasicOcspResponse {
            tbs_response_data: tbs,
            signature_algorithm: signature_algorithm(self.algorithm),
            signature: BitString::from_bytes(&signature).map_err(signing)?,
            // The signer's certificate, so that clients holding only their trust store (no
            // issuer certificate at hand) can find the signer by its key.
            certs: Some(vec![
                x509_cert::Certificate::from_der(self.cert_der()).map_err(signing)?,
            ]),
        };
        OcspResponse::successful(basic)
            .and_then(|r| r.to_der())
            .map_err(signing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_dbcerts_could_issue() {
        assert_eq!(serial_value(&[0x01]), Some(1));
        assert_eq!(serial_value(&[0x00, 0x80]), Some(128));
        assert_eq!(
            serial_value(&[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Some(i64::MAX)
        );
        assert_eq!(
            serial_value(&[0x00, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            None,
            "2^63"
        );
        assert_eq!(serial_value(&[0x00]), None, "zero");
        assert_eq!(serial_value(&[0xff]), None, "negative");
        assert_eq!(serial_value(&[]), None);
    }

    #[test]
    fn error_statuses_encode_as_rfc_6960_says() {
        // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED }: 30 03 0a 01 <status>.
        for (failure, code) in [
            (OcspFailure::MalformedRequest, 1),
            (OcspFailure::InternalError, 2),
            (OcspFailure::TryLater, 3),
            (OcspFailure::Unauthorized, 6),
        ] {
            assert_eq!(error_response(failure), vec![0x30, 0x03, 0x0a, 0x01, code]);
        }
    }
}
