//! Conformance checks of project grants and access lists.

use super::*;

/// `put_grant` sets (replacing, not merging) a principal's roles in a project; `list_grants`
/// orders by project id and `list_project_grants` by principal id; `delete_grant` removes one
/// grant, once; deleting a project removes its grants.
pub async fn grants_put_replace_list_delete(store: &dyn Store) {
    let ns = Ns(28);
    let p0 = setup_project(store, ns, 0).await;
    let p1 = setup_project(store, ns, 1).await;
    let p2 = setup_project(store, ns, 2).await;
    let org_id = ns.org(0);
    let a = api_key(ns, 1, &org_id).id;
    let b = api_key(ns, 2, &org_id).id;
    for n in [1, 2] {
        store
            .create_api_key(&api_key(ns, n, &org_id), &[])
            .await
            .unwrap();
    }
    let sa = service_account(ns, 1, &org_id);
    store
        .create_service_account(&sa, &sa_secret(ns, 1, &sa.client_id, T0))
        .await
        .unwrap();
    let s = sa.client_id.clone();
    assert!(b < s, "fixture: key ids sort before client ids");

    store
        .put_grant(&grant(&a, &p2, &["GROUP_OWNER"]))
        .await
        .unwrap();
    store
        .put_grant(&grant(&s, &p0, &["GROUP_READ_ONLY"]))
        .await
        .unwrap();
    store
        .put_grant(&grant(&a, &p0, &["GROUP_READ_ONLY"]))
        .await
        .unwrap();
    store
        .put_grant(&grant(&b, &p0, &["GROUP_OWNER"]))
        .await
        .unwrap();

    assert_eq!(
        store.list_grants(&a).await.unwrap(),
        [
            grant(&a, &p0, &["GROUP_READ_ONLY"]),
            grant(&a, &p2, &["GROUP_OWNER"])
        ]
    );
    assert_eq!(
        store.list_project_grants(&p0).await.unwrap(),
        [
            grant(&a, &p0, &["GROUP_READ_ONLY"]),
            grant(&b, &p0, &["GROUP_OWNER"]),
            grant(&s, &p0, &["GROUP_READ_ONLY"]),
        ]
    );
    assert_eq!(store.list_project_grants(&p1).await.unwrap(), []);

    // A second put replaces the roles; it does not add a grant or merge roles.
    let replaced = grant(
        &a,
        &p0,
        &["GROUP_DATA_ACCESS_ADMIN", "GROUP_CLUSTER_MANAGER"],
    );
    store.put_grant(&replaced).await.unwrap();
    assert_eq!(
        store.list_grants(&a).await.unwrap(),
        [replaced.clone(), grant(&a, &p2, &["GROUP_OWNER"])]
    );
    let narrowed = grant(&a, &p0, &["GROUP_OWNER"]);
    store.put_grant(&narrowed).await.unwrap();
    store.put_grant(&narrowed).await.unwrap();
    assert_eq!(
        store.list_project_grants(&p0).await.unwrap(),
        [
            narrowed.clone(),
            grant(&b, &p0, &["GROUP_OWNER"]),
            grant(&s, &p0, &["GROUP_READ_ONLY"]),
        ],
        "other principals' grants in the project are untouched"
    );

    // A grant needs an existing project.
    assert!(
        store
            .put_grant(&grant(&a, &ns.project(99), &["GROUP_OWNER"]))
            .await
            .is_err()
    );
    assert_eq!(store.list_grants(&a).await.unwrap().len(), 2);

    // Deleting.
    assert!(store.delete_grant(&a, &p0).await.unwrap(), "it was there");
    assert!(!store.delete_grant(&a, &p0).await.unwrap(), "it is gone");
    assert!(!store.delete_grant(&a, &p1).await.unwrap(), "never there");
    assert!(!store.delete_grant(&ns.key_id(99), &p0).await.unwrap());
    assert!(!store.delete_grant(&a, &ns.project(99)).await.unwrap());
    assert_eq!(
        store.list_grants(&a).await.unwrap(),
        [grant(&a, &p2, &["GROUP_OWNER"])]
    );
    assert_eq!(
        store.list_project_grants(&p0).await.unwrap(),
        [
            grant(&b, &p0, &["GROUP_OWNER"]),
            grant(&s, &p0, &["GROUP_READ_ONLY"]),
        ]
    );

    // A deleted grant can be put again.
    store.put_grant(&narrowed).await.unwrap();
    assert_eq!(store.list_grants(&a).await.unwrap().len(), 2);

    // Deleting a project takes its grants; the principals' other grants stay.
    assert!(store.delete_project(&p2).await.unwrap());
    assert_eq!(store.list_grants(&a).await.unwrap(), [narrowed]);
    assert_eq!(store.list_project_grants(&p2).await.unwrap(), []);
    assert_eq!(store.list_project_grants(&p0).await.unwrap().len(), 3);

    assert_eq!(store.list_grants(&ns.key_id(99)).await.unwrap(), []);
    assert_eq!(
        store.list_project_grants(&ns.project(99)).await.unwrap(),
        []
    );
}

