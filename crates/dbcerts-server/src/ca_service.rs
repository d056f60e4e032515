//! Each project's managed CA and its generations: created on first need, sealed at rest, cached
//! in memory, and shared by every node through the store. What it hands out for signing is a
//! [`ProjectCa`]: the signing CA together with its store row id, which every certificate it
//! signs records (`CertificateRecord::ca_id`).
//!
//! Generations (issue 17, rotation with overlap). Every generation is a row of `project_cas`;
//! exactly one is active and signs new leaves. [`CaService::rotate`] makes a new generation
//! active, by hand or, in [`CaService::for_leaf`], automatically when the active CA cannot cover
//! a requested leaf with the rotation margin to spare. The store swaps the active row in one
//! transaction behind the unique index "one active CA per project" (and one row per
//! generation), so nodes rotating at once make one new generation: the others load it.
//!
//! Staleness: none for signing. [`CaService::get`] reads the project's active row on every call
//! (one indexed read; the key is unsealed and parsed only when the row is not the one cached),
//! so a rotation done by another node or by `dbcerts ca rotate` is used by the next issuance
//! here. The bundle and the generation list read the store on every call.
//!
//! Sealing: generation 1 keeps the purpose `ca-key:<groupId>` (rows written before generations
//! existed); generation N ≥ 2 is sealed for `ca-key:<groupId>:generation:<N>`, so a sealed key
//! moved onto another generation's row does not open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use dbcerts_ca::sealing::MasterKey;
use dbcerts_ca::{CaCertInfo, KeyAlgorithm, ManagedCa, ManagedCaParams};
use dbcerts_store::{AuditEvent, CaRecord, RetireOutcome, Store};

use crate::error::AtlasError;

/// A project's CA as loaded from the store: the signer, and the `project_cas.id` of its row.
/// Dereferences to the [`ManagedCa`].
pub struct ProjectCa {
    pub id: i64,
    ca: ManagedCa,
}

impl std::ops::Deref for ProjectCa {
    type Target = ManagedCa;

    fn deref(&self) -> &ManagedCa {
        &self.ca
    }
}

/// Why a generation was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationReason {
    /// An operator asked (`ca:rotate`, `dbcerts ca rotate`).
    Manual,
    /// The active CA could not cover a requested certificate with the margin to spare.
    Automatic,
}

impl RotationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RotationReason::Manual => "manual",
            RotationReason::Automatic => "automatic",
        }
    }
}

/// Who asks for a change, as the audit log records it.
#[derive(Debug, Clone)]
pub struct Who {
    pub actor: String,
    pub source_ip: Option<String>,
}

impl Who {
    /// A command run on the store directly.
    pub fn operator() -> Who {
        Who {
            actor: "operator".into(),
            source_ip: None,
        }
    }

    /// The authenticated caller of a request.
    pub fn of(caller: &crate::auth::Caller) -> Who {
        Who {
            actor: caller.actor(),
            source_ip: caller.ip.map(|ip| ip.to_string()),
        }
    }

    /// The audit entry of a change to generation `generation` of `project_id`'s CA.
    fn audit(
        &self,
        at: chrono::DateTime<chrono::Utc>,
        action: &str,
        project_id: &str,
        generation: u32,
        details: serde_json::Value,
    ) -> AuditEvent {
        AuditEvent {
            at_ms: at.timestamp_millis(),
            actor: self.actor.clone(),
            source_ip: self.source_ip.clone(),
            action: action.into(),
            project_id: Some(project_id.to_owned()),
            target: Some(format!("generation:{generation}")),
            status: None,
            details: details.to_string(),
        }
    }
}

/// One generation as the API and the CLI show it.
#[derive(Debug, Clone)]
pub struct Generation {
    pub id: i64,
    pub generation: u32,
    pub active: bool,
    /// In the trust bundle: active, or not retired and with an unexpired certificate.
    pub in_bundle: bool,
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
    pub retired_at: Option<i64>,
    pub cert_pem: String,
}

