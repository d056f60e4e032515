//! Each project's managed CA: created on first need, sealed at rest, cached in memory, and
//! shared by every node through the store (the first node to store a project's CA wins; the
//! others load the winner). What it hands out is a [`ProjectCa`]: the signing CA together with
//! its store row id, which every certificate it signs records (`CertificateRecord::ca_id`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use dbcerts_ca::sealing::MasterKey;
use dbcerts_ca::{KeyAlgorithm, ManagedCa, ManagedCaParams};
use dbcerts_store::{CaRecord, Store};

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

pub struct CaService {
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    names: ManagedCaParams,
    algorithm: KeyAlgorithm,
    cache: Mutex<HashMap<String, Arc<ProjectCa>>>,
    /// One creation lock per project, so that slow RSA CA generation for one project never
    /// queues another's.
    creating: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn purpose(project_id: &str) -> String {
    format!("ca-key:{project_id}")
}

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
            cache: Mutex::new(HashMap::new()),
            creating: Mutex::new(HashMap::new()),
        }
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
            .open(&rec.sealed_key, &purpose(&rec.project_id))
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

    /// The project's active CA, if it has one.
    pub async fn get(&self, project_id: &str) -> Result<Option<Arc<ProjectCa>>, AtlasError> {
        if let Some(ca) = self.cached(project_id) {
            return Ok(Some(ca));
        }
        match self.store.get_active_ca(project_id).await? {
            Some(rec) => Ok(Some(self.remember(project_id, self.open(&rec)?))),
            None => Ok(None),
        }
    }

    /// The project's active CA, creating it if it has none. The project must exist.
    pub async fn get_or_create(&self, project_id: &str) -> Result<Arc<ProjectCa>, AtlasError> {
        if let Some(ca) = self.get(project_id).await? {
            return Ok(ca);
        }
        let lock = Arc::clone(
            self.creating
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(project_id.to_owned())
                .or_default(),
        );
        let result = async {
            let _one_at_a_time = lock.lock().await;
            if let Some(ca) = self.get(project_id).await? {
                return Ok(ca);
            }
            self.create(project_id).await
        }
        .await;
        self.creating
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(project_id);
        result
    }

    async fn create(&self, project_id: &str) -> Result<Arc<ProjectCa>, AtlasError> {
        let (id, names, alg) = (project_id.to_owned(), self.names.clone(), self.algorithm);
        let ca = tokio::task::spawn_blocking(move || {
            ManagedCa::create(&id, &names, alg, chrono::Utc::now())
        })
        .await
        .map_err(|e| AtlasError::unexpected(format!("CA creation task: {e}")))?
        .map_err(|e| AtlasError::unexpected(format!("creating a CA: {e}")))?;
        let key = ca.key_pkcs8_der();
        let rec = CaRecord {
            id: 0,
            project_id: project_id.to_owned(),
            algorithm: ca.algorithm().as_str().to_owned(),
            cert_der: ca.cert_der().to_vec(),
            sealed_key: self.master.seal(&key, &purpose(project_id)),
            not_before: ca.not_before().timestamp(),
            not_after: ca.not_after().timestamp(),
        };
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
