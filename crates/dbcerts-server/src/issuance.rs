//! Issuing a client certificate, once createDatabaseUserCert has parsed and authorized the
//! request: who may get one ([`check_eligible`]), the CA that covers it, the leaf key (a pooled
//! one, or a new one), where the work runs ([`off_runtime_unless`]: a blocking thread for RSA,
//! the request's own task for cheap algorithms), the certificate row and its
//! `certificate.issued` audit entry ([`sign`], which the benchmark seeder also uses, so a seeded
//! store holds what the server writes), and the serial-retry loop around the durable commit
//! through [`crate::journal`] ([`issue`]).
//!
//! Durability before the key leaves: [`issue`] hands the key back only after the journal's
//! commit holding the certificate has returned. Leaf private keys are never stored or logged:
//! the record has no key field, the audit entry and the log line name only the algorithm.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dbcerts_ca::{CaError, KeyAlgorithm, LeafKey, LeafRequest, leaf_validity, random_serial};
use dbcerts_store::{AuditEvent, CertificateRecord, DatabaseUserRecord, Recorded, StoreError};

use crate::AppState;
use crate::ca_service::{ProjectCa, Who};
use crate::error::AtlasError;
use crate::params::GroupId;
use crate::values::X509Type;

/// Serial collisions are astronomically rare (63 random bits); retry a few times anyway.
const SERIAL_ATTEMPTS: usize = 4;

/// One certificate to sign: for whom, from when, for how long, with which serial.
#[derive(Debug, Clone, Copy)]
pub struct Leaf<'a> {
    pub project_id: &'a str,
    pub username: &'a str,
    /// The issue time: the validity is computed from it ([`leaf_validity`]) and it is the
    /// record's `created_ms`.
    pub at: DateTime<Utc>,
    /// `monthsUntilExpiration`, already checked.
    pub months: u32,
    pub serial: i64,
    /// The AIA OCSP URL, when a responder is configured
    /// ([`crate::OcspConfig::leaf_url`]).
    pub ocsp_url: Option<&'a str>,
}

/// Why [`sign`] failed. The text is what the 500 `UNEXPECTED_ERROR` says.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("validity: {0}")]
    Validity(CaError),
    #[error("signing: {0}")]
    Signing(CaError),
}

/// Signs `leaf` with `ca` and `key`, and builds what the journal commits for it: the
/// certificate row and its `certificate.issued` audit entry, with `who` as the caller. CPU
/// only; the caller decides where it runs. The key itself goes into neither.
pub fn sign(
    ca: &ProjectCa,
    key: &LeafKey,
    leaf: &Leaf<'_>,
    who: Who,
) -> Result<(CertificateRecord, AuditEvent), SignError> {
    let (not_before, not_after) =
        leaf_validity(leaf.at, leaf.months).map_err(SignError::Validity)?;
    let issued = ca
        .issue_with_ocsp_url(
            &LeafRequest {
                username: leaf.username,
                serial: leaf.serial,
                not_before,
                not_after,
            },
            key,
            leaf.ocsp_url,
        )
        .map_err(SignError::Signing)?;
    let rec = CertificateRecord {
        serial: leaf.serial,
        project_id: leaf.project_id.to_owned(),
        username: leaf.username.to_owned(),
        subject: issued.subject,
        not_before: not_before.timestamp(),
        not_after: not_after.timestamp(),
        created_ms: leaf.at.timestamp_millis(),
        cert_der: issued.der,
        ca_id: ca.id,
        revocation: None,
    };
    let audit = certificate_issued_event(&rec, who, key.algorithm());
    Ok((rec, audit))
}

/// The audit entry of an issued certificate, recorded with the certificate: the call's caller,
/// address, project, user, status 201 and the certificate's facts.
fn certificate_issued_event(
    cert: &CertificateRecord,
    who: Who,
    algorithm: KeyAlgorithm,
) -> AuditEvent {
    AuditEvent {
        at_ms: cert.created_ms,
        actor: who.actor,
        source_ip: who.source_ip,
        action: "certificate.issued".into(),
        project_id: Some(cert.project_id.clone()),
        target: Some(cert.username.clone()),
        status: Some(201),
        details: serde_json::json!({
            "serial": cert.serial,
            "subject": cert.subject,
            "notBefore": cert.not_before,
            "notAfter": cert.not_after,
            "algorithm": algorithm.as_str(),
        })
        .to_string(),
    }
}