/// Why a generation could not be retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireError {
    NotFound,
    Active,
}

pub struct CaService {
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    names: ManagedCaParams,
    algorithm: KeyAlgorithm,
    /// Rotate before signing a leaf that would end less than this before the active CA.
    rotation_margin: chrono::Duration,
    cache: Mutex<HashMap<String, Arc<ProjectCa>>>,
    /// One creation (or rotation) lock per project, so that slow RSA CA generation for one
    /// project never queues another's.
    creating: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The sealing purpose of a generation's key (module documentation).
fn purpose(project_id: &str, generation: i64) -> String {
    if generation <= 1 {
        format!("ca-key:{project_id}")
    } else {
        format!("ca-key:{project_id}:generation:{generation}")
    }
}

/// The default rotation margin (`ca-rotation-margin-days`).
pub const DEFAULT_ROTATION_MARGIN_DAYS: u32 = 30;

/// Slack on top of the margin for the seconds between choosing a CA and signing with it.
const SIGNING_SLACK: chrono::Duration = chrono::Duration::hours(1);

impl CaService {
    pub fn new(
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        names: ManagedCaParams,
        algorithm: KeyAlgorithm,
    ) -> CaService {
        CaService {
            store,
            master,
            names,
            algorithm,
            rotation_margin: chrono::Duration::days(DEFAULT_ROTATION_MARGIN_DAYS.into()),
            cache: Mutex::new(HashMap::new()),
            creating: Mutex::new(HashMap::new()),
        }
    }

    /// Sets the rotation margin, in days.
    pub fn with_rotation_margin_days(mut self, days: u32) -> CaService {
        self.rotation_margin = chrono::Duration::days(days.into());
        self
    }

    fn cached(&self, project_id: &str) -> Option<Arc<ProjectCa>> {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(project_id)
            .cloned()
    }

    fn remember(&self, project_id: &str, ca: Arc<ProjectCa>) -> Arc<ProjectCa> {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(project_id.to_owned(), Arc::clone(&ca));
        ca
    }

    /// Forgets a project's CA (after the project is deleted).
    pub fn forget(&self, project_id: &str) {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(project_id);
    }

    fn open(&self, rec: &CaRecord) -> Result<Arc<ProjectCa>, AtlasError> {
        let key = self
            .master
            .open(&rec.sealed_key, &purpose(&rec.project_id, rec.generation))
            .map_err(|e| {
                AtlasError::unexpected(format!("unsealing the CA of {}: {e}", rec.project_id))
            })?;
        let ca = ManagedCa::from_parts(&rec.cert_der, &key).map_err(|e| {
            AtlasError::unexpected(format!("loading the CA of {}: {e}", rec.project_id))
        })?;
        Ok(Arc::new(ProjectCa { id: rec.id, ca }))
    }

    /// Opens one stored CA (any of the project's, active or not): for the OCSP responder.
    pub fn open_record(&self, rec: &CaRecord) -> Result<Arc<ProjectCa>, AtlasError> {
        self.open(rec)
    }

    /// The project's active CA, if it has one: the store's active row, from the cache when it
    /// is the row cached.
    pub async fn get(&self, project_id: &str) -> Result<Option<Arc<ProjectCa>>, AtlasError> {
        match self.store.get_active_ca(project_id).await? {
            Some(rec) => match self.cached(project_id) {
                Some(ca) if ca.id == rec.id => Ok(Some(ca)),
                _ => Ok(Some(self.remember(project_id, self.open(&rec)?))),
            },
            None => Ok(None),
        }
    }

    fn project_lock(&self, project_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(
            self.creating
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(project_id.to_owned())
                .or_default(),
        )
    }

    fn release_lock(&self, project_id: &str) {
        self.creating
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(project_id);
    }

