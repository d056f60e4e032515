//! Certificate revocation lists: the X.509 v2 CRL one managed CA signs over its revoked,
//! unexpired leaves (RFC 5280 §5).
//!
//! Every CRL carries the issuer's DN, thisUpdate and nextUpdate, the two extensions RFC 5280
//! requires of conforming issuers (the authority key identifier, equal to the CA certificate's
//! subject key identifier, and a CRL number), and one entry per revoked serial with its
//! revocation time and reason code. Encoding and signing are rcgen's
//! (`CertificateRevocationListParams`); this module chooses the values. Which entries, which
//! number and which dates are the caller's: numbering must be monotonic across restarts and
//! nodes, which only the store can promise.

use chrono::{DateTime, Utc};
use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};

use crate::{CaError, ManagedCa};

/// One revoked certificate as it appears in a CRL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlEntry {
    /// The certificate's serial (positive, as every serial dbcerts issues).
    pub serial: i64,
    /// When dbcerts processed the revocation.
    pub revoked_at: DateTime<Utc>,
    /// The RFC 5280 CRLReason code (0 unspecified, 1 keyCompromise, 3 affiliationChanged,
    /// 4 superseded, 5 cessationOfOperation, ...). Code 0 is written as no reasonCode
    /// extension, as RFC 5280 §5.3.1 asks.
    pub reason: u8,
}

/// What to put in one CRL besides its entries.
#[derive(Debug, Clone, Copy)]
pub struct CrlParams {
    /// The CRL number: must grow with every CRL this CA issues.
    pub number: u64,
    pub this_update: DateTime<Utc>,
    pub next_update: DateTime<Utc>,
}

/// The CRLReason codes RFC 5280 §5.3.1 defines (7 is unused).
fn reason(code: u8) -> Result<RevocationReason, CaError> {
    Ok(match code {
        0 => RevocationReason::Unspecified,
        1 => RevocationReason::KeyCompromise,
        2 => RevocationReason::CaCompromise,
        3 => RevocationReason::AffiliationChanged,
        4 => RevocationReason::Superseded,
        5 => RevocationReason::CessationOfOperation,
        6 => RevocationReason::CertificateHold,
        8 => RevocationReason::RemoveFromCrl,
        9 => RevocationReason::PrivilegeWithdrawn,
        10 => RevocationReason::AaCompromise,
        other => return Err(CaError::Crl(format!("unknown CRL reason code {other}"))),
    })
}

impl ManagedCa {
    /// Signs a CRL over `entries` (any order; they are written by ascending serial, so the same
    /// inputs give the same list) and returns its DER.
    pub fn sign_crl(&self, params: &CrlParams, entries: &[CrlEntry]) -> Result<Vec<u8>, CaError> {
        if params.next_update <= params.this_update {
            return Err(CaError::Crl("nextUpdate must be after thisUpdate".into()));
        }
        let mut sorted = entries.to_vec();
        sorted.sort_unstable_by_key(|e| e.serial);
        let revoked_certs = sorted
            .iter()
            .map(|e| {
                if e.serial <= 0 {
                    return Err(CaError::Crl(format!("serial {} is not positive", e.serial)));
                }
                Ok(RevokedCertParams {
                    serial_number: crate::issue::serial_number(e.serial),
                    revocation_time: crate::issue::to_offset(e.revoked_at)?,
                    reason_code: Some(reason(e.reason)?),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, CaError>>()?;
        let crl = CertificateRevocationListParams {
            this_update: crate::issue::to_offset(params.this_update)?,
            next_update: crate::issue::to_offset(params.next_update)?,
            crl_number: SerialNumber::from_slice(&minimal_be(params.number)),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::PreSpecified(self.key_id().to_vec()),
        }
        .signed_by(self.issuer())
        .map_err(|e| CaError::Crl(e.to_string()))?;
        Ok(crl.der().to_vec())
    }
}

/// `n` as a big-endian unsigned integer without leading zero bytes (one byte for 0). rcgen
/// writes it as a positive INTEGER.
fn minimal_be(n: u64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(7);
    bytes[first..].to_vec()
}

/// A CRL's DER as one PEM block (`X509 CRL`, LF line endings): the form OpenSSL and mongod's
/// `net.tls.CRLFile` read. Several blocks may be concatenated into one file.
pub fn crl_pem(der: &[u8]) -> String {
    crate::issue::pem_block("X509 CRL", der)
}
