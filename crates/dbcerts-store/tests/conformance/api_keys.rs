//! Conformance checks of API keys: create, get, unique public keys, listing, update, delete and
//! the authentication bundle.

use super::*;

/// `create_api_key` stores a key that `get_api_key_by_id` (by id) and `get_api_key` (by public
/// key) return exactly as stored.
pub async fn api_key_create_and_get(store: &dyn Store) {
    let ns = Ns(21);
    let org_id = setup_org(store, ns, 0).await;
    let k = ApiKeyRecord {
        sealed_private_key: (0..=255).rev().collect(),
        description: "ünïcode & \"quotes\"".into(),
        org_roles: vec!["ORG_MEMBER".into(), "ORG_GROUP_CREATOR".into()],
        created: T0 + 5,
        ..api_key(ns, 1, &org_id)
    };
    store.create_api_key(&k, &[]).await.unwrap();
    assert_eq!(
        store.get_api_key_by_id(&k.id).await.unwrap(),
        Some(k.clone())
    );
    assert_eq!(
        store.get_api_key(&k.public_key).await.unwrap(),
        Some(k.clone())
    );

    // No roles, no description, an empty sealed key.
    let bare = ApiKeyRecord {
        org_roles: Vec::new(),
        description: String::new(),
        sealed_private_key: Vec::new(),
        ..api_key(ns, 2, &org_id)
    };
    store.create_api_key(&bare, &[]).await.unwrap();
    assert_eq!(
        store.get_api_key_by_id(&bare.id).await.unwrap(),
        Some(bare.clone())
    );
    assert_eq!(
        store.get_api_key(&bare.public_key).await.unwrap(),
        Some(bare)
    );

    // The organization's first key, made by `create_org_with_key`, is found by id too.
    assert_eq!(
        store.get_api_key_by_id(&ns.key_id(0)).await.unwrap(),
        Some(api_key(ns, 0, &org_id))
    );

    // Ids and public keys are separate: neither finds the other.
    assert_eq!(store.get_api_key_by_id(&k.public_key).await.unwrap(), None);
    assert_eq!(store.get_api_key(&k.id).await.unwrap(), None);
    assert_eq!(store.get_api_key_by_id(&ns.key_id(99)).await.unwrap(), None);
    assert_eq!(store.get_api_key(&ns.public_key(99)).await.unwrap(), None);

    // A key needs an existing organization.
    let orphan = api_key(ns, 3, &ns.org(99));
    assert!(store.create_api_key(&orphan, &[]).await.is_err());
    assert_eq!(store.get_api_key_by_id(&orphan.id).await.unwrap(), None);
    assert_eq!(store.get_api_key(&orphan.public_key).await.unwrap(), None);
}

/// Public keys are unique: a second key with the same public key is `Conflict("api key")` and
/// leaves nothing behind, not even its grants. A reused id is a conflict as well.
pub async fn api_key_public_key_unique(store: &dyn Store) {
    let ns = Ns(22);
    let p = setup_project(store, ns, 0).await;
    let org_id = ns.org(0);
    let original = api_key(ns, 1, &org_id);
    store.create_api_key(&original, &[]).await.unwrap();

    let dup = ApiKeyRecord {
        public_key: original.public_key.clone(),
        description: "impostor".into(),
        ..api_key(ns, 2, &org_id)
    };
    assert_conflict(
        store
            .create_api_key(&dup, &[grant(&dup.id, &p, &["GROUP_OWNER"])])
            .await,
        "api key",
    );
    assert_eq!(
        store.get_api_key(&original.public_key).await.unwrap(),
        Some(original.clone()),
        "the existing key is untouched"
    );
    assert_eq!(store.get_api_key_by_id(&dup.id).await.unwrap(), None);
    assert_eq!(store.list_grants(&dup.id).await.unwrap(), []);
    assert_eq!(store.list_project_grants(&p).await.unwrap(), []);

    // The organization's first key clashes the same way.
    let dup_first = ApiKeyRecord {
        public_key: ns.public_key(0),
        ..api_key(ns, 3, &org_id)
    };
    assert_conflict(store.create_api_key(&dup_first, &[]).await, "api key");
    assert_eq!(store.get_api_key_by_id(&dup_first.id).await.unwrap(), None);

    // Same id, new public key.
    let same_id = ApiKeyRecord {
        id: original.id.clone(),
        ..api_key(ns, 4, &org_id)
    };
    assert_any_conflict(store.create_api_key(&same_id, &[]).await);
    assert_eq!(store.get_api_key(&same_id.public_key).await.unwrap(), None);
    assert_eq!(
        store.get_api_key_by_id(&original.id).await.unwrap(),
        Some(original)
    );

    assert_eq!(
        store.list_api_keys(&org_id, NO_PAGE).await.unwrap().1,
        2,
        "the first key and the original"
    );
}

