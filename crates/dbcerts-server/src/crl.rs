//! Publishing CRLs: for each issuing CA (a `project_cas` row), the CRL it signs over its revoked,
//! unexpired certificates, kept in the store (`crl_state`) and shared by every node.
//!
//! A node serves the stored CRL while it is current: built from the CA's latest revocation
//! revision (which every revocation moves in its own transaction, by trigger) and not past its
//! refresh time. Otherwise the node builds the next one from the certificates table, signs it,
//! and publishes it with the next number by compare-and-set; if another node published that
//! number first, it reads the store again and serves the winner's. So a revocation committed on
//! any node is in the very next CRL any node serves, with one small row read per request and
//! CA, and two different CRLs of one CA never share a number. Each revocation through the API
//! rebuilds its project's CRLs at once in the background ([`rebuild_soon`]); [`refresh_due`],
//! run by every node each minute, rebuilds the CRLs made stale by any other writer or by time,
//! so they are renewed well before nextUpdate even when nobody asks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use dbcerts_ca::{CrlEntry, CrlParams, ManagedCa};
use dbcerts_store::{CaRecord, PublishedCrl};

use crate::AppState;
use crate::error::AtlasError;

/// How long CRLs are valid and when they are rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlConfig {
    /// nextUpdate − build time, in seconds.
    pub validity_secs: i64,
    /// A CRL is rebuilt this many seconds after it was built, even without a revocation. Less
    /// than `validity_secs`: the margin is the time a sidecar has to fetch the new one.
    pub refresh_secs: i64,
    /// thisUpdate = build time − this, in seconds, for verifiers whose clocks run behind.
    pub backdate_secs: i64,
    /// Also serve each project's CRLs without credentials at an unguessable URL
    /// (`/api/dbcerts/v1/crl/<token>`), named in the `Link` header of the authenticated answer.
    pub distribution: bool,
    /// Requests per minute from one client address to the distribution URL (served without
    /// credentials, so counted by address; each one reads the store).
    pub distribution_requests_per_minute: u32,
}

impl Default for CrlConfig {
    /// Valid 7 days, rebuilt every day, thisUpdate 5 minutes back, no distribution URL (60
    /// requests a minute per address when it is switched on).
    fn default() -> Self {
        CrlConfig {
            validity_secs: 7 * 86_400,
            refresh_secs: 86_400,
            backdate_secs: 300,
            distribution: false,
            distribution_requests_per_minute: 60,
        }
    }
}

/// Attempts to publish before giving up (each lost race means another node just published).
const PUBLISH_ATTEMPTS: usize = 5;

/// The CAs opened for signing CRLs, by `project_cas` id.
#[derive(Default)]
pub struct CrlSigners {
    opened: Mutex<HashMap<i64, Arc<ManagedCa>>>,
}

impl CrlSigners {
    fn open(&self, state: &AppState, rec: &CaRecord) -> Result<Arc<ManagedCa>, AtlasError> {
        if let Some(ca) = self
            .opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&rec.id)
        {
            return Ok(Arc::clone(ca));
        }
        let key = state
            .inner
            .master
            .open(
                &rec.sealed_key,
                &crate::ca_service::purpose(&rec.project_id, rec.generation),
            )
            .map_err(|e| AtlasError::unexpected(format!("unsealing CA {}: {e}", rec.id)))?;
        let ca = Arc::new(
            ManagedCa::from_parts(&rec.cert_der, &key)
                .map_err(|e| AtlasError::unexpected(format!("loading CA {}: {e}", rec.id)))?,
        );
        self.opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(rec.id, Arc::clone(&ca));
        Ok(ca)
    }
}

/// The current CRLs (DER) of project `project_id`: one per CA of the project that has not
/// expired at `now`, oldest CA first. Leaves never outlive their CA, so these include every
/// issuer with unexpired certificates, and always the active CA.
pub async fn project_crls(
    state: &AppState,
    project_id: &str,
    now: i64,
) -> Result<Vec<Vec<u8>>, AtlasError> {
    let mut out = Vec::new();
    for ca in state.inner.store.list_project_cas(project_id).await? {
        if ca.not_after > now {
            out.push(current_crl(state, &ca, now).await?);
        }
    }
    Ok(out)
}

