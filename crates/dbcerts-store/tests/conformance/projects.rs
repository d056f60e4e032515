//! Conformance checks of projects: round trip, unique names per organization, listing, and the
//! cascade of deleting one.

use super::*;

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

/// Deleting a project deletes its users, CA, certificates, user-security settings and project
/// grants, and nothing of any other project. Its audit entries stay: the log outlives what it
/// describes.
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
        insert_cert(
            store,
            &cert(ns.serial(10 * i), p, "CN=alice", T0, now + 100),
        )
        .await
        .unwrap();
        insert_cert(
            store,
            &cert(ns.serial(10 * i + 1), p, "CN=alice", T0 + 1, now + 100),
        )
        .await
        .unwrap();
        store.put_user_security(p, &security).await.unwrap();
    }
    // Key 1 holds roles in both projects, the organization's first key only in the doomed one.
    let key = api_key(ns, 1, &ns.org(0));
    let kept_grant = grant(&key.id, &kept, &["GROUP_READ_ONLY"]);
    store
        .create_api_key(
            &key,
            &[
                grant(&key.id, &doomed, &["GROUP_OWNER"]),
                kept_grant.clone(),
            ],
        )
        .await
        .unwrap();
    store
        .put_grant(&grant(&ns.key_id(0), &doomed, &["GROUP_OWNER"]))
        .await
        .unwrap();
    let doomed_audit = AuditFilter {
        project_id: Some(doomed.clone()),
        ..AuditFilter::default()
    };
    let audit_before = store.list_audit(&doomed_audit, 0, 100).await.unwrap();
    assert_eq!(audit_before.len(), 2, "one entry per issued certificate");

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
        store.get_active_ca(&kept).await.unwrap().map(sans_id),
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

    // Grants in the deleted project are gone; the principals and their other grants remain.
    assert_eq!(store.list_project_grants(&doomed).await.unwrap(), []);
    assert_eq!(
        store.list_grants(&key.id).await.unwrap(),
        std::slice::from_ref(&kept_grant)
    );
    assert_eq!(store.list_grants(&ns.key_id(0)).await.unwrap(), []);
    assert_eq!(
        store.list_project_grants(&kept).await.unwrap(),
        [kept_grant]
    );
    assert_eq!(store.get_api_key_by_id(&key.id).await.unwrap(), Some(key));

    // The audit log still tells what happened in the deleted project.
    assert_eq!(
        store.list_audit(&doomed_audit, 0, 100).await.unwrap(),
        audit_before
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
    assert_eq!(store.list_project_grants(&again.id).await.unwrap(), []);
}