/// Refuses a user that cannot get a certificate from dbcerts: one that is not MANAGED x.509,
/// one whose name today's rules refuse, or any user of a project with a customer CA.
pub(crate) async fn check_eligible(
    state: &AppState,
    project: &GroupId,
    user: &DatabaseUserRecord,
) -> Result<(), AtlasError> {
    if !X509Type::Managed.is(&user.x509_type) {
        return Err(AtlasError::user_not_managed_x509());
    }
    // A user stored under older username rules (or written to the store by hand) may hold a
    // name today's rules refuse: such a name never reaches a certificate's CN.
    if dbcerts_ca::dn::check_managed_username(&user.username).is_err() {
        return Err(AtlasError::managed_x509_name_invalid(&user.username));
    }
    if state
        .inner
        .store
        .get_user_security(project.as_str())
        .await?
        .customer_cas
        .is_some()
    {
        return Err(AtlasError::advanced_x509());
    }
    Ok(())
}

/// A certificate durably recorded, and its private key, which the caller sends once and drops
/// (a [`LeafKey`] wipes itself).
pub(crate) struct Issued {
    pub cert_der: Vec<u8>,
    pub key: Arc<LeafKey>,
}

/// Issues a certificate of `months` for `username` of `project`, requested by `who`: gets a CA
/// that covers it (the active one, or a new generation when the active one would expire within
/// the rotation margin of the certificate's end), takes a key, signs, and records the
/// certificate with its audit entry through the journal, with a new serial after a collision.
/// Returns once the commit holding the certificate has returned.
pub(crate) async fn issue(
    state: &AppState,
    who: Who,
    project: &GroupId,
    username: &str,
    months: u32,
) -> Result<Issued, AtlasError> {
    let (_, planned_not_after) = leaf_validity(Utc::now(), months)
        .map_err(|e| AtlasError::unexpected(SignError::Validity(e).to_string()))?;
    let ca = state
        .inner
        .ca
        .for_leaf(project.as_str(), planned_not_after, &who)
        .await?;
    let key = Arc::new(take_key(state).await?);
    let ocsp_url = state.inner.config.ocsp.leaf_url(project.as_str());
    for _ in 0..SERIAL_ATTEMPTS {
        let (ca2, key2, who2) = (Arc::clone(&ca), Arc::clone(&key), who.clone());
        let (project_id, name, url) = (
            project.as_str().to_owned(),
            username.to_owned(),
            ocsp_url.clone(),
        );
        let (rec, audit) = off_runtime_unless(ca.algorithm().is_cheap(), move || {
            let leaf = Leaf {
                project_id: &project_id,
                username: &name,
                at: Utc::now(),
                months,
                serial: random_serial(),
                ocsp_url: url.as_deref(),
            };
            sign(&ca2, &key2, &leaf, who2)
        })
        .await?
        .map_err(|e| AtlasError::unexpected(e.to_string()))?;
        let serial = rec.serial;
        // The store checks the user again under the project's lock: the one found before
        // signing may have come from this node's read cache, which another node's deletion
        // reaches a moment later. Refused as the lookup would have refused it.
        match state
            .inner
            .journal
            .record_certificate(rec.clone(), audit)
            .await?
        {
            Recorded::Yes => {
                tracing::info!(project = project.as_str(), serial, algorithm = %key.algorithm(), months, "issued certificate");
                crate::observe::certificate_issued(project.as_str(), key.algorithm());
                return Ok(Issued {
                    cert_der: rec.cert_der,
                    key,
                });
            }
            Recorded::SerialTaken => {
                tracing::warn!(
                    serial,
                    "certificate serial collision; retrying with a new serial"
                );
            }
            Recorded::UserGone => return Err(AtlasError::username_not_found(username)),
            Recorded::UserNotManaged => return Err(AtlasError::user_not_managed_x509()),
            Recorded::ProjectGone => return Err(StoreError::Gone.into()),
            Recorded::CountNotHigher => {
                return Err(AtlasError::unexpected(
                    "a certificate was answered as a nonce count",
                ));
            }
        }
    }
    Err(AtlasError::unexpected(
        "could not find a free certificate serial",
    ))
}

/// A leaf key: a pooled one if ready, else a new one, generated off the async runtime unless
/// the algorithm is cheap.
async fn take_key(state: &AppState) -> Result<LeafKey, AtlasError> {
    if let Some(key) = state.inner.pool.try_take() {
        return Ok(key);
    }
    let pool = Arc::clone(&state.inner.pool);
    off_runtime_unless(pool.algorithm().is_cheap(), move || pool.take_or_generate())
        .await?
        .map_err(|e| AtlasError::unexpected(format!("key generation: {e}")))
}

/// Runs `work` on this thread when `cheap`, else on a blocking thread.
pub(crate) async fn off_runtime_unless<T: Send + 'static>(
    cheap: bool,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AtlasError> {
    if cheap {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AtlasError::unexpected(format!("blocking task: {e}")))
}