/// The current CRL of `ca`: the stored one if current, else a new one built and published.
async fn current_crl(state: &AppState, ca: &CaRecord, now: i64) -> Result<Vec<u8>, AtlasError> {
    let store = &state.inner.store;
    for _ in 0..PUBLISH_ATTEMPTS {
        let st = store.get_crl_state(ca.id).await?;
        if let Some(p) = &st.published
            && p.built_revision >= st.revision
            && now < p.refresh_at
        {
            return Ok(p.der.clone());
        }
        // The revision is read before the list: every revocation it counts is in the list.
        let number = st.published.as_ref().map_or(0, |p| p.number) + 1;
        let revoked = store.list_revoked_unexpired(ca.id, now).await?;
        let cfg = state.inner.config.crl;
        let params = CrlParams {
            number: u64::try_from(number).unwrap_or(u64::MAX),
            this_update: at(now - cfg.backdate_secs)?,
            next_update: at(now + cfg.validity_secs)?,
        };
        let entries = revoked
            .iter()
            .map(|(serial, r)| {
                Ok(CrlEntry {
                    serial: *serial,
                    revoked_at: at(r.at)?,
                    reason: r.reason.code(),
                })
            })
            .collect::<Result<Vec<_>, AtlasError>>()?;
        let signer = state.inner.crl.open(state, ca)?;
        let der = tokio::task::spawn_blocking(move || signer.sign_crl(&params, &entries))
            .await
            .map_err(|e| AtlasError::unexpected(format!("CRL signing task: {e}")))?
            .map_err(|e| AtlasError::unexpected(format!("signing the CRL of CA {}: {e}", ca.id)))?;
        let crl = PublishedCrl {
            number,
            built_revision: st.revision,
            this_update: params.this_update.timestamp(),
            next_update: params.next_update.timestamp(),
            refresh_at: now + cfg.refresh_secs,
            der,
        };
        if store.publish_crl(ca.id, &crl).await? {
            tracing::info!(
                project = ca.project_id,
                ca = ca.id,
                number,
                entries = revoked.len(),
                "published CRL"
            );
            return Ok(crl.der);
        }
    }
    Err(AtlasError::unavailable(format!(
        "CA {}: other nodes kept publishing CRLs; try again",
        ca.id
    )))
}

fn at(secs: i64) -> Result<chrono::DateTime<chrono::Utc>, AtlasError> {
    chrono::DateTime::from_timestamp(secs, 0)
        .ok_or_else(|| AtlasError::unexpected(format!("time {secs} out of range")))
}

/// Builds and publishes the project's CRLs in the background, right after a revocation, so
/// the next reader on any node finds them current (a reader that comes first builds them
/// itself: the revision already counts the revocation). A failure is logged; [`refresh_due`]
/// retries.
pub fn rebuild_soon(state: &AppState, project_id: &str) {
    let state = state.clone();
    let project = project_id.to_owned();
    tokio::spawn(async move {
        let now = chrono::Utc::now().timestamp();
        if let Err(e) = project_crls(&state, &project, now).await {
            tracing::warn!(project, error = ?e, "rebuilding the CRLs after a revocation failed");
        }
    });
}

/// Rebuilds every CRL due at `now` (made stale by a revocation, or at its refresh time).
/// Returns how many projects were refreshed; a failure is logged and the next run retries.
pub async fn refresh_due(state: &AppState, now: i64) -> usize {
    let projects = match state.inner.store.list_projects_with_crls_due(now).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "listing the CRLs due failed");
            return 0;
        }
    };
    let mut done = 0;
    for project in projects {
        match project_crls(state, &project, now).await {
            Ok(_) => done += 1,
            Err(e) => tracing::warn!(project, error = ?e, "refreshing the CRLs failed"),
        }
    }
    done
}