/// `create_api_key` stores the key and its grants in one step: a grant that cannot be stored
/// (to a project that does not exist) leaves neither the key nor its other grants.
pub async fn create_api_key_with_grants_is_atomic(store: &dyn Store) {
    let ns = Ns(23);
    let p0 = setup_project(store, ns, 0).await;
    let p1 = setup_project(store, ns, 1).await;
    let org_id = ns.org(0);
    let k = api_key(ns, 1, &org_id);
    let good = grant(&k.id, &p0, &["GROUP_READ_ONLY"]);
    let bad = grant(&k.id, &ns.project(99), &["GROUP_OWNER"]);

    assert!(
        matches!(
            store.create_api_key(&k, &[good.clone(), bad]).await,
            Err(StoreError::Gone)
        ),
        "a grant in a project that does not exist is refused as Gone"
    );
    assert_eq!(
        store.get_api_key_by_id(&k.id).await.unwrap(),
        None,
        "no key left behind"
    );
    assert_eq!(store.get_api_key(&k.public_key).await.unwrap(), None);
    assert_eq!(store.get_api_key_auth(&k.public_key).await.unwrap(), None);
    assert_eq!(
        store.list_grants(&k.id).await.unwrap(),
        [],
        "no grant left behind"
    );
    assert_eq!(store.list_project_grants(&p0).await.unwrap(), []);
    assert_eq!(store.list_api_keys(&org_id, NO_PAGE).await.unwrap().1, 1);

    // The same key with grants that can be stored is created whole.
    let other = grant(&k.id, &p1, &["GROUP_OWNER", "GROUP_DATA_ACCESS_ADMIN"]);
    store
        .create_api_key(&k, &[other.clone(), good.clone()])
        .await
        .unwrap();
    assert_eq!(
        store.get_api_key_by_id(&k.id).await.unwrap(),
        Some(k.clone())
    );
    assert_eq!(
        store.list_grants(&k.id).await.unwrap(),
        [good.clone(), other]
    );
    assert_eq!(store.list_project_grants(&p0).await.unwrap(), [good]);

    // A conflicting key stores none of its grants either.
    let clash = ApiKeyRecord {
        public_key: k.public_key.clone(),
        ..api_key(ns, 2, &org_id)
    };
    assert_conflict(
        store
            .create_api_key(&clash, &[grant(&clash.id, &p0, &["GROUP_OWNER"])])
            .await,
        "api key",
    );
    assert_eq!(store.list_grants(&clash.id).await.unwrap(), []);
}

