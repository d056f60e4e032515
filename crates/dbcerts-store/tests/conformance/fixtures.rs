//! The conformance checks' shared fixtures: each check's namespace of ids ([`Ns`]), record
//! builders, setup helpers, audit-log readers and the conflict assertions.

pub(crate) use dbcerts_store::{
    AccessListEntry, ApiKeyAuth, ApiKeyRecord, AuditEntry, AuditEvent, AuditFilter, BatchWrite,
    CaRecord, CertificateRecord, CertificateSummary, ChainCheck, ChainSummary, DatabaseUserRecord,
    ExpiringCount, Org, Page, Project, ProjectGrant, Recorded, Revocation, RevocationReason,
    RevokeWhich, ServiceAccountAuth, ServiceAccountRecord, ServiceAccountSecretRecord, Store,
    StoreError, StoreResult, UserSecurityRecord, verify_audit_chains,
};
pub(crate) use dbcerts_store::{
    CaExpiry, Checkpoint, RetireOutcome, checkpoint_event, root_digest,
};

/// A check's private namespace of ids, so that checks can share one store.
#[derive(Clone, Copy)]
pub(crate) struct Ns(pub(crate) u64);

impl Ns {
    /// A 24-hex organization id.
    pub(crate) fn org(self, n: u64) -> String {
        format!("{:024x}", (0xa << 60) | (self.0 << 32) | n)
    }
    /// A 24-hex project id.
    pub(crate) fn project(self, n: u64) -> String {
        format!("{:024x}", (0xb << 60) | (self.0 << 32) | n)
    }
    /// A certificate serial.
    pub(crate) fn serial(self, n: i64) -> i64 {
        ((self.0 as i64) << 32) | n
    }
    /// An API public key.
    pub(crate) fn public_key(self, n: u64) -> String {
        format!("PK{:02}{:06}", self.0, n)
    }
    /// An API key id.
    pub(crate) fn key_id(self, n: u64) -> String {
        format!("{:024x}", (0xc << 60) | (self.0 << 32) | n)
    }
    /// A server-secret name.
    pub(crate) fn secret(self, name: &str) -> String {
        format!("conformance-{}-{name}", self.0)
    }
    /// A service-account client id.
    pub(crate) fn client_id(self, n: u64) -> String {
        format!("mdb_sa_id_{:024x}", (0xd << 60) | (self.0 << 32) | n)
    }
    /// A service-account secret id.
    pub(crate) fn secret_id(self, n: u64) -> String {
        format!("{:024x}", (0xe << 60) | (self.0 << 32) | n)
    }
    /// An access-token id (`jti`).
    pub(crate) fn jti(self, n: u64) -> String {
        format!("jti-{}-{n}", self.0)
    }
    /// An audit actor: the API key with public key `n`.
    pub(crate) fn actor(self, n: u64) -> String {
        format!("api-key:{}", self.public_key(n))
    }
}

pub(crate) const T0: i64 = 1_700_000_000;

pub(crate) const NO_PAGE: Page = Page {
    offset: 0,
    limit: 1000,
};

pub(crate) fn page(offset: u64, limit: u32) -> Page {
    Page { offset, limit }
}

pub(crate) fn org(id: &str) -> Org {
    Org {
        id: id.to_owned(),
        name: format!("org {id}"),
        created: T0,
    }
}

pub(crate) fn api_key(ns: Ns, n: u64, org_id: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        id: ns.key_id(n),
        org_id: org_id.to_owned(),
        public_key: ns.public_key(n),
        sealed_private_key: vec![0, 1, 2, 0xff, n as u8],
        description: format!("key {n} of namespace {}", ns.0),
        org_roles: vec!["ORG_OWNER".to_owned(), "ORG_READ_ONLY".to_owned()],
        created: T0 + 1,
    }
}

/// Creates organization `n` of `ns` with API key `n`; returns the organization id.
pub(crate) async fn setup_org(store: &dyn Store, ns: Ns, n: u64) -> String {
    let id = ns.org(n);
    store
        .create_org_with_key(&org(&id), &api_key(ns, n, &id))
        .await
        .expect("create_org_with_key");
    id
}