    /// The project's active CA, creating it if it has none. The project must exist.
    pub async fn get_or_create(&self, project_id: &str) -> Result<Arc<ProjectCa>, AtlasError> {
        if let Some(ca) = self.get(project_id).await? {
            return Ok(ca);
        }
        let lock = self.project_lock(project_id);
        let result = async {
            let _one_at_a_time = lock.lock().await;
            if let Some(ca) = self.get(project_id).await? {
                return Ok(ca);
            }
            self.create(project_id).await
        }
        .await;
        self.release_lock(project_id);
        result
    }

    /// The CA to sign a leaf ending at `not_after` with: the active one if it covers the leaf
    /// with the rotation margin to spare, else a new generation made now (by this call, or by
    /// whichever node rotated first).
    pub async fn for_leaf(
        &self,
        project_id: &str,
        not_after: chrono::DateTime<chrono::Utc>,
        who: &Who,
    ) -> Result<Arc<ProjectCa>, AtlasError> {
        let needed = not_after + SIGNING_SLACK;
        let ca = self.get_or_create(project_id).await?;
        if ca.covers(needed, self.rotation_margin) {
            return Ok(ca);
        }
        let lock = self.project_lock(project_id);
        let result = async {
            let _one_at_a_time = lock.lock().await;
            // Another node may have rotated meanwhile; one that lost a race loads the winner.
            for _ in 0..3 {
                let ca = self.get_or_create(project_id).await?;
                if ca.covers(needed, self.rotation_margin) {
                    return Ok(ca);
                }
                self.rotate_from(&ca, project_id, RotationReason::Automatic, who)
                    .await?;
            }
            Err(AtlasError::unexpected(
                "the project CA could not be rotated to cover the certificate",
            ))
        }
        .await;
        self.release_lock(project_id);
        result
    }

    /// Makes a new generation active. `None` when another rotation of this project won the
    /// race (the caller may read the generations and decide again).
    pub async fn rotate(
        &self,
        project_id: &str,
        reason: RotationReason,
        who: &Who,
    ) -> Result<Option<Generation>, AtlasError> {
        let current = self.get_or_create(project_id).await?;
        self.rotate_from(&current, project_id, reason, who).await
    }

    async fn rotate_from(
        &self,
        current: &ProjectCa,
        project_id: &str,
        reason: RotationReason,
        who: &Who,
    ) -> Result<Option<Generation>, AtlasError> {
        let next = current.generation() + 1;
        let ca = self.make(project_id, next).await?;
        let rec = self.record(project_id, &ca);
        let details = serde_json::json!({
            "generation": next,
            "previousGeneration": current.generation(),
            "reason": reason.as_str(),
            "notAfter": ca.not_after().timestamp(),
            "algorithm": ca.algorithm().as_str(),
        });
        let audit = who.audit(chrono::Utc::now(), "ca.rotated", project_id, next, details);
        let Some(stored) = self.store.rotate_ca(&rec, current.id, &audit).await? else {
            tracing::info!(
                project = project_id,
                generation = next,
                "another CA rotation of this project won the race"
            );
            return Ok(None);
        };
        tracing::info!(project = project_id, generation = next, reason = reason.as_str(), algorithm = %ca.algorithm(), "rotated the managed CA");
        crate::observe::ca_rotated(project_id, reason);
        self.remember(project_id, Arc::new(ProjectCa { id: stored.id, ca }));
        Ok(Some(generation(&stored, true)?))
    }

    /// Takes generation `number` out of the trust bundle. Retiring a retired generation changes
    /// nothing (and records nothing); the active one cannot be retired.
    pub async fn retire(
        &self,
        project_id: &str,
        number: u32,
        who: &Who,
    ) -> Result<Result<Generation, RetireError>, AtlasError> {
        let now = chrono::Utc::now();
        let details = serde_json::json!({ "generation": number });
        let audit = who.audit(now, "ca.retired", project_id, number, details);
        let outcome = self
            .store
            .retire_ca(project_id, number.into(), now.timestamp(), &audit)
            .await?;
        Ok(match outcome {
            RetireOutcome::NotFound => Err(RetireError::NotFound),
            RetireOutcome::Active => Err(RetireError::Active),
            RetireOutcome::Retired { ca, now: changed } => {
                if changed {
                    tracing::info!(
                        project = project_id,
                        generation = number,
                        "retired a CA generation"
                    );
                    crate::observe::ca_retired(project_id);
                }
                Ok(generation(&ca, false)?)
            }
        })
    }

