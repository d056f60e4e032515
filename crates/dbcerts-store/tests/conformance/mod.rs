//! Conformance checks for any [`Store`] implementation.
//!
//! Every check is a `pub async fn(&dyn Store)`. An adapter's test file includes this module
//! (`mod conformance;`) and runs each check against a real, freshly opened store, one test per
//! check (see `tests/sqlite_conformance.rs`), so that a failure is named after the promise it
//! breaks.
//!
//! Apart from [`is_empty_until_first_org`], which needs a store with no organization in it, the
//! checks do not depend on each other: each one works in its own namespace of organization
//! ids, project ids, API keys, secret names and certificate serials, so that [`run_all`] can run
//! them all, one after another, against a single store.

use dbcerts_store::{
    ApiKeyRecord, CaRecord, CertificateRecord, CertificateSummary, DatabaseUserRecord, Org, Page,
    Project, Store, StoreError, StoreResult, UserSecurityRecord,
};

/// Runs every check against one store, which must be fresh (contain no organization).
pub async fn run_all(store: &dyn Store) {
    is_empty_until_first_org(store).await;
    org_and_api_key_round_trip(store).await;
    create_org_with_key_is_atomic(store).await;
    secret_first_value_wins(store).await;
    secret_concurrent_inserts_agree(store).await;
    project_round_trip(store).await;
    project_name_unique_per_org(store).await;
    list_projects_filters_orders_and_pages(store).await;
    delete_project_cascades(store).await;
    ca_first_insert_wins(store).await;
    ca_concurrent_inserts_agree(store).await;
    database_user_round_trip(store).await;
    database_user_unique_key(store).await;
    list_database_users_orders_and_pages(store).await;
    update_database_user(store).await;
    delete_database_user(store).await;
    certificate_serial_unique(store).await;
    list_unexpired_certificates_filters_orders_and_pages(store).await;
    certificates_outlive_database_user_but_not_project(store).await;
    user_security_default_put_overwrite_clear(store).await;
    database_user_limit_is_atomic(store).await;
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A check's private namespace of ids, so that checks can share one store.
#[derive(Clone, Copy)]
struct Ns(u64);

impl Ns {
    /// A 24-hex organization id.
    fn org(self, n: u64) -> String {
        format!("{:024x}", (0xa << 60) | (self.0 << 32) | n)
    }
    /// A 24-hex project id.
    fn project(self, n: u64) -> String {
        format!("{:024x}", (0xb << 60) | (self.0 << 32) | n)
    }
    /// A certificate serial.
    fn serial(self, n: i64) -> i64 {
        ((self.0 as i64) << 32) | n
    }
    /// An API public key.
    fn public_key(self, n: u64) -> String {
        format!("PK{:02}{:06}", self.0, n)
    }
    /// An API key id.
    fn key_id(self, n: u64) -> String {
        format!("{:024x}", (0xc << 60) | (self.0 << 32) | n)
    }
    /// A server-secret name.
    fn secret(self, name: &str) -> String {
        format!("conformance-{}-{name}", self.0)
    }
}

const T0: i64 = 1_700_000_000;
const NO_PAGE: Page = Page {
    offset: 0,
    limit: 1000,
};

fn page(offset: u64, limit: u32) -> Page {
    Page { offset, limit }
}

fn org(id: &str) -> Org {
    Org {
        id: id.to_owned(),
        name: format!("org {id}"),
        created: T0,
    }
}

fn api_key(ns: Ns, n: u64, org_id: &str) -> ApiKeyRecord {
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
async fn setup_org(store: &dyn Store, ns: Ns, n: u64) -> String {
    let id = ns.org(n);
    store
        .create_org_with_key(&org(&id), &api_key(ns, n, &id))
        .await
        .expect("create_org_with_key");
    id
}

fn project(id: &str, org_id: &str, name: &str, created: i64) -> Project {
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
async fn setup_project(store: &dyn Store, ns: Ns, n: u64) -> String {
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

fn ca(project_id: &str, tag: u8) -> CaRecord {
    CaRecord {
        project_id: project_id.to_owned(),
        algorithm: ["RSA", "ECDSA"][usize::from(tag % 2)].to_owned(),
        cert_der: vec![0x30, 0x82, tag, tag, 0x00],
        sealed_key: vec![tag; 40],
        not_before: T0 + i64::from(tag),
        not_after: T0 + 10 * 365 * 86_400 + i64::from(tag),
    }
}

fn user(project_id: &str, database_name: &str, username: &str, created: i64) -> DatabaseUserRecord {
    DatabaseUserRecord {
        project_id: project_id.to_owned(),
        database_name: database_name.to_owned(),
        username: username.to_owned(),
        x509_type: "MANAGED".to_owned(),
        created,
        doc: format!(r#"{{"roles":[{{"roleName":"read","databaseName":"{database_name}"}}]}}"#),
    }
}

fn cert(
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
    }
}

fn summary(c: &CertificateRecord) -> CertificateSummary {
    CertificateSummary {
        serial: c.serial,
        subject: c.subject.clone(),
        not_before: c.not_before,
        not_after: c.not_after,
    }
}

fn summaries<'a>(
    certs: impl IntoIterator<Item = &'a CertificateRecord>,
) -> Vec<CertificateSummary> {
    certs.into_iter().map(summary).collect()
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(result: StoreResult<T>, what: &str) {
    match result {
        Err(StoreError::Conflict(w)) => assert_eq!(w, what, "conflict names the wrong constraint"),
        other => panic!("expected Conflict({what:?}), got {other:?}"),
    }
}

#[track_caller]
fn assert_any_conflict<T: std::fmt::Debug>(result: StoreResult<T>) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a Conflict, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Organizations, API keys, server secrets
// ---------------------------------------------------------------------------------------------

/// A fresh store is empty; it is not once an organization exists. Needs a fresh store.
pub async fn is_empty_until_first_org(store: &dyn Store) {
    let ns = Ns(1);
    assert!(store.is_empty().await.unwrap(), "a fresh store is empty");
    assert!(
        store.is_empty().await.unwrap(),
        "is_empty does not change the store"
    );
    setup_org(store, ns, 0).await;
    assert!(
        !store.is_empty().await.unwrap(),
        "a store with an organization is not empty"
    );
}

/// `get_org` and `get_api_key` return exactly what `create_org_with_key` stored.
pub async fn org_and_api_key_round_trip(store: &dyn Store) {
    let ns = Ns(2);
    let org_id = ns.org(0);
    let o = Org {
        id: org_id.clone(),
        name: "Round Trip Org".into(),
        created: T0 + 42,
    };
    let k = ApiKeyRecord {
        id: ns.key_id(0),
        org_id: org_id.clone(),
        public_key: ns.public_key(0),
        sealed_private_key: (0..=255).collect(),
        description: "ünïcode & \"quotes\"".into(),
        org_roles: vec![
            "ORG_OWNER".into(),
            "ORG_BILLING_ADMIN".into(),
            "ORG_MEMBER".into(),
        ],
        created: T0 + 43,
    };
    store.create_org_with_key(&o, &k).await.unwrap();
    assert_eq!(store.get_org(&org_id).await.unwrap(), Some(o));
    assert_eq!(
        store.get_api_key(&k.public_key).await.unwrap(),
        Some(k.clone())
    );

    // A key with no roles and an empty sealed key round-trips as well.
    let org2 = ns.org(1);
    let k2 = ApiKeyRecord {
        org_roles: Vec::new(),
        sealed_private_key: Vec::new(),
        description: String::new(),
        ..api_key(ns, 1, &org2)
    };
    store.create_org_with_key(&org(&org2), &k2).await.unwrap();
    assert_eq!(store.get_api_key(&k2.public_key).await.unwrap(), Some(k2));
    assert_eq!(
        store.get_api_key(&k.public_key).await.unwrap(),
        Some(k),
        "first key untouched"
    );

    assert_eq!(store.get_org(&ns.org(99)).await.unwrap(), None);
    assert_eq!(store.get_api_key(&ns.public_key(99)).await.unwrap(), None);
    // Keys are looked up by public key, not by id.
    assert_eq!(store.get_api_key(&ns.key_id(0)).await.unwrap(), None);
}

/// A failing `create_org_with_key` leaves neither the organization nor the key behind.
pub async fn create_org_with_key_is_atomic(store: &dyn Store) {
    let ns = Ns(3);
    let first = setup_org(store, ns, 0).await;
    let first_key = api_key(ns, 0, &first);

    // New organization, new key id, but a public key that exists already.
    let second = ns.org(1);
    let clash = ApiKeyRecord {
        public_key: first_key.public_key.clone(),
        ..api_key(ns, 1, &second)
    };
    assert_any_conflict(store.create_org_with_key(&org(&second), &clash).await);
    assert_eq!(
        store.get_org(&second).await.unwrap(),
        None,
        "no organization left behind"
    );
    assert_eq!(
        store.get_api_key(&first_key.public_key).await.unwrap(),
        Some(first_key.clone()),
        "the existing key is untouched"
    );

    // New organization, new public key, but a key id that exists already.
    let third = ns.org(2);
    let clash = ApiKeyRecord {
        id: first_key.id.clone(),
        ..api_key(ns, 2, &third)
    };
    assert_any_conflict(store.create_org_with_key(&org(&third), &clash).await);
    assert_eq!(
        store.get_org(&third).await.unwrap(),
        None,
        "no organization left behind"
    );
    assert_eq!(
        store.get_api_key(&clash.public_key).await.unwrap(),
        None,
        "no key left behind"
    );

    // An organization id that exists already, with a brand-new key.
    let fresh_key = api_key(ns, 3, &first);
    let renamed = Org {
        name: "another name".into(),
        ..org(&first)
    };
    assert_any_conflict(store.create_org_with_key(&renamed, &fresh_key).await);
    assert_eq!(
        store.get_org(&first).await.unwrap(),
        Some(org(&first)),
        "organization untouched"
    );
    assert_eq!(
        store.get_api_key(&fresh_key.public_key).await.unwrap(),
        None,
        "no key left behind"
    );

    // After the failures the same organization id can still be created properly.
    store
        .create_org_with_key(&org(&second), &api_key(ns, 1, &second))
        .await
        .unwrap();
    assert_eq!(store.get_org(&second).await.unwrap(), Some(org(&second)));
    assert_eq!(
        store.get_api_key(&ns.public_key(1)).await.unwrap(),
        Some(api_key(ns, 1, &second))
    );
}

/// The first value stored under a secret name wins; later values are ignored.
pub async fn secret_first_value_wins(store: &dyn Store) {
    let ns = Ns(4);
    let name = ns.secret("nonce-key");
    let first = vec![1u8, 2, 3, 0, 255];
    let second = vec![9u8; 64];
    assert_eq!(
        store.get_or_insert_secret(&name, &first).await.unwrap(),
        first
    );
    assert_eq!(
        store.get_or_insert_secret(&name, &second).await.unwrap(),
        first
    );
    assert_eq!(store.get_or_insert_secret(&name, &[]).await.unwrap(), first);
    assert_eq!(
        store.get_or_insert_secret(&name, &first).await.unwrap(),
        first
    );

    // Names are independent.
    let other = ns.secret("check-value");
    assert_eq!(
        store.get_or_insert_secret(&other, &second).await.unwrap(),
        second
    );
    assert_eq!(
        store.get_or_insert_secret(&name, &second).await.unwrap(),
        first
    );
}

/// Nodes racing to create the same secret all end up with one value.
pub async fn secret_concurrent_inserts_agree(store: &dyn Store) {
    let ns = Ns(5);
    for i in 0..10u8 {
        let name = ns.secret(&format!("race-{i}"));
        let (a, b) = (vec![i, 0xaa], vec![i, 0xbb]);
        let (ra, rb) = tokio::join!(
            store.get_or_insert_secret(&name, &a),
            store.get_or_insert_secret(&name, &b)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra, rb, "both racers see the same secret");
        assert!(
            ra == a || ra == b,
            "the secret is one of the values offered"
        );
        assert_eq!(store.get_or_insert_secret(&name, &[0]).await.unwrap(), ra);
    }
}

// ---------------------------------------------------------------------------------------------
// Projects
// ---------------------------------------------------------------------------------------------

/// `get_project` returns exactly what `create_project` stored.
pub async fn project_round_trip(store: &dyn Store) {
    let ns = Ns(6);
    let org_id = setup_org(store, ns, 0).await;
    let p = Project {
        id: ns.project(0),
        org_id: org_id.clone(),
        name: "My Project ✓".into(),
        created: T0 + 7,
        with_default_alerts_settings: true,
        tags_json: r#"[{"key":"a","value":"b"},{"key":"c","value":""}]"#.into(),
    };
    let q = Project {
        id: ns.project(1),
        org_id: org_id.clone(),
        name: "other".into(),
        created: T0 + 8,
        with_default_alerts_settings: false,
        tags_json: "[]".into(),
    };
    store.create_project(&p).await.unwrap();
    store.create_project(&q).await.unwrap();
    assert_eq!(store.get_project(&p.id).await.unwrap(), Some(p));
    assert_eq!(store.get_project(&q.id).await.unwrap(), Some(q));
    assert_eq!(store.get_project(&ns.project(2)).await.unwrap(), None);
}

/// Project names are unique within an organization, not across organizations.
pub async fn project_name_unique_per_org(store: &dyn Store) {
    let ns = Ns(7);
    let org_a = setup_org(store, ns, 0).await;
    let org_b = setup_org(store, ns, 1).await;
    let original = project(&ns.project(0), &org_a, "Shared Name", T0);
    store.create_project(&original).await.unwrap();

    let dup = Project {
        with_default_alerts_settings: false,
        tags_json: "[]".into(),
        ..project(&ns.project(1), &org_a, "Shared Name", T0 + 1)
    };
    assert_conflict(store.create_project(&dup).await, "project name");
    assert_eq!(
        store.get_project(&dup.id).await.unwrap(),
        None,
        "the duplicate was not stored"
    );
    assert_eq!(
        store.get_project(&original.id).await.unwrap(),
        Some(original.clone())
    );

    // Another organization may use the same name.
    let other_org = project(&ns.project(2), &org_b, "Shared Name", T0 + 2);
    store.create_project(&other_org).await.unwrap();
    assert_eq!(
        store.get_project(&other_org.id).await.unwrap(),
        Some(other_org)
    );

    // Names differing only in case are different names.
    store
        .create_project(&project(&ns.project(3), &org_a, "shared name", T0 + 3))
        .await
        .unwrap();

    let (listed, total) = store.list_projects(&[org_a], NO_PAGE).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(
        listed.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        [ns.project(0), ns.project(3)]
    );
}

/// `list_projects` returns the given organizations' projects by (created, id), paged, with the
/// total count of all of them.
pub async fn list_projects_filters_orders_and_pages(store: &dyn Store) {
    let ns = Ns(8);
    let org_a = setup_org(store, ns, 0).await;
    let org_b = setup_org(store, ns, 1).await;
    let org_c = setup_org(store, ns, 2).await; // no projects
    let org_d = setup_org(store, ns, 3).await; // not asked for

    // (project n, org, created), inserted out of order, with ties on `created` broken by id.
    let specs: [(u64, &str, i64); 8] = [
        (5, &org_a, T0 + 30),
        (2, &org_a, T0 + 10),
        (4, &org_b, T0 + 20),
        (1, &org_a, T0 + 20),
        (3, &org_a, T0 + 20),
        (6, &org_b, T0 + 5),
        (7, &org_d, T0 + 1),
        (0, &org_a, T0 + 40),
    ];
    for (n, o, created) in specs {
        store
            .create_project(&project(&ns.project(n), o, &format!("p{n}"), created))
            .await
            .unwrap();
    }
    let ids = |ps: &[Project]| ps.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
    let expect = |ns_: &[u64]| ns_.iter().map(|&n| ns.project(n)).collect::<Vec<_>>();

    // One organization.
    let (ps, total) = store
        .list_projects(std::slice::from_ref(&org_a), NO_PAGE)
        .await
        .unwrap();
    assert_eq!(ids(&ps), expect(&[2, 1, 3, 5, 0]));
    assert_eq!(total, 5);
    assert_eq!(
        ps[0],
        project(&ns.project(2), &org_a, "p2", T0 + 10),
        "full rows are returned"
    );

    // Several organizations, merged in one order; org D excluded, org C contributes nothing.
    let orgs = vec![org_a.clone(), org_b.clone(), org_c.clone()];
    let all = expect(&[6, 2, 1, 3, 4, 5, 0]);
    let (ps, total) = store.list_projects(&orgs, NO_PAGE).await.unwrap();
    assert_eq!(ids(&ps), all);
    assert_eq!(total, 7);

    // Pages.
    for (offset, limit) in [
        (0u64, 1u32),
        (0, 3),
        (3, 3),
        (6, 3),
        (2, 100),
        (7, 3),
        (100, 5),
    ] {
        let (ps, total) = store
            .list_projects(&orgs, page(offset, limit))
            .await
            .unwrap();
        let start = (offset as usize).min(all.len());
        let end = (start + limit as usize).min(all.len());
        assert_eq!(
            ids(&ps),
            all[start..end],
            "page offset={offset} limit={limit}"
        );
        assert_eq!(
            total, 7,
            "total is independent of the page (offset={offset} limit={limit})"
        );
    }

    // No organizations, or organizations without projects.
    assert_eq!(
        store.list_projects(&[], NO_PAGE).await.unwrap(),
        (Vec::new(), 0)
    );
    assert_eq!(
        store.list_projects(&[org_c], NO_PAGE).await.unwrap(),
        (Vec::new(), 0)
    );
    assert_eq!(
        store.list_projects(&[ns.org(99)], NO_PAGE).await.unwrap(),
        (Vec::new(), 0)
    );
    let (ps, total) = store.list_projects(&[org_d], NO_PAGE).await.unwrap();
    assert_eq!((ids(&ps), total), (expect(&[7]), 1));
}

/// Deleting a project deletes its users, CA, certificates and user-security settings, and
/// nothing of any other project.
pub async fn delete_project_cascades(store: &dyn Store) {
    let ns = Ns(9);
    let doomed = setup_project(store, ns, 0).await;
    let kept = setup_project(store, ns, 1).await;
    let now = T0 + 1000;
    let security = UserSecurityRecord {
        customer_cas: Some("-----BEGIN CERTIFICATE-----\n...".into()),
        ldap_json: Some(r#"{"hostname":"ldap.example"}"#.into()),
    };
    for (i, p) in [&doomed, &kept].into_iter().enumerate() {
        let i = i as i64;
        store
            .create_database_user(&user(p, "$external", "CN=alice", T0))
            .await
            .unwrap();
        store
            .create_database_user(&user(p, "admin", "bob", T0))
            .await
            .unwrap();
        store.insert_ca_if_absent(&ca(p, 1)).await.unwrap();
        store
            .insert_certificate(&cert(ns.serial(10 * i), p, "CN=alice", T0, now + 100))
            .await
            .unwrap();
        store
            .insert_certificate(&cert(
                ns.serial(10 * i + 1),
                p,
                "CN=alice",
                T0 + 1,
                now + 100,
            ))
            .await
            .unwrap();
        store.put_user_security(p, &security).await.unwrap();
    }

    assert!(
        store.delete_project(&doomed).await.unwrap(),
        "the project existed"
    );
    assert!(
        !store.delete_project(&doomed).await.unwrap(),
        "the project is gone"
    );
    assert!(
        !store.delete_project(&ns.project(99)).await.unwrap(),
        "never existed"
    );

    assert_eq!(store.get_project(&doomed).await.unwrap(), None);
    assert_eq!(store.get_active_ca(&doomed).await.unwrap(), None);
    assert_eq!(
        store
            .get_database_user(&doomed, "$external", "CN=alice")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_database_user(&doomed, "admin", "bob")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.list_database_users(&doomed, NO_PAGE).await.unwrap(),
        (Vec::new(), 0)
    );
    assert_eq!(store.count_database_users(&doomed).await.unwrap(), 0);
    assert_eq!(
        store
            .list_unexpired_certificates(&doomed, "CN=alice", now, NO_PAGE)
            .await
            .unwrap(),
        (Vec::new(), 0)
    );
    assert_eq!(
        store.get_user_security(&doomed).await.unwrap(),
        UserSecurityRecord::default()
    );

    // The other project of the same organization is untouched.
    assert!(store.get_project(&kept).await.unwrap().is_some());
    assert_eq!(
        store.get_active_ca(&kept).await.unwrap(),
        Some(ca(&kept, 1))
    );
    assert_eq!(store.count_database_users(&kept).await.unwrap(), 2);
    let (certs, total) = store
        .list_unexpired_certificates(&kept, "CN=alice", now, NO_PAGE)
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(
        certs.iter().map(|c| c.serial).collect::<Vec<_>>(),
        [ns.serial(10), ns.serial(11)]
    );
    assert_eq!(store.get_user_security(&kept).await.unwrap(), security);
    assert!(
        store.get_org(&ns.org(0)).await.unwrap().is_some(),
        "the organization remains"
    );

    // The deleted project's name is free again in its organization, and the new project starts
    // empty.
    let again = project(&ns.project(2), &ns.org(0), "project 0", T0 + 5);
    store.create_project(&again).await.unwrap();
    assert_eq!(store.get_active_ca(&again.id).await.unwrap(), None);
    assert_eq!(store.count_database_users(&again.id).await.unwrap(), 0);
    assert_eq!(
        store.get_user_security(&again.id).await.unwrap(),
        UserSecurityRecord::default()
    );
}

// ---------------------------------------------------------------------------------------------
// Managed CA
// ---------------------------------------------------------------------------------------------

/// There is no CA until one is inserted; after that, every insert returns the first CA.
pub async fn ca_first_insert_wins(store: &dyn Store) {
    let ns = Ns(10);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    assert_eq!(store.get_active_ca(&p).await.unwrap(), None);
    assert_eq!(store.get_active_ca(&ns.project(99)).await.unwrap(), None);

    let winner = ca(&p, 1);
    assert_eq!(
        store.insert_ca_if_absent(&winner).await.unwrap(),
        winner,
        "the first insert wins"
    );
    assert_eq!(store.get_active_ca(&p).await.unwrap(), Some(winner.clone()));

    let loser = ca(&p, 2);
    assert_ne!(loser.cert_der, winner.cert_der);
    assert_eq!(
        store.insert_ca_if_absent(&loser).await.unwrap(),
        winner,
        "a later insert loses"
    );
    assert_eq!(store.insert_ca_if_absent(&winner).await.unwrap(), winner);
    assert_eq!(store.get_active_ca(&p).await.unwrap(), Some(winner.clone()));

    // Each project has its own CA.
    assert_eq!(store.get_active_ca(&other).await.unwrap(), None);
    let other_ca = ca(&other, 2);
    assert_eq!(
        store.insert_ca_if_absent(&other_ca).await.unwrap(),
        other_ca
    );
    assert_eq!(store.get_active_ca(&p).await.unwrap(), Some(winner));
}

/// Two inserts racing for a project's CA agree on one winner.
pub async fn ca_concurrent_inserts_agree(store: &dyn Store) {
    let ns = Ns(11);
    for n in 0..10 {
        let p = setup_project(store, ns, n).await;
        let (a, b) = (ca(&p, 2 * n as u8), ca(&p, 2 * n as u8 + 1));
        let (ra, rb) = tokio::join!(store.insert_ca_if_absent(&a), store.insert_ca_if_absent(&b));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra, rb, "both racers get the same CA");
        assert!(ra == a || ra == b, "the winner is one of the CAs offered");
        assert_eq!(store.get_active_ca(&p).await.unwrap(), Some(ra));
    }
}

// ---------------------------------------------------------------------------------------------
// Database users
// ---------------------------------------------------------------------------------------------

/// `get_database_user` returns exactly what `create_database_user` stored, by full key only.
pub async fn database_user_round_trip(store: &dyn Store) {
    let ns = Ns(12);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    let u = DatabaseUserRecord {
        project_id: p.clone(),
        database_name: "$external".into(),
        username: "CN=alice,OU=eng,O=Example".into(),
        x509_type: "CUSTOMER".into(),
        created: T0 + 3,
        doc: r#"{"roles":[{"roleName":"readWrite","databaseName":"app"}],"labels":[]}"#.into(),
    };
    store.create_database_user(&u).await.unwrap();
    assert_eq!(
        store
            .get_database_user(&p, "$external", &u.username)
            .await
            .unwrap(),
        Some(u.clone())
    );
    assert_eq!(
        store
            .get_database_user(&p, "admin", &u.username)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_database_user(&p, "$external", "CN=alice")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_database_user(&other, "$external", &u.username)
            .await
            .unwrap(),
        None
    );
}

/// (project, databaseName, username) is unique.
pub async fn database_user_unique_key(store: &dyn Store) {
    let ns = Ns(13);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    let original = user(&p, "admin", "carol", T0);
    store.create_database_user(&original).await.unwrap();

    let dup = DatabaseUserRecord {
        x509_type: "NONE".into(),
        created: T0 + 9,
        doc: "{}".into(),
        ..original.clone()
    };
    assert_conflict(store.create_database_user(&dup).await, "database user");
    assert_eq!(
        store.get_database_user(&p, "admin", "carol").await.unwrap(),
        Some(original.clone())
    );
    assert_eq!(store.count_database_users(&p).await.unwrap(), 1);

    // The same username on another database, or in another project, is another user.
    let other_db = user(&p, "$external", "carol", T0 + 1);
    store.create_database_user(&other_db).await.unwrap();
    let other_project = user(&other, "admin", "carol", T0 + 2);
    store.create_database_user(&other_project).await.unwrap();
    assert_eq!(
        store
            .get_database_user(&p, "$external", "carol")
            .await
            .unwrap(),
        Some(other_db)
    );
    assert_eq!(
        store
            .get_database_user(&other, "admin", "carol")
            .await
            .unwrap(),
        Some(other_project)
    );
    assert_eq!(
        store.get_database_user(&p, "admin", "carol").await.unwrap(),
        Some(original)
    );
    assert_eq!(store.count_database_users(&p).await.unwrap(), 2);
}

/// `list_database_users` orders by (created, databaseName, username), pages, and counts all.
pub async fn list_database_users_orders_and_pages(store: &dyn Store) {
    let ns = Ns(14);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    let empty = setup_project(store, ns, 2).await;

    // Inserted out of order; ties on `created`, then on database name.
    let users = [
        user(&p, "admin", "zed", T0 + 5),
        user(&p, "admin", "amy", T0 + 5),
        user(&p, "$external", "zed", T0 + 5),
        user(&p, "admin", "old", T0 + 1),
        user(&p, "admin", "new", T0 + 9),
        user(&p, "$external", "CN=x", T0 + 5),
    ];
    for u in &users {
        store.create_database_user(u).await.unwrap();
    }
    store
        .create_database_user(&user(&other, "admin", "stranger", T0))
        .await
        .unwrap();

    let expected = vec![
        users[3].clone(), // created T0+1
        users[5].clone(), // T0+5, $external, CN=x
        users[2].clone(), // T0+5, $external, zed
        users[1].clone(), // T0+5, admin, amy
        users[0].clone(), // T0+5, admin, zed
        users[4].clone(), // T0+9
    ];
    assert_eq!(
        store.list_database_users(&p, NO_PAGE).await.unwrap(),
        (expected.clone(), 6)
    );
    assert_eq!(store.count_database_users(&p).await.unwrap(), 6);

    for (offset, limit) in [
        (0u64, 1u32),
        (0, 2),
        (2, 2),
        (4, 2),
        (5, 10),
        (6, 1),
        (50, 50),
    ] {
        let (got, total) = store
            .list_database_users(&p, page(offset, limit))
            .await
            .unwrap();
        let start = (offset as usize).min(expected.len());
        let end = (start + limit as usize).min(expected.len());
        assert_eq!(
            got,
            expected[start..end],
            "page offset={offset} limit={limit}"
        );
        assert_eq!(
            total, 6,
            "total is independent of the page (offset={offset} limit={limit})"
        );
    }

    assert_eq!(store.count_database_users(&other).await.unwrap(), 1);
    assert_eq!(
        store.list_database_users(&empty, NO_PAGE).await.unwrap(),
        (Vec::new(), 0)
    );
    assert_eq!(store.count_database_users(&empty).await.unwrap(), 0);
    assert_eq!(
        store.count_database_users(&ns.project(99)).await.unwrap(),
        0
    );
    assert_eq!(
        store
            .list_database_users(&ns.project(99), NO_PAGE)
            .await
            .unwrap(),
        (Vec::new(), 0)
    );
}

/// `update_database_user` replaces x509Type and the document of an existing user only.
pub async fn update_database_user(store: &dyn Store) {
    let ns = Ns(15);
    let p = setup_project(store, ns, 0).await;
    let original = user(&p, "admin", "dave", T0);
    let neighbour = user(&p, "$external", "dave", T0);
    store.create_database_user(&original).await.unwrap();
    store.create_database_user(&neighbour).await.unwrap();

    let changed = DatabaseUserRecord {
        x509_type: "NONE".into(),
        doc: r#"{"roles":[{"roleName":"atlasAdmin","databaseName":"admin"}]}"#.into(),
        ..original.clone()
    };
    assert!(
        store.update_database_user(&changed).await.unwrap(),
        "the user existed"
    );
    assert_eq!(
        store.get_database_user(&p, "admin", "dave").await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(
        store
            .get_database_user(&p, "$external", "dave")
            .await
            .unwrap(),
        Some(neighbour),
        "only the addressed user changes"
    );

    // The creation time is not a mutable field.
    let later = DatabaseUserRecord {
        created: T0 + 500,
        x509_type: "MANAGED".into(),
        ..changed.clone()
    };
    assert!(store.update_database_user(&later).await.unwrap());
    let got = store
        .get_database_user(&p, "admin", "dave")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.x509_type, "MANAGED");
    assert_eq!(got.created, T0, "created is kept");

    // Missing users are not created.
    let missing = user(&p, "admin", "nobody", T0);
    assert!(
        !store.update_database_user(&missing).await.unwrap(),
        "the user did not exist"
    );
    assert_eq!(
        store
            .get_database_user(&p, "admin", "nobody")
            .await
            .unwrap(),
        None
    );
    let missing_project = user(&ns.project(99), "admin", "dave", T0);
    assert!(!store.update_database_user(&missing_project).await.unwrap());
    assert_eq!(store.count_database_users(&p).await.unwrap(), 2);
}

/// `delete_database_user` deletes exactly the addressed user, once.
pub async fn delete_database_user(store: &dyn Store) {
    let ns = Ns(16);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    store
        .create_database_user(&user(&p, "admin", "erin", T0))
        .await
        .unwrap();
    store
        .create_database_user(&user(&p, "$external", "erin", T0))
        .await
        .unwrap();
    store
        .create_database_user(&user(&other, "admin", "erin", T0))
        .await
        .unwrap();

    assert!(
        store
            .delete_database_user(&p, "admin", "erin")
            .await
            .unwrap(),
        "the user existed"
    );
    assert!(
        !store
            .delete_database_user(&p, "admin", "erin")
            .await
            .unwrap(),
        "the user is gone"
    );
    assert!(
        !store
            .delete_database_user(&p, "admin", "nobody")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_database_user(&ns.project(99), "admin", "erin")
            .await
            .unwrap()
    );

    assert_eq!(
        store.get_database_user(&p, "admin", "erin").await.unwrap(),
        None
    );
    assert!(
        store
            .get_database_user(&p, "$external", "erin")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get_database_user(&other, "admin", "erin")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.count_database_users(&p).await.unwrap(), 1);
    let (listed, total) = store.list_database_users(&p, NO_PAGE).await.unwrap();
    assert_eq!(
        (listed, total),
        (vec![user(&p, "$external", "erin", T0)], 1)
    );

    // The user can be created again.
    store
        .create_database_user(&user(&p, "admin", "erin", T0 + 1))
        .await
        .unwrap();
    assert_eq!(store.count_database_users(&p).await.unwrap(), 2);
}

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

/// A serial is stored once; a second certificate with the same serial is refused and the first
/// one is left as it was.
pub async fn certificate_serial_unique(store: &dyn Store) {
    let ns = Ns(17);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    let now = T0 + 100;
    let original = cert(ns.serial(1), &p, "CN=frank", T0, T0 + 1000);
    store.insert_certificate(&original).await.unwrap();

    // Same serial, everything else different (another project even).
    let dup = CertificateRecord {
        serial: original.serial,
        subject: "CN=mallory".into(),
        not_before: T0 + 1,
        not_after: T0 + 2000,
        cert_der: vec![0xde, 0xad],
        ..cert(0, &other, "CN=mallory", 0, 0)
    };
    assert_conflict(store.insert_certificate(&dup).await, "certificate serial");
    // Same serial, same owner.
    let dup_same_owner = CertificateRecord {
        subject: "CN=other".into(),
        ..original.clone()
    };
    assert_conflict(
        store.insert_certificate(&dup_same_owner).await,
        "certificate serial",
    );
    assert_conflict(
        store.insert_certificate(&original).await,
        "certificate serial",
    );

    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=frank", now, NO_PAGE)
            .await
            .unwrap(),
        (vec![summary(&original)], 1),
        "the original row is unchanged"
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&other, "CN=mallory", now, NO_PAGE)
            .await
            .unwrap(),
        (Vec::new(), 0),
        "the duplicate was not stored"
    );

    // Other serials are fine, including large ones.
    for serial in [ns.serial(2), ns.serial(3), i64::MAX - 17] {
        store
            .insert_certificate(&cert(serial, &p, "CN=frank", T0, T0 + 1000))
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=frank", now, NO_PAGE)
            .await
            .unwrap()
            .1,
        4
    );
}

/// `list_unexpired_certificates` returns certificates of (project, username) with
/// `not_after > now`, ordered by (notBefore, serial), paged, with the count of all of them.
pub async fn list_unexpired_certificates_filters_orders_and_pages(store: &dyn Store) {
    let ns = Ns(18);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    let now = T0 + 10_000;
    let s = |n| ns.serial(n);

    let live = [
        cert(s(7), &p, "CN=gina", T0 + 300, now + 1), // just alive
        cert(s(3), &p, "CN=gina", T0 + 100, now + 500),
        cert(s(9), &p, "CN=gina", T0 + 200, now + 86_400),
        cert(s(1), &p, "CN=gina", T0 + 200, now + 10), // ties on notBefore: serial order
        cert(s(5), &p, "CN=gina", T0 + 200, now + 20),
        cert(s(2), &p, "CN=gina", T0 + 400, i64::MAX),
    ];
    let noise = [
        cert(s(20), &p, "CN=gina", T0, now), // expires exactly now: excluded
        cert(s(21), &p, "CN=gina", T0, now - 1),
        cert(s(22), &p, "CN=gina", T0 - 1000, T0),
        cert(s(23), &p, "CN=other", T0, now + 100), // another user
        cert(s(24), &p, "cn=gina", T0, now + 100),  // usernames are case-sensitive
        cert(s(25), &other, "CN=gina", T0, now + 100), // another project
    ];
    for c in live.iter().chain(noise.iter()) {
        store.insert_certificate(c).await.unwrap();
    }

    let expected = summaries([&live[1], &live[3], &live[4], &live[2], &live[0], &live[5]]);
    // Within one second of notBefore, issuance time (created_ms) orders before the serial.
    let (first, second) = (
        CertificateRecord {
            created_ms: (T0 + 3600) * 1000 + 1,
            ..cert(s(31), &other, "CN=hank", T0, now + 100)
        },
        CertificateRecord {
            created_ms: (T0 + 3600) * 1000 + 900,
            ..cert(s(30), &other, "CN=hank", T0, now + 100)
        },
    );
    store.insert_certificate(&second).await.unwrap();
    store.insert_certificate(&first).await.unwrap();
    assert_eq!(
        store
            .list_unexpired_certificates(&other, "CN=hank", now, NO_PAGE)
            .await
            .unwrap(),
        (summaries([&first, &second]), 2),
        "issued first is listed first, although its serial is larger"
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=gina", now, NO_PAGE)
            .await
            .unwrap(),
        (expected.clone(), 6)
    );

    for (offset, limit) in [
        (0u64, 1u32),
        (0, 4),
        (1, 2),
        (4, 4),
        (5, 1),
        (6, 3),
        (1000, 1),
    ] {
        let (got, total) = store
            .list_unexpired_certificates(&p, "CN=gina", now, page(offset, limit))
            .await
            .unwrap();
        let start = (offset as usize).min(expected.len());
        let end = (start + limit as usize).min(expected.len());
        assert_eq!(
            got,
            expected[start..end],
            "page offset={offset} limit={limit}"
        );
        assert_eq!(
            total, 6,
            "total counts every unexpired certificate (offset={offset} limit={limit})"
        );
    }

    // The boundary moves with `now`.
    let (got, total) = store
        .list_unexpired_certificates(&p, "CN=gina", now - 1, NO_PAGE)
        .await
        .unwrap();
    assert_eq!(total, 7);
    assert!(
        got.contains(&summary(&noise[0])),
        "not_after == now + 1 is unexpired"
    );
    assert!(
        !got.contains(&summary(&noise[1])),
        "not_after == now is expired"
    );
    let (got, total) = store
        .list_unexpired_certificates(&p, "CN=gina", now + 1, NO_PAGE)
        .await
        .unwrap();
    assert_eq!(total, 5);
    assert!(!got.contains(&summary(&live[0])));
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=gina", i64::MAX, NO_PAGE)
            .await
            .unwrap(),
        (Vec::new(), 0)
    );

    // Scoping by project and username.
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=other", now, NO_PAGE)
            .await
            .unwrap(),
        (summaries([&noise[3]]), 1)
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&other, "CN=gina", now, NO_PAGE)
            .await
            .unwrap(),
        (summaries([&noise[5]]), 1)
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=nobody", now, NO_PAGE)
            .await
            .unwrap(),
        (Vec::new(), 0)
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&ns.project(99), "CN=gina", now, NO_PAGE)
            .await
            .unwrap(),
        (Vec::new(), 0)
    );
}