/// `list_api_keys` returns one organization's keys, oldest first, paged, with the total count.
pub async fn list_api_keys_filters_orders_and_pages(store: &dyn Store) {
    let ns = Ns(24);
    let org_a = setup_org(store, ns, 0).await; // key 0, created T0 + 1
    let org_b = setup_org(store, ns, 1).await; // key 1, created T0 + 1
    let org_c = setup_org(store, ns, 2).await; // key 2, created T0 + 1

    // (key n, org, created), inserted out of order.
    let specs: [(u64, &str, i64); 5] = [
        (15, &org_a, T0 + 30),
        (12, &org_a, T0 + 10),
        (13, &org_b, T0 + 20),
        (14, &org_a, T0 + 20),
        (16, &org_a, T0 - 5),
    ];
    let keyed = |n: u64, o: &str, created: i64| ApiKeyRecord {
        created,
        ..api_key(ns, n, o)
    };
    for (n, o, created) in specs {
        store
            .create_api_key(&keyed(n, o, created), &[])
            .await
            .unwrap();
    }

    let expected = vec![
        keyed(16, &org_a, T0 - 5),
        api_key(ns, 0, &org_a),
        keyed(12, &org_a, T0 + 10),
        keyed(14, &org_a, T0 + 20),
        keyed(15, &org_a, T0 + 30),
    ];
    assert_eq!(
        store.list_api_keys(&org_a, NO_PAGE).await.unwrap(),
        (expected.clone(), 5),
        "full rows, oldest first"
    );
    assert_eq!(
        store.list_api_keys(&org_b, NO_PAGE).await.unwrap(),
        (vec![api_key(ns, 1, &org_b), keyed(13, &org_b, T0 + 20)], 2)
    );
    assert_eq!(
        store.list_api_keys(&ns.org(99), NO_PAGE).await.unwrap(),
        (Vec::new(), 0)
    );

    for (offset, limit) in [
        (0u64, 1u32),
        (0, 2),
        (2, 2),
        (4, 2),
        (3, 100),
        (5, 1),
        (99, 3),
    ] {
        let (got, total) = store
            .list_api_keys(&org_a, page(offset, limit))
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
            total, 5,
            "total is independent of the page (offset={offset} limit={limit})"
        );
    }

    // Keys created in the same second: pages still split one stable order, without gaps or
    // repeats.
    for n in 20..27 {
        store
            .create_api_key(&api_key(ns, n, &org_c), &[])
            .await
            .unwrap();
    }
    let (all, total) = store.list_api_keys(&org_c, NO_PAGE).await.unwrap();
    assert_eq!(total, 8);
    let mut ids: Vec<_> = all.iter().map(|k| k.id.clone()).collect();
    let mut paged = Vec::new();
    for offset in (0..8).step_by(3) {
        let (got, _) = store.list_api_keys(&org_c, page(offset, 3)).await.unwrap();
        paged.extend(got);
    }
    assert_eq!(paged, all, "pages concatenate to the whole list");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "every key once");
}