    /// Every generation of the project, oldest first.
    pub async fn generations(&self, project_id: &str) -> Result<Vec<Generation>, AtlasError> {
        let now = chrono::Utc::now().timestamp();
        let mut out = Vec::new();
        for rec in self.store.list_project_cas(project_id).await? {
            let in_bundle = rec.active
                || (rec.retired_at.is_none()
                    && rec.not_after > now
                    && self
                        .store
                        .last_leaf_not_after(rec.id)
                        .await?
                        .is_some_and(|t| t > now));
            out.push(generation(&rec, in_bundle)?);
        }
        Ok(out)
    }

    /// The trust bundle: the PEM of every generation in it, oldest first. With one generation
    /// (every project before its first rotation) it is that CA's certificate alone, as before.
    /// Creates the project's first CA if it has none.
    pub async fn bundle_pem(&self, project_id: &str) -> Result<String, AtlasError> {
        self.get_or_create(project_id).await?;
        Ok(self
            .generations(project_id)
            .await?
            .into_iter()
            .filter(|g| g.in_bundle)
            .map(|g| g.cert_pem)
            .collect())
    }

    async fn make(&self, project_id: &str, generation: u32) -> Result<ManagedCa, AtlasError> {
        let (id, names, alg) = (project_id.to_owned(), self.names.clone(), self.algorithm);
        tokio::task::spawn_blocking(move || {
            ManagedCa::create_generation(&id, &names, alg, chrono::Utc::now(), generation)
        })
        .await
        .map_err(|e| AtlasError::unexpected(format!("CA creation task: {e}")))?
        .map_err(|e| AtlasError::unexpected(format!("creating a CA: {e}")))
    }

    fn record(&self, project_id: &str, ca: &ManagedCa) -> CaRecord {
        let generation = i64::from(ca.generation());
        let key = ca.key_pkcs8_der();
        CaRecord {
            id: 0,
            project_id: project_id.to_owned(),
            algorithm: ca.algorithm().as_str().to_owned(),
            cert_der: ca.cert_der().to_vec(),
            sealed_key: self.master.seal(&key, &purpose(project_id, generation)),
            not_before: ca.not_before().timestamp(),
            not_after: ca.not_after().timestamp(),
            generation,
            active: true,
            retired_at: None,
        }
    }

    async fn create(&self, project_id: &str) -> Result<Arc<ProjectCa>, AtlasError> {
        let ca = self.make(project_id, 1).await?;
        let rec = self.record(project_id, &ca);
        let winner = self.store.insert_ca_if_absent(&rec).await?;
        if winner.cert_der == rec.cert_der {
            tracing::info!(project = project_id, algorithm = %ca.algorithm(), "created managed CA");
            let ca = ProjectCa { id: winner.id, ca };
            Ok(self.remember(project_id, Arc::new(ca)))
        } else {
            Ok(self.remember(project_id, self.open(&winner)?))
        }
    }
}

fn generation(rec: &CaRecord, in_bundle: bool) -> Result<Generation, AtlasError> {
    let info = CaCertInfo::read(&rec.cert_der)
        .map_err(|e| AtlasError::unexpected(format!("reading a CA of {}: {e}", rec.project_id)))?;
    Ok(Generation {
        id: rec.id,
        generation: info.generation,
        active: rec.active,
        in_bundle,
        subject: info.subject,
        not_before: rec.not_before,
        not_after: rec.not_after,
        retired_at: rec.retired_at,
        cert_pem: dbcerts_ca::certificate_pem(&rec.cert_der),
    })
}