/// `add_access_list_entries` adds new entries and keeps existing ones exactly as they are (so
/// adding is idempotent); lists are in CIDR order and per principal; `delete_access_list_entry`
/// deletes one entry, once.
pub async fn access_list_add_keeps_existing_and_deletes_once(store: &dyn Store) {
    let ns = Ns(29);
    let org_id = setup_org(store, ns, 0).await;
    let a = ns.key_id(0);
    let other_key = api_key(ns, 1, &org_id);
    store.create_api_key(&other_key, &[]).await.unwrap();
    let b = other_key.id;
    let (net, v4, v6) = ("10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32");

    store
        .add_access_list_entries(&[entry(&a, v6, T0 + 1), entry(&a, v4, T0 + 2)])
        .await
        .unwrap();
    assert_eq!(
        store.list_access_list(&a).await.unwrap(),
        [entry(&a, v4, T0 + 2), entry(&a, v6, T0 + 1)]
    );

    // An entry that exists already keeps its creation time; new ones are added, once even when
    // a batch repeats them.
    store
        .add_access_list_entries(&[
            entry(&a, v4, T0 + 50),
            entry(&a, net, T0 + 51),
            entry(&a, net, T0 + 52),
        ])
        .await
        .unwrap();
    let all = vec![
        entry(&a, net, T0 + 51),
        entry(&a, v4, T0 + 2),
        entry(&a, v6, T0 + 1),
    ];
    assert_eq!(store.list_access_list(&a).await.unwrap(), all);
    store
        .add_access_list_entries(&[entry(&a, net, T0 + 60), entry(&a, v6, T0 + 60)])
        .await
        .unwrap();
    store.add_access_list_entries(&[]).await.unwrap();
    assert_eq!(
        store.list_access_list(&a).await.unwrap(),
        all,
        "adding again changes nothing"
    );

    // Principals are separate, even for the same block.
    store
        .add_access_list_entries(&[entry(&b, v4, T0 + 70)])
        .await
        .unwrap();
    assert_eq!(
        store.list_access_list(&b).await.unwrap(),
        [entry(&b, v4, T0 + 70)]
    );
    assert_eq!(store.list_access_list(&a).await.unwrap(), all);

    // Deleting.
    assert!(
        store.delete_access_list_entry(&a, v4).await.unwrap(),
        "it was there"
    );
    assert!(
        !store.delete_access_list_entry(&a, v4).await.unwrap(),
        "it is gone"
    );
    assert!(
        !store
            .delete_access_list_entry(&a, "198.51.100.0/24")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_access_list_entry(&ns.key_id(99), v6)
            .await
            .unwrap()
    );
    assert_eq!(
        store.list_access_list(&a).await.unwrap(),
        [entry(&a, net, T0 + 51), entry(&a, v6, T0 + 1)]
    );
    assert_eq!(
        store.list_access_list(&b).await.unwrap(),
        [entry(&b, v4, T0 + 70)],
        "the other principal's entry for the same block stays"
    );

    // A deleted entry added again is a new entry.
    store
        .add_access_list_entries(&[entry(&a, v4, T0 + 80)])
        .await
        .unwrap();
    assert_eq!(
        store.list_access_list(&a).await.unwrap(),
        [
            entry(&a, net, T0 + 51),
            entry(&a, v4, T0 + 80),
            entry(&a, v6, T0 + 1)
        ]
    );
    assert_eq!(store.list_access_list(&ns.key_id(99)).await.unwrap(), []);
}