pub(crate) fn project(id: &str, org_id: &str, name: &str, created: i64) -> Project {
    Project {
        id: id.to_owned(),
        org_id: org_id.to_owned(),
        name: name.to_owned(),
        created,
        with_default_alerts_settings: true,
        tags_json: r#"[{"key":"env","value":"test"}]"#.to_owned(),
    }
}

/// Creates organization 0 of `ns` and project `n` in it; returns the project id.
pub(crate) async fn setup_project(store: &dyn Store, ns: Ns, n: u64) -> String {
    let org_id = ns.org(0);
    if store.get_org(&org_id).await.expect("get_org").is_none() {
        setup_org(store, ns, 0).await;
    }
    let id = ns.project(n);
    store
        .create_project(&project(
            &id,
            &org_id,
            &format!("project {n}"),
            T0 + n as i64,
        ))
        .await
        .expect("create_project");
    id
}

/// The CA as offered to `insert_ca_if_absent` (whose `id` the store ignores).
pub(crate) fn ca(project_id: &str, tag: u8) -> CaRecord {
    CaRecord {
        id: 0,
        project_id: project_id.to_owned(),
        algorithm: ["RSA", "ECDSA"][usize::from(tag % 2)].to_owned(),
        cert_der: vec![0x30, 0x82, tag, tag, 0x00],
        sealed_key: vec![tag; 40],
        not_before: T0 + i64::from(tag),
        not_after: T0 + 10 * 365 * 86_400 + i64::from(tag),
        generation: 1,
        active: true,
        retired_at: None,
    }
}

/// `stored` without the row id the store assigned: comparable with what [`ca`] offered.
pub(crate) fn sans_id(stored: CaRecord) -> CaRecord {
    CaRecord { id: 0, ..stored }
}

pub(crate) fn user(
    project_id: &str,
    database_name: &str,
    username: &str,
    created: i64,
) -> DatabaseUserRecord {
    DatabaseUserRecord {
        project_id: project_id.to_owned(),
        database_name: database_name.to_owned(),
        username: username.to_owned(),
        x509_type: "MANAGED".to_owned(),
        created,
        doc: format!(r#"{{"roles":[{{"roleName":"read","databaseName":"{database_name}"}}]}}"#),
    }
}

pub(crate) fn cert(
    serial: i64,
    project_id: &str,
    username: &str,
    not_before: i64,
    not_after: i64,
) -> CertificateRecord {
    CertificateRecord {
        serial,
        project_id: project_id.to_owned(),
        username: username.to_owned(),
        subject: format!("CN={username},serial={serial}"),
        not_before,
        not_after,
        // Issued one hour after notBefore, as the server does.
        created_ms: (not_before + 3600) * 1000,
        cert_der: vec![0x30, 0x82, (serial & 0xff) as u8],
        // The store does not check `ca_id` against `project_cas` (see migration 0007); checks
        // about revocation and CRLs use real CA rows (`issued_by`).
        ca_id: 0,
        revocation: None,
    }
}

pub(crate) fn summary(c: &CertificateRecord) -> CertificateSummary {
    CertificateSummary {
        serial: c.serial,
        subject: c.subject.clone(),
        not_before: c.not_before,
        not_after: c.not_after,
    }
}

pub(crate) fn summaries<'a>(
    certs: impl IntoIterator<Item = &'a CertificateRecord>,
) -> Vec<CertificateSummary> {
    certs.into_iter().map(summary).collect()
}