/// Certificates belong to (project, username): deleting the database user keeps them, deleting
/// the project does not.
pub async fn certificates_outlive_database_user_but_not_project(store: &dyn Store) {
    let ns = Ns(19);
    let p = setup_project(store, ns, 0).await;
    let now = T0 + 100;
    store
        .create_database_user(&user(&p, "$external", "CN=hank", T0))
        .await
        .unwrap();
    let certs = [
        cert(ns.serial(1), &p, "CN=hank", T0, T0 + 1000),
        cert(ns.serial(2), &p, "CN=hank", T0 + 1, T0 + 1000),
    ];
    for c in &certs {
        store.insert_certificate(c).await.unwrap();
    }
    let expected = (summaries(&certs), 2);

    assert!(
        store
            .delete_database_user(&p, "$external", "CN=hank")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=hank", now, NO_PAGE)
            .await
            .unwrap(),
        expected
    );

    // A re-created user sees the old certificates, and new ones join them.
    store
        .create_database_user(&user(&p, "$external", "CN=hank", T0 + 50))
        .await
        .unwrap();
    let third = cert(ns.serial(3), &p, "CN=hank", T0 + 2, T0 + 1000);
    store.insert_certificate(&third).await.unwrap();
    let (got, total) = store
        .list_unexpired_certificates(&p, "CN=hank", now, NO_PAGE)
        .await
        .unwrap();
    assert_eq!((got, total), (summaries(certs.iter().chain([&third])), 3));

    // A certificate does not need a user row at all.
    store
        .insert_certificate(&cert(ns.serial(4), &p, "CN=ghost", T0, T0 + 1000))
        .await
        .unwrap();
    assert_eq!(
        store
            .list_unexpired_certificates(&p, "CN=ghost", now, NO_PAGE)
            .await
            .unwrap()
            .1,
        1
    );

    assert!(store.delete_project(&p).await.unwrap());
    for username in ["CN=hank", "CN=ghost"] {
        assert_eq!(
            store
                .list_unexpired_certificates(&p, username, now, NO_PAGE)
                .await
                .unwrap(),
            (Vec::new(), 0)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// User security
// ---------------------------------------------------------------------------------------------

/// User-security settings default to unset, and `put` replaces both fields.
pub async fn user_security_default_put_overwrite_clear(store: &dyn Store) {
    let ns = Ns(20);
    let p = setup_project(store, ns, 0).await;
    let other = setup_project(store, ns, 1).await;
    assert_eq!(
        store.get_user_security(&p).await.unwrap(),
        UserSecurityRecord::default()
    );
    assert_eq!(
        store.get_user_security(&ns.project(99)).await.unwrap(),
        UserSecurityRecord::default()
    );

    let both = UserSecurityRecord {
        customer_cas: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
        ldap_json: Some(r#"{"authenticationEnabled":true,"hostname":"ldap.example"}"#.into()),
    };
    store.put_user_security(&p, &both).await.unwrap();
    assert_eq!(store.get_user_security(&p).await.unwrap(), both);
    assert_eq!(
        store.get_user_security(&other).await.unwrap(),
        UserSecurityRecord::default()
    );

    let replaced = UserSecurityRecord {
        customer_cas: Some("-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n".into()),
        ldap_json: Some("{}".into()),
    };
    store.put_user_security(&p, &replaced).await.unwrap();
    assert_eq!(store.get_user_security(&p).await.unwrap(), replaced);

    // `None` clears a field; it does not mean "leave as is".
    let cas_only = UserSecurityRecord {
        ldap_json: None,
        ..replaced.clone()
    };
    store.put_user_security(&p, &cas_only).await.unwrap();
    assert_eq!(store.get_user_security(&p).await.unwrap(), cas_only);
    let ldap_only = UserSecurityRecord {
        customer_cas: None,
        ldap_json: Some("[]".into()),
    };
    store.put_user_security(&p, &ldap_only).await.unwrap();
    assert_eq!(store.get_user_security(&p).await.unwrap(), ldap_only);
    store
        .put_user_security(&p, &UserSecurityRecord::default())
        .await
        .unwrap();
    assert_eq!(
        store.get_user_security(&p).await.unwrap(),
        UserSecurityRecord::default()
    );

    // An empty string is a value, not an unset field.
    let empty = UserSecurityRecord {
        customer_cas: Some(String::new()),
        ldap_json: None,
    };
    store.put_user_security(&p, &empty).await.unwrap();
    assert_eq!(store.get_user_security(&p).await.unwrap(), empty);

    // Projects are independent.
    store.put_user_security(&other, &both).await.unwrap();
    assert_eq!(store.get_user_security(&p).await.unwrap(), empty);
    assert_eq!(store.get_user_security(&other).await.unwrap(), both);
}

/// `create_database_user_within_limit` counts and inserts atomically: 12 concurrent creations
/// against a limit of 5 leave exactly 5 users, and an existing user is still a conflict.
pub async fn database_user_limit_is_atomic(store: &dyn Store) {
    let ns = Ns(40);
    let p = setup_project(store, ns, 0).await;
    let attempts = (0..12).map(|i| {
        let u = user(&p, "$external", &format!("u{i:02}"), T0 + i);
        async move { store.create_database_user_within_limit(&u, 5).await }
    });
    let results = futures_join_all(attempts).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(created, 5, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(StoreError::LimitReached))),
        "{results:?}"
    );
    assert_eq!(store.count_database_users(&p).await.unwrap(), 5);
    let (listed, _) = store.list_database_users(&p, NO_PAGE).await.unwrap();
    let existing = listed[0].clone();
    assert!(matches!(
        store
            .create_database_user_within_limit(&existing, 100)
            .await,
        Err(StoreError::Conflict("database user"))
    ));
    assert!(matches!(
        store
            .create_database_user_within_limit(&user(&p, "admin", "one-more", T0), 5)
            .await,
        Err(StoreError::LimitReached)
    ));
    assert!(
        store
            .create_database_user_within_limit(&user(&p, "admin", "one-more", T0), 6)
            .await
            .is_ok()
    );
}

/// Runs futures concurrently on the current task (no extra dependency).
async fn futures_join_all<F: std::future::Future>(
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