/// `update_api_key` replaces the description and organization roles of an existing key, and
/// nothing else.
pub async fn update_api_key_replaces_description_and_roles(store: &dyn Store) {
    let ns = Ns(25);
    let org_id = setup_org(store, ns, 0).await;
    let other_org = setup_org(store, ns, 1).await;
    let k = api_key(ns, 2, &org_id);
    let neighbour = api_key(ns, 3, &org_id);
    store.create_api_key(&k, &[]).await.unwrap();
    store.create_api_key(&neighbour, &[]).await.unwrap();

    let changed = ApiKeyRecord {
        description: "rotated ✓".into(),
        org_roles: vec!["ORG_READ_ONLY".into()],
        ..k.clone()
    };
    assert!(
        store.update_api_key(&changed).await.unwrap(),
        "the key existed"
    );
    assert_eq!(
        store.get_api_key_by_id(&k.id).await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(
        store.get_api_key(&k.public_key).await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(
        store.get_api_key_by_id(&neighbour.id).await.unwrap(),
        Some(neighbour),
        "only the addressed key changes"
    );

    // Roles can be emptied, and the description cleared.
    let emptied = ApiKeyRecord {
        description: String::new(),
        org_roles: Vec::new(),
        ..changed.clone()
    };
    assert!(store.update_api_key(&emptied).await.unwrap());
    assert_eq!(
        store.get_api_key_by_id(&k.id).await.unwrap(),
        Some(emptied.clone())
    );

    // The public key, the sealed private key, the organization and the creation time are not
    // mutable.
    let sneaky = ApiKeyRecord {
        public_key: ns.public_key(50),
        sealed_private_key: vec![9; 9],
        org_id: other_org.clone(),
        created: T0 + 999,
        description: "again".into(),
        ..emptied.clone()
    };
    assert!(store.update_api_key(&sneaky).await.unwrap());
    assert_eq!(
        store.get_api_key_by_id(&k.id).await.unwrap(),
        Some(ApiKeyRecord {
            description: "again".into(),
            ..emptied
        })
    );
    assert_eq!(store.get_api_key(&ns.public_key(50)).await.unwrap(), None);
    assert_eq!(store.list_api_keys(&other_org, NO_PAGE).await.unwrap().1, 1);

    // Missing keys are not created.
    let missing = api_key(ns, 99, &org_id);
    assert!(
        !store.update_api_key(&missing).await.unwrap(),
        "the key did not exist"
    );
    assert_eq!(store.get_api_key_by_id(&missing.id).await.unwrap(), None);
    assert_eq!(store.list_api_keys(&org_id, NO_PAGE).await.unwrap().1, 3);
}

/// `delete_api_key` deletes the key with its grants and access list, once, and nothing of any
/// other key.
pub async fn delete_api_key_takes_grants_and_access_list(store: &dyn Store) {
    let ns = Ns(26);
    let p0 = setup_project(store, ns, 0).await;
    let p1 = setup_project(store, ns, 1).await;
    let org_id = ns.org(0);
    let doomed = ApiKeyRecord {
        created: T0 + 10,
        ..api_key(ns, 1, &org_id)
    };
    let kept = ApiKeyRecord {
        created: T0 + 20,
        ..api_key(ns, 2, &org_id)
    };
    for k in [&doomed, &kept] {
        store
            .create_api_key(
                k,
                &[
                    grant(&k.id, &p0, &["GROUP_OWNER"]),
                    grant(&k.id, &p1, &["GROUP_READ_ONLY"]),
                ],
            )
            .await
            .unwrap();
        store
            .add_access_list_entries(&[
                entry(&k.id, "10.0.0.0/8", T0),
                entry(&k.id, "192.0.2.7/32", T0 + 1),
            ])
            .await
            .unwrap();
    }
    let kept_auth = store
        .get_api_key_auth(&kept.public_key)
        .await
        .unwrap()
        .expect("the kept key exists");
    assert_eq!(kept_auth.grants.len(), 2);
    assert_eq!(kept_auth.access_list.len(), 2);

    assert!(
        store.delete_api_key(&doomed.id).await.unwrap(),
        "the key existed"
    );
    assert!(
        !store.delete_api_key(&doomed.id).await.unwrap(),
        "the key is gone"
    );
    assert!(
        !store.delete_api_key(&ns.key_id(99)).await.unwrap(),
        "never existed"
    );
    assert!(
        !store.delete_api_key(&kept.public_key).await.unwrap(),
        "keys are deleted by id, not by public key"
    );

    assert_eq!(store.get_api_key_by_id(&doomed.id).await.unwrap(), None);
    assert_eq!(store.get_api_key(&doomed.public_key).await.unwrap(), None);
    assert_eq!(
        store.get_api_key_auth(&doomed.public_key).await.unwrap(),
        None
    );
    assert_eq!(store.list_grants(&doomed.id).await.unwrap(), []);
    assert_eq!(store.list_access_list(&doomed.id).await.unwrap(), []);

    // The other key keeps everything.
    assert_eq!(
        store.get_api_key_auth(&kept.public_key).await.unwrap(),
        Some(kept_auth.clone())
    );
    assert_eq!(
        store.list_project_grants(&p0).await.unwrap(),
        [grant(&kept.id, &p0, &["GROUP_OWNER"])]
    );
    assert_eq!(
        store.list_project_grants(&p1).await.unwrap(),
        [grant(&kept.id, &p1, &["GROUP_READ_ONLY"])]
    );
    assert_eq!(
        store.list_api_keys(&org_id, NO_PAGE).await.unwrap(),
        (vec![api_key(ns, 0, &org_id), kept.clone()], 2)
    );

    // A key created again under the same id starts with nothing.
    store.create_api_key(&doomed, &[]).await.unwrap();
    assert_eq!(
        store.get_api_key_auth(&doomed.public_key).await.unwrap(),
        Some(ApiKeyAuth {
            key: doomed,
            grants: Vec::new(),
            access_list: Vec::new(),
        })
    );
    assert_eq!(
        store.get_api_key_auth(&kept.public_key).await.unwrap(),
        Some(kept_auth)
    );
}

/// `get_api_key_auth` reads a key by public key with its grants (in project-id order) and its
/// access list (in CIDR order), and nothing of any other principal.
pub async fn api_key_auth_bundles_grants_and_access_list(store: &dyn Store) {
    let ns = Ns(27);
    // Projects created out of id order.
    let p2 = setup_project(store, ns, 2).await;
    let p0 = setup_project(store, ns, 0).await;
    let p1 = setup_project(store, ns, 1).await;
    let org_id = ns.org(0);
    let k = api_key(ns, 1, &org_id);
    let g2 = grant(&k.id, &p2, &["GROUP_OWNER"]);
    let g0 = grant(
        &k.id,
        &p0,
        &["GROUP_READ_ONLY", "GROUP_DATA_ACCESS_READ_ONLY"],
    );
    let g1 = grant(&k.id, &p1, &["GROUP_CLUSTER_MANAGER"]);
    store
        .create_api_key(&k, &[g2.clone(), g0.clone()])
        .await
        .unwrap();
    store.put_grant(&g1).await.unwrap();
    let (v6, v4, net) = (
        entry(&k.id, "2001:db8::/32", T0 + 3),
        entry(&k.id, "192.0.2.7/32", T0 + 1),
        entry(&k.id, "10.0.0.0/8", T0 + 2),
    );
    store
        .add_access_list_entries(&[v6.clone(), v4.clone()])
        .await
        .unwrap();
    store
        .add_access_list_entries(std::slice::from_ref(&net))
        .await
        .unwrap();

    // Noise: another key with a grant and an entry of its own.
    let other = api_key(ns, 2, &org_id);
    store
        .create_api_key(&other, &[grant(&other.id, &p0, &["GROUP_OWNER"])])
        .await
        .unwrap();
    store
        .add_access_list_entries(&[entry(&other.id, "198.51.100.0/24", T0)])
        .await
        .unwrap();

    let expected = ApiKeyAuth {
        key: k.clone(),
        grants: vec![g0, g1, g2],
        access_list: vec![net, v4, v6],
    };
    let auth = store.get_api_key_auth(&k.public_key).await.unwrap();
    assert_eq!(auth, Some(expected.clone()));
    assert_eq!(store.list_grants(&k.id).await.unwrap(), expected.grants);
    assert_eq!(
        store.list_access_list(&k.id).await.unwrap(),
        expected.access_list
    );

    // A key with no grants and no access list.
    assert_eq!(
        store.get_api_key_auth(&ns.public_key(0)).await.unwrap(),
        Some(ApiKeyAuth {
            key: api_key(ns, 0, &org_id),
            grants: Vec::new(),
            access_list: Vec::new(),
        })
    );

    // Unknown public keys, and ids, find nothing.
    assert_eq!(
        store.get_api_key_auth(&ns.public_key(99)).await.unwrap(),
        None
    );
    assert_eq!(store.get_api_key_auth(&k.id).await.unwrap(), None);

    // What authentication reads follows later changes.
    assert!(store.delete_grant(&k.id, &p1).await.unwrap());
    assert!(
        store
            .delete_access_list_entry(&k.id, "192.0.2.7/32")
            .await
            .unwrap()
    );
    let auth = store
        .get_api_key_auth(&k.public_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        auth.grants
            .iter()
            .map(|g| g.project_id.clone())
            .collect::<Vec<_>>(),
        [p0, p2]
    );
    assert_eq!(
        auth.access_list
            .iter()
            .map(|e| e.cidr_block.as_str())
            .collect::<Vec<_>>(),
        ["10.0.0.0/8", "2001:db8::/32"]
    );
}