/// The audit event the server records when it issues `c`.
pub(crate) fn issued(c: &CertificateRecord) -> AuditEvent {
    AuditEvent {
        at_ms: c.created_ms,
        actor: "operator".to_owned(),
        source_ip: None,
        action: "certificate.issued".to_owned(),
        project_id: Some(c.project_id.clone()),
        target: Some(c.username.clone()),
        status: None,
        details: format!(r#"{{"serial":{}}}"#, c.serial),
    }
}

/// Creates the `MANAGED` X.509 user (on `$external`) that a certificate of `username` in
/// `project_id` needs, unless the project has it already.
pub(crate) async fn managed_user(store: &dyn Store, project_id: &str, username: &str) {
    if store
        .get_database_user(project_id, "$external", username)
        .await
        .unwrap()
        .is_none()
    {
        store
            .create_database_user(&user(project_id, "$external", username, T0))
            .await
            .unwrap();
    }
}

/// Inserts `c` with its issuance audit event, after creating its user when needed (the store
/// records certificates of `MANAGED` X.509 users only).
pub(crate) async fn insert_cert(store: &dyn Store, c: &CertificateRecord) -> StoreResult<()> {
    managed_user(store, &c.project_id, &c.username).await;
    store.insert_certificate(c, &issued(c)).await
}

pub(crate) fn grant(principal_id: &str, project_id: &str, roles: &[&str]) -> ProjectGrant {
    ProjectGrant {
        principal_id: principal_id.to_owned(),
        project_id: project_id.to_owned(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

pub(crate) fn entry(principal_id: &str, cidr_block: &str, created: i64) -> AccessListEntry {
    AccessListEntry {
        principal_id: principal_id.to_owned(),
        cidr_block: cidr_block.to_owned(),
        created,
    }
}

pub(crate) fn service_account(ns: Ns, n: u64, org_id: &str) -> ServiceAccountRecord {
    ServiceAccountRecord {
        client_id: ns.client_id(n),
        org_id: org_id.to_owned(),
        name: format!("account {n}"),
        description: format!("service account {n} of namespace {}", ns.0),
        org_roles: vec!["ORG_MEMBER".to_owned()],
        created: T0 + n as i64,
    }
}

pub(crate) fn sa_secret(
    ns: Ns,
    n: u64,
    client_id: &str,
    created: i64,
) -> ServiceAccountSecretRecord {
    ServiceAccountSecretRecord {
        id: ns.secret_id(n),
        client_id: client_id.to_owned(),
        secret_hash: vec![n as u8; 32],
        masked: format!("mdb_sa_sk_...{n:04}"),
        created,
        expires: created + 90 * 86_400,
        last_used: None,
    }
}

pub(crate) fn audit_event(
    actor: &str,
    action: &str,
    project_id: Option<&str>,
    at_ms: i64,
) -> AuditEvent {
    AuditEvent {
        at_ms,
        actor: actor.to_owned(),
        source_ip: Some("192.0.2.7".to_owned()),
        action: action.to_owned(),
        project_id: project_id.map(str::to_owned),
        target: None,
        status: Some(200),
        details: "{}".to_owned(),
    }
}

/// The whole audit log, in order.
pub(crate) async fn audit_log(store: &dyn Store) -> Vec<AuditEntry> {
    let mut all: Vec<AuditEntry> = Vec::new();
    loop {
        let after = all.last().map_or(0, |e| e.seq);
        let batch = store
            .list_audit(&AuditFilter::default(), after, 500)
            .await
            .expect("list_audit");
        if batch.is_empty() {
            return all;
        }
        assert!(
            batch.len() <= 500 && batch.iter().all(|e| e.seq > after),
            "list_audit returns at most `limit` entries, all after `after_seq`"
        );
        all.extend(batch);
    }
}

/// The seq of the last audit entry, and the hash of the last entry of `chain` (its genesis
/// when it has none): what the next append to the chain chains to.
pub(crate) async fn audit_tip(store: &dyn Store, chain: &str) -> (i64, Vec<u8>) {
    let log = audit_log(store).await;
    let hash = log
        .iter()
        .rfind(|e| e.chain == chain)
        .map_or_else(|| AuditEntry::genesis(chain), |e| e.hash.clone());
    (log.last().map_or(0, |e| e.seq), hash)
}

#[track_caller]
pub(crate) fn assert_conflict<T: std::fmt::Debug>(result: StoreResult<T>, what: &str) {
    match result {
        Err(StoreError::Conflict(w)) => assert_eq!(w, what, "conflict names the wrong constraint"),
        other => panic!("expected Conflict({what:?}), got {other:?}"),
    }
}

#[track_caller]
pub(crate) fn assert_any_conflict<T: std::fmt::Debug>(result: StoreResult<T>) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a Conflict, got {other:?}"),
    }
}

/// Runs futures concurrently on the current task (no extra dependency).
pub(crate) async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs = Vec::new();
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.extend(
        results
            .into_iter()
            .map(|r| r.expect("every future completed")),
    );
    outputs
}
